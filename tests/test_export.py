import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep.preprocess import preprocess
from fl_embed import export
from fl_embed.export import METADATA_FILE, export_saved_model, load_embedder, writer
from fl_embed.models import build_embedder, preprocess_for
from fl_embed.training.checkpoints import NonFiniteError

GLYPH = {"image_size": 32, "resize_to": None, "channels": 1, "scaling": "unit"}
# The paper's pipeline (resize, center crop, [-1, 1]) at a small size so the test stays fast.
PAPER_LIKE = {
    "image_size": 64,
    "resize_to": 72,
    "channels": 3,
    "scaling": preprocess_for("bn_inception"),
}

# Runs in a fresh process with TensorFlow only: for each case, the encoded files and the float
# images next to an export go through its two signatures.
RELOAD_SCRIPT = """
import os, sys
import numpy as np
import tensorflow as tf

for case_dir in sys.argv[1:]:
    loaded = tf.saved_model.load(os.path.join(case_dir, "export", "1"))
    names = sorted(os.listdir(os.path.join(case_dir, "encoded")))
    encoded = [open(os.path.join(case_dir, "encoded", n), "rb").read() for n in names]
    floats = np.load(os.path.join(case_dir, "floats.npy"))
    serve, embed = loaded.signatures["serving_default"], loaded.signatures["embed_images"]
    np.savez(
        os.path.join(case_dir, "reloaded.npz"),
        encoded=serve(images=tf.constant(encoded))["embeddings"].numpy(),
        floats=embed(images=tf.constant(floats))["embeddings"].numpy(),
    )
"""


def _random_images(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


def _encode(image, fmt):
    return (tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg)(image).numpy()


def _keras_side(model, encoded, settings):
    """Embeddings computed outside the export: TF decoding, data_prep's resize and crop, scaling."""
    batch = []
    for data in encoded:
        image = tf.io.decode_image(
            data, channels=settings["channels"], expand_animations=False
        )
        if settings["resize_to"] is None:
            size = settings["image_size"]
            batch.append(
                tf.image.resize(tf.cast(image, tf.float32), [size, size]) / 255.0
            )
        else:
            batch.append(
                preprocess(image, training=False, scaling="inception",
                           resize_to=settings["resize_to"], crop=settings["image_size"])
            )  # fmt: skip
    return model(tf.stack(batch), training=False).numpy()


def _write_case(case_dir, model, settings):
    """Exports `model` and writes PNG and JPEG files of three sizes and float images next to it."""
    export_saved_model(model, str(case_dir / "export"), **settings)
    channels = settings["channels"]
    images = _random_images(
        [(32, 32, channels), (50, 40, channels), (90, 120, channels)]
    )
    encoded = [_encode(image, fmt) for image in images for fmt in ("png", "jpeg")]
    (case_dir / "encoded").mkdir()
    for i, data in enumerate(encoded):
        (case_dir / "encoded" / f"{i:02d}").write_bytes(data)
    shape = model.input_shape[1:]
    floats = np.random.default_rng(1).uniform(-1, 1, (2, *shape)).astype(np.float32)
    np.save(case_dir / "floats.npy", floats)
    return {"model": model, "settings": settings, "encoded": encoded, "floats": floats}


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """Both cases exported here, reloaded and run in one fresh process."""
    root = tmp_path_factory.mktemp("reload")
    cases = {"glyph": (build_embedder("small_cnn"), GLYPH)}
    cases["paper_like"] = (
        build_embedder("small_cnn", input_shape=(64, 64, 3), l2_normalize=False),
        PAPER_LIKE,
    )
    written = {}
    for name, (model, settings) in cases.items():
        (root / name).mkdir()
        written[name] = _write_case(root / name, model, settings)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, *(str(root / name) for name in cases)],
        check=True, env=env, timeout=180,
    )  # fmt: skip
    for name in cases:
        written[name]["reloaded"] = dict(np.load(root / name / "reloaded.npz"))
    return written


@pytest.mark.parametrize("case", ["glyph", "paper_like"])
def test_fresh_process_reload_matches_keras_on_png_and_jpeg(reloaded, case):
    case = reloaded[case]
    expected = _keras_side(case["model"], case["encoded"], case["settings"])
    np.testing.assert_allclose(case["reloaded"]["encoded"], expected, atol=1e-5)


