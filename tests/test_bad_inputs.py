"""Every class of bad input to every public library surface: a clear error naming the problem, or
accepted as valid and giving a finite answer (issue 14). BUILD_NOTES' "Bad inputs" table lists
the same rows. The command lines are in tests/experiments/test_bad_command_lines.py."""

import functools
import math
import os
from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

import data_prep
from data_prep import glyphs, hangul
from fl_embed import evaluation
from fl_embed.export import export_saved_model, load_embedder
from fl_embed.losses.registry import LOSSES
from fl_embed.models import build_embedder


class Error(NamedTuple):
    """The call raises `kind` with a message matching `match`."""

    kind: type
    match: str


VALID = "accepted as valid"


def _check(call, expected):
    if expected == VALID:
        result = call()
        values = np.asarray(
            list(result.values()) if isinstance(result, dict) else result, np.float64
        )
        assert np.all(np.isfinite(values)), result
    else:
        with pytest.raises(expected.kind, match=expected.match):
            call()


# --- the four losses: functions and Keras classes -------------------------------------------


def _unit(rows, dim=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


Y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
X = _unit(8)
_NAN = X.copy()
_NAN[2, 1] = np.nan
_INF = X.copy()
_INF[5, 0] = np.inf
BAD_DTYPE = r"must be (integer class ids|a float tensor)"
LOSS_INPUTS = {
    "int64 ids beyond int32": (Y.astype(np.int64) * 2**33, X, VALID),
    "negative ids": (Y - 5, X, VALID),
    "whole-valued float labels": (Y.astype(np.float32), X, VALID),
    "labels [m, 1]": (Y[:, None], X, VALID),
    "float64 embeddings": (Y, X.astype(np.float64), VALID),
    "float16 embeddings": (Y, X.astype(np.float16), VALID),
    "one example": (Y[:1], X[:1], VALID),
    "one class": (np.zeros(8, int), X, VALID),
    "fractional labels": (Y + 0.5, X, Error(tf.errors.InvalidArgumentError, "integer")),
    "string labels": (Y.astype(str), X, Error(ValueError, BAD_DTYPE)),
    "bool labels": (Y > 1, X, Error(ValueError, BAD_DTYPE)),
    "labels None": (None, X, Error(ValueError, "labels cannot be read as a tensor")),
    "labels [m, 2]": (np.stack([Y, Y], 1), X, Error(ValueError, r"shape \[batch\]")),
    "scalar label": (np.int64(1), X, Error(ValueError, r"shape \[batch\]")),
    "batch sizes differ": (Y[:6], X, Error(ValueError, "disagree on the batch size")),
    "empty batch": (Y[:0], X[:0], Error(ValueError, "empty batch")),
    "d = 0": (Y, X[:, :0], Error(ValueError, "d = 0")),
    "rank-1 embeddings": (Y, X[:, 0], Error(ValueError, r"shape \[batch, dim\]")),
    "rank-3 embeddings": (Y, X[:, :, None], Error(ValueError, r"shape \[batch, dim\]")),
    "int embeddings": (Y, (X * 10).astype(np.int32), Error(ValueError, BAD_DTYPE)),
    "complex embeddings": (Y, X.astype(np.complex64), Error(ValueError, BAD_DTYPE)),
    "string embeddings": (Y, np.full((8, 4), "a"), Error(ValueError, BAD_DTYPE)),
    "ragged embeddings": (
        Y,
        [[1.0, 2.0]] * 7 + [[1.0]],
        Error(ValueError, "embeddings cannot be read as a tensor"),
    ),
    "embeddings None": (Y, None, Error(ValueError, "cannot be read as a tensor")),
    "NaN embeddings": (Y, _NAN, Error(tf.errors.InvalidArgumentError, "NaN or Inf")),
    "Inf embeddings": (Y, _INF, Error(tf.errors.InvalidArgumentError, "NaN or Inf")),
    "embeddings of 1e20": (
        Y,
        X * 1e20,
        Error(tf.errors.InvalidArgumentError, "embeddings too large"),
    ),
}


def _loss_fn(name):
    spec = LOSSES[name]
    return (
        functools.partial(spec.fn, margin_multiplier=1.0)
        if name == "clustering"
        else spec.fn
    )


@pytest.mark.parametrize("kind", ["function", "keras class"])
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("case", sorted(LOSS_INPUTS))
def test_loss_input(case, name, kind):
    labels, embeddings, expected = LOSS_INPUTS[case]
    loss = _loss_fn(name) if kind == "function" else LOSSES[name].keras_class()
    with np.errstate(invalid="ignore"):
        _check(lambda: loss(labels, embeddings), expected)


NOT_FINITE = Error(ValueError, "must be (a )?finite (number|and) >= 0")
HYPER_VALUES = {
    "0.5": (0.5, VALID),
    "0": (0.0, VALID),
    "NaN": (float("nan"), NOT_FINITE),
    "Inf": (float("inf"), NOT_FINITE),
    "negative": (-1.0, NOT_FINITE),
    "'a'": ("a", Error(ValueError, "must be a number")),
    "None": (None, Error(ValueError, "must be a number")),
    "True": (True, Error(ValueError, "must be a number")),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("case", sorted(HYPER_VALUES))
def test_loss_hyper_parameter(case, name):
    value, expected = HYPER_VALUES[case]
    (knob,) = LOSSES[name].knobs
    fn = LOSSES[name].fn
    _check(lambda: fn(Y, X, **{knob: value}), expected)


# --- model.fit with each loss ----------------------------------------------------------------


def _fit(name, features, labels, use_dataset=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4), keras.layers.UnitNormalization()]
    )
    model.compile(optimizer="sgd", loss=LOSSES[name].keras_class(), jit_compile=False)
    data = (
        tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
        if use_dataset
        else None
    )
    if data is None:
        history = model.fit(features, labels, batch_size=8, epochs=1, verbose=0)
    else:
        history = model.fit(data, epochs=1, verbose=0)
    return history.history["loss"]


