"""inception_v2 against an independent TF1 graph of TF-slim's definition and its checkpoints."""

import os
import tarfile
import urllib.error

import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

from fl_embed.models import build_backbone
from fl_embed.models.inception_v2 import (
    IMAGENET_FILE,
    IMAGENET_URL,
    fetch_imagenet_checkpoint,
)
from fl_embed.models.slim_checkpoint import (
    assign_strictly,
    checkpoint_variables,
    slim_variables,
)
from tests.models.slim_reference import reference_checkpoint, write_checkpoint

# TF-slim's own graph of inception_v2_base (tf_slim 1.1 on TF 2.21, depth_multiplier 1) has
# 10,153,336 trainable variables' worth of parameters (measured when the issue was filed).
SLIM_TRAINABLE_PARAMETERS = 10_153_336
SHAPE = (227, 227, 3)


def _images(shape, batch=2, seed=1):
    return (
        np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype(np.float32)
    )


def _relative_error(actual, expected):
    return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


def _mixed_5c(model, images):
    return model(images, training=False).numpy()


@pytest.fixture(scope="module")
def slim(tmp_path_factory):
    """slim's layout (separable Conv2d_1a_7x7 with biases, BN without gamma), as V1 and V2."""
    folder = tmp_path_factory.mktemp("slim")
    images = _images(SHAPE)
    prefixes = {
        "V1": str(folder / "v1" / "inception_v2.ckpt"),
        "V2": str(folder / "v2" / "model.ckpt"),
    }
    for prefix in prefixes.values():
        os.makedirs(os.path.dirname(prefix))
    expected, values = reference_checkpoint(images, prefixes)
    return {"images": images, "expected": expected, "values": values, **prefixes}


@pytest.fixture(scope="module")
def slim_model(slim):
    return build_backbone("inception_v2", SHAPE, slim["V2"])


def test_parameters_are_tf_slims(slim_model):
    # slim's trainable variables: all but the moving statistics (here frozen with the rest of
    # batch norm, as pretrained weights are, see test_fine_tuning_keeps_the_pretrained_batch_norm).
    counted = [w for w in slim_model.weights if "moving_" not in w.path]
    assert sum(int(np.prod(w.shape)) for w in counted) == SLIM_TRAINABLE_PARAMETERS
    assert slim_model.output.shape == (None, 8, 8, 1024)


def test_v2_checkpoint_gives_the_reference_mixed_5c(slim, slim_model):
    actual = _mixed_5c(slim_model, slim["images"])
    assert actual.shape == (2, 8, 8, 1024)
    # The random network must not have died: a comparison of zeros would prove nothing.
    assert np.mean(slim["expected"] > 0) > 0.2
    assert _relative_error(actual, slim["expected"]) < 1e-4


def test_every_variable_is_consumed_once_and_every_weight_filled_once(slim, slim_model):
    targets = slim_variables(slim_model)
    assert len(targets) == len(slim_model.weights)
    network = {
        name
        for name in slim["values"]
        if name.startswith("InceptionV2/")
        and not name.startswith("InceptionV2/Logits/")
    }
    assert {f"InceptionV2/{name}" for name in targets} == network
    for name, variable in targets.items():
        np.testing.assert_array_equal(
            variable.numpy(), slim["values"][f"InceptionV2/{name}"]
        )


def test_v1_checkpoint_gives_the_reference_mixed_5c(slim):
    model = build_backbone("inception_v2", SHAPE, slim["V1"])
    assert _relative_error(_mixed_5c(model, slim["images"]), slim["expected"]) < 1e-4


def test_tarball_loads_the_same_as_its_checkpoint(slim, slim_model, tmp_path):
    tarball = tmp_path / "inception_v2_2016_08_28.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(slim["V1"], arcname="inception_v2.ckpt")
    model = build_backbone("inception_v2", SHAPE, str(tarball))
    np.testing.assert_array_equal(
        _mixed_5c(model, slim["images"]), _mixed_5c(slim_model, slim["images"])
    )


def test_first_layer_and_batch_norm_follow_the_checkpoint(tmp_path):
    # A checkpoint trained under another arg scope: the Object Detection API's normalises the
    # separable convolution too and keeps gamma.
    images = _images((64, 64, 3))
    prefix = str(tmp_path / "model.ckpt")
    expected, _ = reference_checkpoint(
        images, {"V2": prefix}, kind="separable_bn", scale=True, seed=2
    )
    model = build_backbone("inception_v2", (64, 64, 3), prefix)
    assert _relative_error(_mixed_5c(model, images), expected) < 1e-4