@pytest.mark.parametrize("case", ["glyph", "paper_like"])
def test_fresh_process_reload_matches_keras_on_float_images(reloaded, case):
    case = reloaded[case]
    expected = case["model"](case["floats"], training=False).numpy()
    np.testing.assert_allclose(case["reloaded"]["floats"], expected, atol=1e-5)


@pytest.fixture(scope="module")
def glyph_export(tmp_path_factory):
    model = build_embedder("small_cnn")
    directory = export_saved_model(
        model, str(tmp_path_factory.mktemp("glyph") / "export"), **GLYPH
    )
    return model, directory


def _saved_model_cli(*args):
    cli = shutil.which("saved_model_cli")
    command = (
        [cli]
        if cli
        else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [*command, *args],
        check=True, capture_output=True, text=True, env=env, timeout=120,
    ).stdout  # fmt: skip


def test_saved_model_cli_lists_both_signatures(glyph_export):
    _, directory = glyph_export
    shown = _saved_model_cli("show", "--dir", directory, "--all")
    serving = shown.split("signature_def['serving_default']")[1]
    images = shown.split("signature_def['embed_images']")[1].split("signature_def[")[0]
    assert "inputs['images'] tensor_info:\n        dtype: DT_STRING" in serving
    assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT" in images
    assert "shape: (-1, 32, 32, 1)" in images
    assert "outputs['embeddings']" in serving and "shape: (-1, 64)" in serving


@pytest.mark.parametrize("signature", ["serving_default", "embed_images"])
def test_saved_model_cli_runs_the_export_as_a_session_based_server_would(
    glyph_export, tmp_path, signature
):
    # saved_model_cli run loads the SavedModel into a TF1 session, as TF Serving's C++ model
    # server does: every variable must be restorable that way, not only by tf.saved_model.load.
    model, directory = glyph_export
    image = _random_images([(32, 32, 1)], seed=5)[0]
    if signature == "serving_default":
        np.save(
            tmp_path / "in.npy", np.array([_encode(image, "png")])
        )  # bytes, dtype S
    else:
        np.save(tmp_path / "in.npy", image[None].astype(np.float32) / 255.0)
    _saved_model_cli(
        "run", "--dir", directory, "--tag_set", "serve", "--signature_def", signature,
        "--inputs", f"images={tmp_path / 'in.npy'}", "--outdir", str(tmp_path / "out"),
    )  # fmt: skip
    expected = model(image[None].astype(np.float32) / 255.0, training=False).numpy()
    np.testing.assert_allclose(
        np.load(tmp_path / "out" / "embeddings.npy"), expected, atol=1e-5
    )


@pytest.mark.parametrize(
    "corrupt, index",
    [
        (b"not an image at all", 2),
        (b"", 0),
        ("truncated_png", 1),
        ("truncated_jpeg", 2),
    ],
)
def test_corrupt_image_in_a_batch_names_its_index(glyph_export, corrupt, index):
    _, directory = glyph_export
    good = [_encode(image, "png") for image in _random_images([(32, 32, 1)] * 3)]
    if corrupt == "truncated_png":
        corrupt = good[0][: len(good[0]) // 2]
    elif corrupt == "truncated_jpeg":
        jpeg = _encode(_random_images([(32, 32, 1)])[0], "jpeg")
        corrupt = jpeg[: len(jpeg) - 200]
    good[index] = corrupt
    serve = tf.saved_model.load(directory).signatures["serving_default"]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"could not decode image at index {index}"
    ):
        serve(images=tf.constant(good))


def test_damaged_image_body_names_its_index_through_load_embedder(glyph_export):
    _, directory = glyph_export
    good = [_encode(image, "png") for image in _random_images([(32, 32, 1)] * 3)]
    damaged = bytearray(good[1])
    damaged[60] ^= (
        0xFF  # inside the first data chunk: header and trailer still look right
    )
    good[1] = bytes(damaged)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="could not decode image at index 1"
    ):
        load_embedder(directory)(good)