_FEATURES = np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)
_LABELS = np.repeat(np.arange(4), 4)
_NAN_FEATURES = _FEATURES.copy()
_NAN_FEATURES[3, 2] = np.nan
FIT_INPUTS = {
    "int ids (tf.data)": (_FEATURES, _LABELS.astype(np.int64) * 2**40, True, VALID),
    "int ids (numpy)": (_FEATURES, _LABELS, False, VALID),
    "string labels (tf.data)": (
        _FEATURES,
        _LABELS.astype(str),
        True,
        Error(ValueError, "labels must be integer class ids"),
    ),
    # Keras's own data adapter refuses them before any loss runs.
    "string labels (numpy)": (
        _FEATURES,
        _LABELS.astype(str),
        False,
        Error(ValueError, "Invalid dtype"),
    ),
    "fractional labels": (
        _FEATURES,
        _LABELS + 0.5,
        True,
        Error(tf.errors.InvalidArgumentError, "integer class ids"),
    ),
    "NaN features": (
        _NAN_FEATURES,
        _LABELS,
        True,
        Error(tf.errors.InvalidArgumentError, "NaN or Inf"),
    ),
}


# Keras hands every loss its labels through the one `MetricLossWrapper.__call__`, and each
# loss's own checks are covered above, so each bad class runs through one loss (a fit costs
# seconds) and valid data through all four.
FIT_CASES = [("int ids (tf.data)", name) for name in sorted(LOSSES)] + [
    (case, sorted(LOSSES)[i % len(LOSSES)])
    for i, case in enumerate(sorted(FIT_INPUTS))
    if case != "int ids (tf.data)"
]


@pytest.mark.parametrize("case, name", FIT_CASES)
def test_model_fit_input(case, name):
    features, labels, use_dataset, expected = FIT_INPUTS[case]
    _check(lambda: _fit(name, features, labels, use_dataset), expected)


# --- the evaluation functions ----------------------------------------------------------------

E = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
L = np.repeat(np.arange(4), 3)
M = np.ones((3, 2), bool)
NOT_REAL = Error(ValueError, "numeric .n, d. array of real numbers")
EVALUATION_INPUTS = {
    "evaluate: int embeddings": (
        lambda: evaluation.evaluate((E * 10).astype(int), L),
        VALID,
    ),
    "evaluate: int64 ids beyond int32": (
        lambda: evaluation.evaluate(E, L.astype(np.int64) * 2**40),
        VALID,
    ),
    "evaluate: ks as a numpy array": (
        lambda: evaluation.evaluate(E, L, ks=np.array([1, 2])),
        VALID,
    ),
    "evaluate: seed None": (lambda: evaluation.evaluate(E, L, seed=None), VALID),
    "evaluate: complex embeddings": (
        lambda: evaluation.evaluate(E.astype(np.complex64), L),
        NOT_REAL,
    ),
    "evaluate: bool embeddings": (lambda: evaluation.evaluate(E > 0, L), NOT_REAL),
    "evaluate: embeddings None": (lambda: evaluation.evaluate(None, L), NOT_REAL),
    "evaluate: rank-1 embeddings": (lambda: evaluation.evaluate(E[:, 0], L), NOT_REAL),
    "evaluate: d = 0": (
        lambda: evaluation.evaluate(E[:, :0], L),
        Error(ValueError, "d = 0"),
    ),
    "evaluate: NaN embeddings": (
        lambda: evaluation.evaluate(np.where(E > 1.5, np.nan, E), L),
        Error(ValueError, "NaN or Inf"),
    ),
    "evaluate: string labels": (
        lambda: evaluation.evaluate(E, L.astype(str)),
        Error(ValueError, "integer class ids"),
    ),
    "evaluate: bool labels": (
        lambda: evaluation.evaluate(E, L > 1),
        Error(ValueError, "integer class ids"),
    ),
    "evaluate: labels None": (
        lambda: evaluation.evaluate(E, None),
        Error(ValueError, r"shape \[n\]"),
    ),
    "evaluate: lengths differ": (
        lambda: evaluation.evaluate(E, L[:5]),
        Error(ValueError, "12 embeddings but 5 labels"),
    ),
    "evaluate: one item": (
        lambda: evaluation.evaluate(E[:1], L[:1]),
        Error(ValueError, "at least 2 items"),
    ),
    "evaluate: K = 0": (
        lambda: evaluation.evaluate(E, L, ks=(0,)),
        Error(ValueError, "K=0 is outside"),
    ),
    "evaluate: ks an int": (
        lambda: evaluation.evaluate(E, L, ks=1),
        Error(ValueError, "ks must be a non-empty sequence of ints, got 1"),
    ),
    "evaluate: ks floats": (
        lambda: evaluation.evaluate(E, L, ks=(1.0,)),
        Error(ValueError, "ks must be a non-empty sequence"),
    ),
    "evaluate: negative seed": (
        lambda: evaluation.evaluate(E, L, seed=-1),
        Error(ValueError, "seed must be None or an integer"),
    ),
    "evaluate: string seed": (
        lambda: evaluation.evaluate(E, L, seed="a"),
        Error(ValueError, "seed must be None or an integer"),
    ),
    "evaluate: block_size 0": (
        lambda: evaluation.evaluate(E, L, block_size=0),
        Error(ValueError, "block_size must be an integer >= 1"),
    ),
    "evaluate: block_size 'a'": (
        lambda: evaluation.evaluate(E, L, block_size="a"),
        Error(ValueError, "block_size must be an integer >= 1"),
    ),
    "evaluate: unknown backend": (
        lambda: evaluation.evaluate(E, L, knn_backend="annoy"),
        Error(ValueError, "backend must be one of"),
    ),
    "exact_knn: NaN": (
        lambda: evaluation.exact_knn(np.full((3, 2), np.nan), 1),
        Error(ValueError, "NaN or Inf"),
    ),
    "exact_knn: strings": (lambda: evaluation.exact_knn(E.astype(str), 1), NOT_REAL),
    "exact_knn: rank 1": (lambda: evaluation.exact_knn(E[:, 0], 1), NOT_REAL),
    "exact_knn: k = n": (
        lambda: evaluation.exact_knn(E, 12),
        Error(ValueError, "gallery size"),
    ),
    "exact_knn: k 'a'": (
        lambda: evaluation.exact_knn(E, "a"),
        Error(TypeError, "k must be an integer"),
    ),
    "clustering_nmi: NaN": (
        lambda: evaluation.clustering_nmi(np.full((4, 2), np.nan), L[:4]),
        Error(ValueError, "NaN or Inf"),
    ),
    "clustering_nmi: d = 0": (
        lambda: evaluation.clustering_nmi(np.zeros((4, 0)), L[:4]),
        Error(ValueError, "d = 0"),
    ),
    "clustering_nmi: lengths differ": (
        lambda: evaluation.clustering_nmi(E, L[:3]),
        Error(ValueError, "12 embeddings but 3 labels"),
    ),
    "nmi: lengths differ": (
        lambda: evaluation.nmi(L, L[:5]),
        Error(ValueError, "equal length"),
    ),
    "nmi: empty": (
        lambda: evaluation.nmi(L[:0], L[:0]),
        Error(ValueError, "non-empty"),
    ),
    "nmi: string labelings": (lambda: evaluation.nmi(L.astype(str), L), VALID),
    "recall_at_k: K = 0": (
        lambda: evaluation.recall_at_k(M, 0),
        Error(ValueError, "first 0 neighbours"),
    ),
    "recall_at_k: K above the width": (
        lambda: evaluation.recall_at_k(M, 5),
        Error(ValueError, "first 5 neighbours"),
    ),
    "recall_at_k: counts, not matches": (
        lambda: evaluation.recall_at_k(M.astype(int) * 3, 1),
        Error(ValueError, "matches must be bool"),
    ),
    "recall_at_k: 0 / 1 matches": (
        lambda: evaluation.recall_at_k(M.astype(int), 1),
        VALID,
    ),
    "recall_at_k: rank 1": (
        lambda: evaluation.recall_at_k(M[:, 0], 1),
        Error(ValueError, r"\[queries, k\]"),
    ),
    "map_at_r: R of another length": (
        lambda: evaluation.map_at_r(M, np.array([1, 1])),
        Error(ValueError, "num_relevant has shape"),
    ),
    "map_at_r: R = 0": (
        lambda: evaluation.map_at_r(M, np.array([0, 1, 1])),
        Error(ValueError, "R >= 1"),
    ),
    "r_precision: negative R": (
        lambda: evaluation.r_precision(M, np.array([-1, 1, 1])),
        Error(ValueError, "R >= 1"),
    ),
    "neighbour_matches: index out of range": (
        lambda: evaluation.neighbour_matches(L[:2], np.array([[100], [0]])),
        Error(ValueError, r"indices must lie in \[0, 2\)"),
    ),
    "neighbour_matches: negative index": (
        lambda: evaluation.neighbour_matches(L[:2], np.array([[-1], [0]])),
        Error(ValueError, "indices must lie in"),
    ),
    "neighbour_matches: float indices": (
        lambda: evaluation.neighbour_matches(L[:2], np.array([[1.0], [0.0]])),
        Error(ValueError, "integer"),
    ),
    "same_class_counts: rank 2": (
        lambda: evaluation.same_class_counts(np.ones((2, 2))),
        Error(ValueError, r"labels must be \[n\]"),
    ),
}