def _edited(values, edit):
    values = dict(values)
    name = "InceptionV2/Mixed_4c/Branch_2/Conv2d_0b_3x3/weights"
    if edit == "removed":
        del values[name]
    elif edit == "renamed":
        values[name.replace("Conv2d_0b_3x3", "Conv2d_0b_3x3_copy")] = values.pop(name)
    else:
        values[name] = values[name][:, :, :, :-1]
    return name, values


def test_a_checkpoint_without_a_variable_is_refused_naming_it(slim, tmp_path):
    name, values = _edited(slim["values"], "removed")
    prefix = write_checkpoint(values, str(tmp_path / "edited.ckpt"))
    with pytest.raises(
        ValueError, match="missing from the checkpoint: " + name[len("InceptionV2/") :]
    ):
        build_backbone("inception_v2", (64, 64, 3), prefix)


@pytest.mark.parametrize("edit", ["renamed", "reshaped"])
def test_an_edited_checkpoint_is_refused_and_nothing_loaded(
    slim, slim_model, tmp_path, edit
):
    name, values = _edited(slim["values"], edit)
    reader, scope, shapes = checkpoint_variables(
        write_checkpoint(values, str(tmp_path / "edited.ckpt")),
        "InceptionV2",
        ("Logits/",),
    )
    before = [w.numpy() for w in slim_model.weights]
    with pytest.raises(ValueError, match="nothing was loaded") as raised:
        assign_strictly(slim_variables(slim_model), reader, scope, shapes, "edited")
    message = str(raised.value)
    assert name[len("InceptionV2/") :] in message
    if edit == "renamed":
        assert (
            "in the checkpoint but not in the model: Mixed_4c/Branch_2/Conv2d_0b_3x3_copy"
            in message
        )
    else:
        assert "(3, 3, 96, 127)" in message
    for weight, value in zip(slim_model.weights, before, strict=True):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="refusing to fall back"):
        build_backbone("inception_v2", (64, 64, 3), str(tmp_path / "absent.ckpt"))


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    prefix = write_checkpoint(
        {"InceptionV3/Conv2d_1a_3x3/weights": np.zeros((3, 3, 3, 32), np.float32)},
        str(tmp_path / "v3.ckpt"),
    )
    with pytest.raises(
        ValueError, match="InceptionV2 network.*InceptionV3/Conv2d_1a_3x3"
    ):
        build_backbone("inception_v2", (64, 64, 3), prefix)


@pytest.fixture
def offline(monkeypatch):
    """Any download attempt fails as it does without a network (no request leaves the machine)."""

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)


def test_imagenet_offline_names_the_url_and_the_path_alternative(offline, tmp_path):
    with pytest.raises(ConnectionError) as raised:
        fetch_imagenet_checkpoint(cache_dir=str(tmp_path))
    assert IMAGENET_URL in str(raised.value)
    assert "weights=PATH" in str(raised.value)


def test_imagenet_reads_a_tarball_already_in_the_keras_cache(
    offline, slim, slim_model, tmp_path, monkeypatch
):
    from keras.src.backend import config

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    os.makedirs(tmp_path / "models")
    with tarfile.open(tmp_path / "models" / IMAGENET_FILE, "w:gz") as archive:
        archive.add(slim["V1"], arcname="inception_v2.ckpt")
    model = build_backbone("inception_v2", SHAPE, "imagenet")
    np.testing.assert_array_equal(
        _mixed_5c(model, slim["images"]), _mixed_5c(slim_model, slim["images"])
    )
    # Extracted once: a second fetch finds the folder and leaves it as it is.
    folder = tmp_path / "models" / IMAGENET_FILE.removesuffix(".tar.gz")
    (folder / "marker").write_text("kept")
    assert fetch_imagenet_checkpoint() == str(folder / "inception_v2.ckpt")
    assert (folder / "marker").read_text() == "kept"


def test_fine_tuning_keeps_the_pretrained_batch_norm(slim, slim_model):
    images = slim["images"]
    np.testing.assert_array_equal(
        slim_model(images, training=True).numpy(),
        slim_model(images, training=False).numpy(),
    )
    frozen = [
        layer.trainable
        for layer in slim_model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(frozen) == 68 and not any(frozen)