def test_load_embedder_accepts_bytes_and_float_images(glyph_export):
    model, directory = glyph_export
    embedder = load_embedder(directory)
    image = _random_images([(32, 32, 1)])[0]
    expected = model(image[None].astype(np.float32) / 255.0, training=False).numpy()
    np.testing.assert_allclose(embedder(_encode(image, "png")), expected, atol=1e-5)
    np.testing.assert_allclose(embedder(image[None] / 255.0), expected, atol=1e-5)
    assert embedder(np.zeros((0, 32, 32, 1))).shape == (0, 64)


def test_metadata_describes_preprocessing_and_embedding_size(tmp_path):
    model = build_embedder("small_cnn", input_shape=(64, 64, 3), l2_normalize=False)
    directory = export_saved_model(model, str(tmp_path / "export"), **PAPER_LIKE)
    with open(os.path.join(directory, METADATA_FILE)) as f:
        metadata = json.load(f)
    assert metadata["embedding_dim"] == 64 and metadata["l2_normalized"] is False
    assert metadata["preprocessing"] == {
        "decode": "JPEG or PNG bytes", "channels": 3, "resize_to": 72,
        "resize": "bilinear to a square, aspect ratio not kept", "crop": "center",
        "image_size": 64, "scaling": "inception", "max_pixels": 25_000_000,
        "background": 255,
    }  # fmt: skip
    assert set(metadata["signatures"]) == {"serving_default", "embed_images"}


def _siblings(directory):
    return sorted(os.listdir(os.path.dirname(directory)))


def _embed(directory, images):
    return load_embedder(directory)(images)


def test_exports_are_numbered_versions_and_the_base_loads_the_latest(tmp_path):
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    first, second = build_embedder("small_cnn"), build_embedder("small_cnn")
    directory = str(tmp_path / "export")
    assert export_saved_model(first, directory, **GLYPH) == os.path.join(directory, "1")
    assert export_saved_model(second, directory, **GLYPH) == os.path.join(
        directory, "2"
    )
    np.testing.assert_allclose(
        _embed(directory, images), second(images).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        _embed(os.path.join(directory, "1"), images), first(images).numpy(), atol=1e-5
    )
    assert _siblings(directory) == ["export"]
    assert sorted(os.listdir(directory)) == ["1", "2"]


def _fail_inside_saved_model_save(module, directory, signatures):
    with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
        f.write(b"half written")
    raise KeyboardInterrupt("interrupted while writing")


def _fail_writing_metadata(directory, metadata):
    raise OSError("disk full")


@pytest.mark.parametrize(
    "target, replacement, error",
    [
        (tf.saved_model, ("save", _fail_inside_saved_model_save), KeyboardInterrupt),
        (writer, ("write_metadata", _fail_writing_metadata), OSError),
    ],
)
def test_interrupted_export_leaves_the_previous_export_intact(
    tmp_path, monkeypatch, target, replacement, error
):
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    previous = build_embedder("small_cnn")
    directory = str(tmp_path / "export")
    export_saved_model(previous, directory, **GLYPH)
    files_before = sorted(os.listdir(directory))

    monkeypatch.setattr(target, *replacement)
    with pytest.raises(error):
        export_saved_model(build_embedder("small_cnn"), directory, **GLYPH)
    monkeypatch.undo()

    assert sorted(os.listdir(directory)) == files_before
    assert _siblings(directory) == ["export"]
    np.testing.assert_allclose(
        _embed(directory, images), previous(images).numpy(), atol=1e-5
    )


def test_interrupted_first_export_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "write_metadata", _fail_writing_metadata)
    with pytest.raises(OSError):
        export_saved_model(
            build_embedder("small_cnn"), str(tmp_path / "export"), **GLYPH
        )
    assert os.listdir(tmp_path) == []