@pytest.mark.parametrize("case", sorted(EVALUATION_INPUTS))
def test_evaluation_input(case):
    call, expected = EVALUATION_INPUTS[case]
    _check(call, expected)


@pytest.mark.parametrize("scale", [1e20, 1e38, 2.0**-40])
def test_evaluate_is_unchanged_by_a_scale_that_float32_squares_cannot_hold(scale):
    # Independent reference: the same embeddings at unit scale (k-means and the neighbours do
    # not change under a uniform scale). At 1e20 k-means used to give NMI 0 (squares overflow).
    with np.errstate(over="ignore"):
        scaled = evaluation.evaluate(E.astype(np.float64) * scale, L)
    assert scaled == evaluation.evaluate(E, L)


@pytest.mark.parametrize(
    "metrics, context, expected",
    [
        ({"nmi": 0.5}, {}, VALID),
        ({"nmi": float("nan")}, {}, Error(ValueError, "finite number")),
        ({"nmi": "a"}, {}, Error(ValueError, "finite number")),
        ({"nmi": 0.5}, {"where": object()}, Error(TypeError, "not JSON serializable")),
    ],
    ids=["finite", "NaN metric", "string metric", "context JSON cannot hold"],
)
def test_write_metrics_json_input(tmp_path, metrics, context, expected):
    path = str(tmp_path / "sub" / "metrics.json")
    if expected == VALID:
        evaluation.write_metrics_json(path, metrics, **context)
        assert os.path.isfile(path)
    else:
        _check(
            lambda: evaluation.write_metrics_json(path, metrics, **context), expected
        )
        assert not os.path.exists(path)


def test_write_metrics_json_to_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        evaluation.write_metrics_json(str(tmp_path), {"nmi": 0.5})


# --- serving: load_embedder and the export's signatures --------------------------------------


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    model = build_embedder("small_cnn")
    base = str(tmp_path_factory.mktemp("serve") / "export")
    export_saved_model(
        model, base, image_size=32, resize_to=None, channels=1, scaling="unit"
    )
    return load_embedder(base)


