import keras
import numpy as np
import pytest

from fl_embed.models import (
    BACKBONE_LAYER,
    BACKBONES,
    build_embedder,
    save_backbone_weights,
)

# Small inputs keep the Inception builds fast; 75x75 is InceptionV3's minimum.
SMALL_SHAPES = {
    "inception_v2": (64, 64, 3),
    "inception_v3": (75, 75, 3),
    "bn_inception": (64, 64, 3),
    "small_cnn": (32, 32, 1),
}


def _images(shape, batch=2, seed=0):
    return (
        np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype(np.float32)
    )


def _randomize(model, seed=0):
    """Sets every variable (moving statistics included) to random values, positive where needed."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        values = (
            rng.uniform(0.5, 1.5, variable.shape)
            if "variance" in variable.path
            else (rng.normal(0.0, 0.1, variable.shape))
        )
        variable.assign(values.astype(np.float32))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_maps_images_to_float32_embeddings_of_the_requested_size(backbone):
    model = build_embedder(
        backbone, embedding_dim=16, input_shape=SMALL_SHAPES[backbone]
    )
    embeddings = model(_images(SMALL_SHAPES[backbone]), training=False)
    assert embeddings.shape == (2, 16)
    assert embeddings.dtype == "float32"


def test_default_input_shapes_are_the_paper_crop_and_the_glyph_size():
    assert build_embedder("bn_inception").input_shape == (None, 227, 227, 3)
    assert build_embedder("small_cnn").input_shape == (None, 32, 32, 1)


def test_l2_normalize_gives_unit_norm_embeddings():
    model = build_embedder("small_cnn", l2_normalize=True)
    norms = np.linalg.norm(model(_images((32, 32, 1), batch=4)).numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_without_l2_normalize_embeddings_are_not_normalised():
    model = build_embedder("small_cnn", l2_normalize=False)
    assert not any(
        isinstance(layer, keras.layers.UnitNormalization) for layer in model.layers
    )
    norms = np.linalg.norm(model(_images((32, 32, 1), batch=4)).numpy(), axis=1)
    assert np.all(np.abs(norms - 1.0) > 1e-3)


def test_output_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_embedder("small_cnn")
        backbone_dtype = model.get_layer(BACKBONE_LAYER).compute_dtype
        embeddings = model(_images((32, 32, 1)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert backbone_dtype == "float16"
    assert embeddings.dtype == "float32"
    np.testing.assert_allclose(
        np.linalg.norm(embeddings.numpy(), axis=1), 1.0, atol=1e-5
    )


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ValueError, match="inception_v3.*bn_inception.*small_cnn"):
        build_embedder("resnet50")


def test_missing_weights_file_raises_instead_of_using_random_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="refusing to fall back"):
        build_embedder("small_cnn", weights=str(tmp_path / "absent.weights.h5"))


def test_imagenet_weights_for_bn_inception_raise_a_clear_error():
    with pytest.raises(
        ValueError, match="No Keras ImageNet weights exist for 'bn_inception'"
    ):
        build_embedder("bn_inception", weights="imagenet")


def test_weights_that_are_not_a_file_path_are_rejected():
    with pytest.raises(ValueError, match=r"None, 'imagenet' or the path"):
        build_embedder("inception_v3", weights="imagenet21k")


@pytest.mark.parametrize(
    "other_backbone, other_shape",
    [("small_cnn", (32, 32, 3)), ("bn_inception", (64, 64, 3))],
)
def test_weights_of_another_architecture_give_a_clear_error(
    tmp_path, other_backbone, other_shape
):
    path = str(tmp_path / "glyph.weights.h5")
    save_backbone_weights(build_embedder("small_cnn"), path)
    with pytest.raises(ValueError, match="does not fit the"):
        build_embedder(other_backbone, input_shape=other_shape, weights=path)


@pytest.mark.parametrize("backbone", ["small_cnn", "bn_inception"])
def test_saved_backbone_weights_load_into_a_new_model_with_identical_outputs(
    tmp_path, backbone
):
    shape = SMALL_SHAPES[backbone]
    source = build_embedder(backbone, input_shape=shape)
    _randomize(source)
    path = str(tmp_path / "backbone.weights.h5")
    save_backbone_weights(source, path)

    loaded = build_embedder(backbone, input_shape=shape, weights=path)
    fresh = build_embedder(backbone, input_shape=shape)
    for target in (loaded, fresh):
        target.get_layer("embedding").set_weights(
            source.get_layer("embedding").get_weights()
        )

    images = _images(shape)
    expected = source(images, training=False).numpy()
    np.testing.assert_array_equal(loaded(images, training=False).numpy(), expected)
    assert not np.allclose(fresh(images, training=False).numpy(), expected, atol=1e-3)


def test_embedding_dim_must_be_positive():
    with pytest.raises(ValueError, match="embedding_dim"):
        build_embedder("small_cnn", embedding_dim=0)


def test_inception_v3_loads_a_legacy_h5_file_like_the_keras_notop_release(tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = build_embedder("inception_v3", input_shape=SMALL_SHAPES["inception_v3"])
    _randomize(source)
    path = str(tmp_path / "inception_v3_notop.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source.get_layer(BACKBONE_LAYER))

    loaded = build_embedder(
        "inception_v3", input_shape=SMALL_SHAPES["inception_v3"], weights=path
    )
    images = _images(SMALL_SHAPES["inception_v3"])
    np.testing.assert_array_equal(
        loaded.get_layer(BACKBONE_LAYER)(images, training=False).numpy(),
        source.get_layer(BACKBONE_LAYER)(images, training=False).numpy(),
    )


def test_imagenet_download_failure_says_how_to_work_offline(monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):
        # What keras.utils.get_file raises without a network.
        raise Exception(  # noqa: TRY002
            f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ConnectionError, match="pass its path as weights="):
        build_embedder("inception_v3", weights="imagenet", input_shape=(75, 75, 3))


def _batch_norm_layers(model):
    backbone = model.get_layer(BACKBONE_LAYER)
    return [
        layer
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def test_batch_norm_trains_from_random_weights_and_is_frozen_when_fine_tuning(tmp_path):
    path = str(tmp_path / "backbone.weights.h5")
    source = build_embedder("small_cnn")
    _randomize(source)
    save_backbone_weights(source, path)
    images = _images((32, 32, 1), batch=8)
    scratch = build_embedder("small_cnn")
    tuned = build_embedder("small_cnn", weights=path)
    assert all(layer.trainable for layer in _batch_norm_layers(scratch))
    assert not any(layer.trainable for layer in _batch_norm_layers(tuned))
    # Frozen batch norm normalises with the pretrained moving statistics even in training.
    np.testing.assert_array_equal(
        tuned(images, training=True).numpy(), tuned(images, training=False).numpy()
    )
    assert not np.allclose(
        scratch(images, training=True).numpy(),
        scratch(images, training=False).numpy(),
        atol=1e-3,
    )
    assert len(tuned.trainable_weights) < len(scratch.trainable_weights)


def test_freeze_batch_norm_overrides_the_default():
    model = build_embedder("small_cnn", freeze_batch_norm=True)
    assert not any(layer.trainable for layer in _batch_norm_layers(model))