def test_refuses_to_replace_a_directory_that_is_not_an_export(tmp_path):
    directory = tmp_path / "results"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an fl_embed export"):
        export_saved_model(build_embedder("small_cnn"), str(directory), **GLYPH)
    assert (directory / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(GLYPH, image_size=28), "model takes images of shape"),
        (dict(GLYPH, channels=3), "model takes images of shape"),
        (dict(GLYPH, channels=2), "channels must be 1 or 3"),
        (dict(GLYPH, resize_to=16), "resize_to 16 must be None or >= image_size"),
        (dict(GLYPH, scaling="imagenet"), "Unknown pixel scaling"),
    ],
)
def test_bad_export_arguments_are_rejected(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        export_saved_model(
            build_embedder("small_cnn"), str(tmp_path / "export"), **settings
        )
    assert not os.path.exists(tmp_path / "export")


def test_load_embedder_without_a_saved_model_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        load_embedder(str(tmp_path))


# Versioned layout, crash safety, permissions, non-finite weights (issue 14).


def test_versions_are_the_given_steps_and_only_the_newest_are_kept(tmp_path):
    directory = str(tmp_path / "export")
    models = {step: build_embedder("small_cnn") for step in (100, 200, 300)}
    for step, model in models.items():
        export_saved_model(model, directory, version=step, keep_exports=2, **GLYPH)
    assert export.export_versions(directory) == [200, 300]
    assert sorted(os.listdir(directory)) == ["200", "300"]
    images = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(
        _embed(directory, images), models[300](images).numpy(), atol=1e-5
    )
    with open(os.path.join(directory, "300", METADATA_FILE)) as f:
        assert json.load(f)["version"] == 300


def test_an_exported_version_is_never_overwritten(tmp_path):
    directory = str(tmp_path / "export")
    export_saved_model(build_embedder("small_cnn"), directory, version=5, **GLYPH)
    before = sorted(os.listdir(os.path.join(directory, "5")))
    with pytest.raises(FileExistsError, match="version 5 was exported already"):
        export_saved_model(build_embedder("small_cnn"), directory, version=5, **GLYPH)
    assert sorted(os.listdir(os.path.join(directory, "5"))) == before


@pytest.mark.parametrize("cleanup_runs", [True, False], ids=["exception", "kill -9"])
def test_a_kill_at_the_rename_always_leaves_a_complete_export(
    tmp_path, monkeypatch, cleanup_runs
):
    images = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    previous = build_embedder("small_cnn")
    directory = str(tmp_path / "export")
    export_saved_model(previous, directory, version=1, **GLYPH)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed at the rename")

    monkeypatch.setattr(os, "rename", killed)
    monkeypatch.setattr(os, "replace", killed)
    if (
        not cleanup_runs
    ):  # kill -9: no exception handler runs, the temporary entry stays
        monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(build_embedder("small_cnn"), directory, version=2, **GLYPH)
    monkeypatch.undo()

    assert export.export_versions(directory) == [1]
    np.testing.assert_allclose(
        _embed(directory, images), previous(images).numpy(), atol=1e-5
    )
    assert any(n.startswith(".tmp-") for n in os.listdir(directory)) != cleanup_runs
    # The next export removes what the killed one left.
    export_saved_model(build_embedder("small_cnn"), directory, version=3, **GLYPH)
    assert sorted(os.listdir(directory)) == ["1", "3"]


def test_leftovers_of_the_earlier_swapping_export_are_removed(tmp_path):
    for name in (".export.tmp-abc123", ".export.old-def456"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"half")
    export_saved_model(build_embedder("small_cnn"), str(tmp_path / "export"), **GLYPH)
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_export_is_readable_by_everyone_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        version = export_saved_model(
            build_embedder("small_cnn"), str(tmp_path / "export"), **GLYPH
        )
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "export").st_mode & 0o777 == 0o755
    for root, dirs, files in os.walk(version):
        assert os.stat(root).st_mode & 0o777 == 0o755
        for name in files:
            assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o644


def test_a_flat_export_of_the_earlier_layout_is_refused_with_advice(tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    (directory / METADATA_FILE).write_text("{}")
    (directory / "saved_model.pb").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="unversioned export.*Move it to"):
        export_saved_model(build_embedder("small_cnn"), str(directory), **GLYPH)
    assert sorted(os.listdir(directory)) == [METADATA_FILE, "saved_model.pb"]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_never_exported(tmp_path, bad):
    model = build_embedder("small_cnn")
    model.trainable_weights[0].assign(
        tf.fill(model.trainable_weights[0].shape, float(bad))
    )
    with pytest.raises(NonFiniteError, match="step 7: variable '.*' holds"):
        export_saved_model(model, str(tmp_path / "export"), version=7, **GLYPH)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"version": 0}, "version must be None or an int >= 1"),
        ({"keep_exports": 0}, "keep_exports must be None or an int >= 1"),
        ({"max_pixels": 0}, "max_pixels must be an int >= 1"),
        ({"background": 300}, r"background must be a grey level in \[0, 255\]"),
    ],
)
def test_bad_serving_arguments_are_rejected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_saved_model(
            build_embedder("small_cnn"), str(tmp_path / "export"), **GLYPH, **kwargs
        )
    assert os.listdir(tmp_path) == []