_PNG = tf.io.encode_png(np.zeros((32, 32, 1), np.uint8)).numpy()
_JPEG_RGB = tf.io.encode_jpeg(np.zeros((40, 50, 3), np.uint8)).numpy()
_RGBA = tf.io.encode_png(np.zeros((20, 20, 4), np.uint8)).numpy()
FLOAT_IMAGES = np.zeros((2, 32, 32, 1), np.float32)
NOT_FLOAT = Error(ValueError, "Float images must be float, already scaled")
SERVING_INPUTS = {
    "PNG bytes": ([_PNG, _PNG], VALID),
    "one bytes": (_PNG, VALID),
    "RGB JPEG for a grey model": ([_JPEG_RGB], VALID),
    "RGBA PNG": ([_RGBA], VALID),
    "float images": (FLOAT_IMAGES, VALID),
    "float64 images": (FLOAT_IMAGES.astype(np.float64), VALID),
    "empty float batch": (FLOAT_IMAGES[:0], VALID),
    "uint8 pixels": (FLOAT_IMAGES.astype(np.uint8) + 255, NOT_FLOAT),
    "bool images": (FLOAT_IMAGES > 0, NOT_FLOAT),
    "None": (None, NOT_FLOAT),
    "a file name (str)": ("cat.png", Error(ValueError, "must be bytes .* not str")),
    "file names (list of str)": (["cat.png"], Error(ValueError, "not str")),
    "wrong size": (
        np.zeros((2, 64, 64, 1), np.float32),
        Error(ValueError, r"\[batch, 32, 32, 1\]"),
    ),
    "wrong channels": (
        np.zeros((2, 32, 32, 3), np.float32),
        Error(ValueError, r"32, 32, 1\]"),
    ),
    "one image without batch axis": (
        FLOAT_IMAGES[0],
        Error(ValueError, r"\[batch, 32"),
    ),
    "NaN pixels": (FLOAT_IMAGES + np.nan, Error(ValueError, "NaN or Inf")),
    "rank-2 bytes": ([[_PNG], [_PNG]], Error(ValueError, "flat batch")),
    "bytes that are no image": (
        [_PNG, b"GIF89a" + bytes(30)],
        Error(tf.errors.InvalidArgumentError, "image at index 1"),
    ),
    "truncated PNG": (
        [_PNG[: len(_PNG) // 2]],
        Error(tf.errors.InvalidArgumentError, "image at index 0"),
    ),
    "PNG header claiming 20000 x 20000": (
        [_PNG[:16] + (20000).to_bytes(4, "big") * 2 + _PNG[24:]],
        Error(tf.errors.InvalidArgumentError, "above the limit"),
    ),
}


@pytest.mark.parametrize("case", sorted(SERVING_INPUTS))
def test_serving_input(embedder, case):
    images, expected = SERVING_INPUTS[case]
    _check(lambda: embedder(images), expected)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 64, 64, 1), np.float32), r"images must be \[batch, 32, 32, 1\]"),
        (np.zeros((2, 32, 32, 3), np.float32), r"images must be \[batch, 32, 32, 1\]"),
        (np.full((1, 32, 32, 1), np.nan, np.float32), "NaN or Inf"),
    ],
    ids=["wrong size", "wrong channels", "NaN"],
)
def test_raw_embed_images_signature_input(embedder, images, match):
    signature = embedder.signatures["embed_images"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        signature(images=tf.constant(images))


def test_raw_serving_signature_names_the_bad_image(embedder):
    signature = embedder.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="image at index 1"):
        signature(images=tf.constant([_PNG, b"not an image"]))


@pytest.mark.parametrize(
    "where, expected",
    [
        ("base", VALID),
        ("version", VALID),
        ("missing", Error(FileNotFoundError, "No SavedModel")),
        ("a file", Error(FileNotFoundError, "No SavedModel")),
        ("empty dir", Error(FileNotFoundError, "No SavedModel")),
        ("''", Error(FileNotFoundError, "No SavedModel")),
        ("None", Error(TypeError, "export_dir must be a path")),
    ],
)
def test_load_embedder_path(embedder, tmp_path, where, expected):
    version = embedder.export_dir
    paths = {
        "base": os.path.dirname(version),
        "version": version,
        "missing": str(tmp_path / "nope"),
        "a file": os.path.join(version, "saved_model.pb"),
        "empty dir": str(tmp_path),
        "''": "",
        "None": None,
    }
    _check(lambda: load_embedder(paths[where])(FLOAT_IMAGES), expected)