# Serving inputs (issue 14).


def test_transparent_png_is_composited_on_the_background(glyph_export):
    model, directory = glyph_export
    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8)
    ink = np.zeros((32, 32, 3), np.uint8)  # black ink whose shape is only in the alpha
    grey_alpha = np.concatenate([ink[..., :1], alpha], axis=-1)
    rgba = np.concatenate([ink, alpha], axis=-1)
    flat = 255.0 * (
        1.0 - alpha / 255.0
    )  # the background (white) shows where alpha is low
    expected = model(flat[None] / 255.0, training=False).numpy()
    blank = model(np.ones((1, 32, 32, 1)), training=False).numpy()
    embedder = load_embedder(directory)
    for image in (rgba, grey_alpha):
        got = embedder(_encode(image, "png"))
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert not np.allclose(got, blank, atol=1e-3)


def test_transparent_png_becomes_rgb_for_a_three_channel_model(tmp_path):
    model = build_embedder("small_cnn", input_shape=(32, 32, 3))
    directory = export_saved_model(
        model, str(tmp_path / "export"), **dict(GLYPH, channels=3), background=0
    )
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    flat = rgba[..., :3] * (rgba[..., 3:] / 255.0)  # on black
    expected = model(flat[None] / 255.0, training=False).numpy()
    got = load_embedder(directory)(_encode(rgba, "png"))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def _png_claiming_size(width, height):
    """A PNG whose IHDR claims width x height (as a tiny bomb would); its body is 1 x 1."""
    data = bytearray(_encode(np.zeros((1, 1, 1), np.uint8), "png"))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def test_an_image_above_the_pixel_limit_is_refused_before_decoding(glyph_export):
    _, directory = glyph_export
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="image at index 0 is 20000 x 20000 = 400000000 pixels, above the limit",
    ):
        load_embedder(directory)([_png_claiming_size(20000, 20000)])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_the_pixel_limit_reads_real_png_and_jpeg_headers(tmp_path, fmt):
    model = build_embedder("small_cnn")
    directory = export_saved_model(
        model, str(tmp_path / "export"), **GLYPH, max_pixels=40 * 30
    )
    small, large = _random_images([(30, 40, 1), (31, 40, 1)])
    embedder = load_embedder(directory)
    assert embedder(_encode(small, fmt)).shape == (1, 64)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="is 40 x 31 = 1240 pixels, above the limit",
    ):
        embedder([_encode(small, fmt), _encode(large, fmt)])


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 64, 64, 1), np.float32), r"\[batch, 32, 32, 1\]"),
        (np.zeros((2, 32, 32, 3), np.float32), r"\[batch, 32, 32, 1\]"),
        (np.full((1, 32, 32, 1), np.nan, np.float32), "NaN or Inf"),
        ([[b"png bytes"], [b"png bytes"]], "flat batch"),
        (tf.constant([[b"a", b"b"]]), "flat batch"),
    ],
)
def test_bad_serving_input_is_a_clear_error(glyph_export, images, message):
    _, directory = glyph_export
    with pytest.raises(ValueError, match=message):
        load_embedder(directory)(images)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 64, 64, 1), np.float32), r"images must be \[batch, 32, 32, 1\]"),
        (np.full((1, 32, 32, 1), np.nan, np.float32), "images contain NaN or Inf"),
    ],
)
def test_the_raw_signature_checks_its_float_input_too(glyph_export, images, message):
    _, directory = glyph_export
    signature = tf.saved_model.load(directory).signatures["embed_images"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signature(images=tf.constant(images))