# --- data_prep loaders -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("file") / "not_a_dir"
    path.write_text("x")
    return str(path)


UNKNOWN_SET = Error(ValueError, r"Unknown data set 'mnist'; use one of .*hangul")
DATA_INPUTS = {
    "load: unknown name": (lambda f: data_prep.load("mnist", "train"), UNKNOWN_SET),
    "load: unknown split": (
        lambda f: data_prep.load("glyphs", "validation"),
        Error(ValueError, "Unknown split 'validation'"),
    ),
    "load: unknown scaling": (
        lambda f: data_prep.load("cub200", "test", scaling="bogus"),
        Error(ValueError, "Unknown pixel scaling 'bogus'"),
    ),
    "load: paper set not prepared": (
        lambda f: data_prep.load("cub200", "test", data_dir=os.path.dirname(f)),
        Error(data_prep.DataSetNotFoundError, "is not prepared in .*manual_dir"),
    ),
    "load: data_dir is a file": (
        lambda f: data_prep.load("glyphs", "test", data_dir=f),
        Error(NotADirectoryError, "is a file"),
    ),
    "load: manual_dir missing": (
        lambda f: data_prep.load("cub200", "test", manual_dir=f + ".missing"),
        Error(FileNotFoundError, "manual_dir .* is not a directory"),
    ),
    "class_ratio_batches: unknown name": (
        lambda f: data_prep.class_ratio_batches("mnist"),
        UNKNOWN_SET,
    ),
    "class_ratio_batches: batch_size 1": (
        lambda f: data_prep.class_ratio_batches("glyphs", batch_size=1),
        Error(ValueError, "batch_size must be an integer >= 2"),
    ),
    "class_ratio_batches: batch_size 'a'": (
        lambda f: data_prep.class_ratio_batches("glyphs", batch_size="a"),
        Error(ValueError, "batch_size must be an integer >= 2"),
    ),
    "class_ratio_batches: ratio 0": (
        lambda f: data_prep.class_ratio_batches("glyphs", ratio=0.0),
        Error(ValueError, r"must be in \(0, 1\]"),
    ),
    "class_ratio_batches: ratio NaN": (
        lambda f: data_prep.class_ratio_batches("glyphs", ratio=math.nan),
        Error(ValueError, r"must be in \(0, 1\]"),
    ),
    "class_ratio_batches: more classes than the set": (
        lambda f: data_prep.class_ratio_batches("hangul", batch_size=4000),
        Error(ValueError, "usable classes, fewer than"),
    ),
    "class_ratio_batches: num_batches 0": (
        lambda f: data_prep.class_ratio_batches("glyphs", num_batches=0),
        Error(ValueError, "num_batches must be None"),
    ),
    "class_ratio_batches: num_batches -1": (
        lambda f: data_prep.class_ratio_batches("glyphs", num_batches=-1),
        Error(ValueError, "num_batches must be None"),
    ),
    "class_ratio_batches: sub-batches that do not divide m": (
        lambda f: data_prep.class_ratio_batches("glyphs", sub_batches=3),
        Error(ValueError, "does not divide into 3 sub-batches"),
    ),
    "class_ratio_batches: data_dir is a file": (
        lambda f: data_prep.class_ratio_batches("cub200", data_dir=f),
        Error(NotADirectoryError, "is a file"),
    ),
    "class_ratio_batches: glyphs, 2 batches": (
        lambda f: [
            b[1] for b in data_prep.class_ratio_batches("glyphs", num_batches=2)
        ],
        VALID,
    ),
    "glyphs.load_arrays: unknown split": (
        lambda f: glyphs.load_arrays("val"),
        Error(ValueError, "unknown split 'val'"),
    ),
    "hangul.load_arrays: unknown split": (
        lambda f: hangul.load_arrays(None),
        Error(ValueError, "unknown split None"),
    ),
    "floor_metrics: unknown name": (
        lambda f: data_prep.floor_metrics("mnist"),
        UNKNOWN_SET,
    ),
}


@pytest.mark.parametrize("case", sorted(DATA_INPUTS))
def test_data_prep_input(a_file, case):
    call, expected = DATA_INPUTS[case]
    _check(lambda: call(a_file), expected)
