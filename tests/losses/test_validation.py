"""Bad inputs to every loss are clear errors; label ids are compared exactly (issue 14)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.evaluation import evaluate
from fl_embed.losses import ClusteringLoss, cluster_loss
from fl_embed.losses.lifted import LiftedStructLoss, lifted_struct_loss
from fl_embed.losses.npairs import NPairsLoss, npairs_loss
from fl_embed.losses.triplet import TripletSemiHardLoss, triplet_semihard_loss
from fl_embed.losses.validation import DegenerateBatchWarning, class_ids

LOSS_FNS = {
    "cluster": lambda y, x, **kw: cluster_loss(y, x, 1.0, **kw),
    "triplet": triplet_semihard_loss,
    "lifted": lifted_struct_loss,
    "npairs": npairs_loss,
}
LOSS_CLASSES = {
    "cluster": ClusteringLoss,
    "triplet": TripletSemiHardLoss,
    "lifted": LiftedStructLoss,
    "npairs": NPairsLoss,
}
HYPER = {"triplet": "margin", "lifted": "margin", "npairs": "reg_lambda"}


def _unit(rows, dim=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_class_ids_number_classes_in_order_of_first_appearance():
    ids = np.array([2**40, 7, 2**40 + 1, 7, 2**40], np.int64)
    assert class_ids(ids, "t").numpy().tolist() == [0, 1, 2, 1, 0]


@pytest.mark.parametrize("loss", sorted(LOSS_FNS))
@pytest.mark.parametrize(
    "ids", [[0, 2**32], [2**31, 2**31 + 2**32], [-(2**33), 0]], ids=str
)
def test_int64_ids_beyond_int32_stay_distinct_classes(loss, ids):
    x = _unit(6)
    small = np.array([0, 0, 1, 1, 0, 1])
    big = np.array(ids, np.int64)[small]
    expected = float(LOSS_FNS[loss](small, x))
    assert expected > 0.0
    assert float(LOSS_FNS[loss](big, x)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss", sorted(LOSS_CLASSES))
def test_keras_losses_keep_ids_that_float32_cannot_tell_apart(loss):
    # Keras casts y_true to float32, where 2**24 and 2**24 + 1 are the same number.
    x = _unit(6)
    small = np.array([0, 0, 1, 1, 0, 1])
    big = np.array([2**24, 2**24 + 1], np.int64)[small]
    instance = LOSS_CLASSES[loss]()
    expected = float(LOSS_FNS[loss](small, x))
    assert float(instance(big, x)) == pytest.approx(expected, rel=1e-6)
    assert float(instance(big[:, None], x)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss", sorted(LOSS_FNS))
def test_zero_dimensional_embeddings_are_a_clear_error(loss):
    with pytest.raises(ValueError, match="dimension d = 0"):
        LOSS_FNS[loss](np.array([0, 0, 1, 1]), np.zeros((4, 0), np.float32))


@pytest.mark.parametrize("loss", sorted(LOSS_FNS))
def test_zero_dimensional_embeddings_of_unknown_shape_fail_at_run_time(loss):
    fn = tf.function(
        lambda y, x: LOSS_FNS[loss](y, x, **({"inference": "graph"} if loss == "cluster" else {})),
        input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, None])],
    )  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError, match="dimension d = 0"):
        fn(tf.constant([0, 0, 1, 1], tf.int64), tf.zeros((4, 0)))


def test_evaluate_refuses_zero_dimensional_embeddings():
    with pytest.raises(ValueError, match="d = 0"):
        evaluate(np.zeros((6, 0), np.float32), np.array([0, 0, 1, 1, 2, 2]))


@pytest.mark.parametrize("loss", sorted(LOSS_FNS))
def test_string_labels_are_a_clear_error(loss):
    x = _unit(4)
    with pytest.raises(
        ValueError, match="labels must be integer class ids, got dtype string"
    ):
        LOSS_FNS[loss](np.array(["a", "a", "b", "b"]), x)
    with pytest.raises(
        ValueError, match="labels must be integer class ids, got dtype string"
    ):
        LOSS_CLASSES[loss]()(tf.constant(["a", "a", "b", "b"]), x)


def test_string_labels_from_a_dataset_in_model_fit_are_a_clear_error():
    x = _unit(8)
    data = tf.data.Dataset.from_tensor_slices((x, np.array(["a", "b"] * 4))).batch(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=TripletSemiHardLoss())
    with pytest.raises(ValueError, match="integer class ids, got dtype string"):
        model.fit(data, verbose=0)


BAD_NUMBERS = [
    (float("nan"), "finite number >= 0"),
    (float("inf"), "finite number >= 0"),
    (-1.0, "finite number >= 0"),
    (-1, "finite number >= 0"),
    (np.float32(-0.5), "finite number >= 0"),
    ("a", "must be a number"),
    (None, "must be a number"),
    (True, "must be a number"),
    ([1.0], "must be a number"),
]


@pytest.mark.parametrize("loss", sorted(HYPER))
@pytest.mark.parametrize("value, match", BAD_NUMBERS, ids=repr)
def test_bad_hyper_parameters_are_a_clear_value_error(loss, value, match):
    name = HYPER[loss]
    with pytest.raises(ValueError, match=f"{name} must be a"):
        LOSS_FNS[loss](np.array([0, 0, 1, 1]), _unit(4), **{name: value})
    with pytest.raises(ValueError, match=match):
        LOSS_CLASSES[loss](**{name: value})


@pytest.mark.parametrize("loss", sorted(HYPER))
@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_bad_hyper_parameter_tensors_fail_at_run_time(loss, value):
    name = HYPER[loss]
    fn = tf.function(
        lambda v: LOSS_FNS[loss](np.array([0, 0, 1, 1]), _unit(4), **{name: v})
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name} must be"):
        fn(tf.constant(value))


@pytest.mark.parametrize("loss", sorted(HYPER))
def test_valid_hyper_parameters_of_every_kind_give_the_same_loss(loss):
    name, x, y = HYPER[loss], _unit(6), np.array([0, 0, 1, 1, 2, 2])
    values = [0.5, np.float64(0.5), tf.constant(0.5), tf.Variable(0.5)]
    results = [float(LOSS_FNS[loss](y, x, **{name: v})) for v in values]
    assert results == pytest.approx([results[0]] * 4, rel=1e-6)


@pytest.mark.parametrize("loss", sorted(LOSS_FNS))
def test_embeddings_whose_squared_distances_overflow_are_refused(loss):
    x = _unit(6) * 1e20
    y = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="embeddings too large"):
        LOSS_FNS[loss](y, x)
    # Just below the bound 4 max ||x||^2 <= float32 max the loss is a finite number.
    assert np.isfinite(float(LOSS_FNS[loss](y, _unit(6) * 9e18)))


def _sorted_fit(loss, batch_size, jit_compile=False):
    """model.fit on 4 classes of 8 items in class order, without shuffling."""
    y = np.repeat(np.arange(4), 8)
    x = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.UnitNormalization()]
    )
    model.compile(optimizer="sgd", loss=loss, jit_compile=jit_compile)
    return model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)


def test_clustering_loss_warns_once_about_single_class_batches_in_fit():
    loss = ClusteringLoss()
    with pytest.warns(DegenerateBatchWarning, match="batch 0 is degenerate") as caught:
        history = _sorted_fit(loss, batch_size=8)
    assert len([w for w in caught if w.category is DegenerateBatchWarning]) == 1
    assert history.history["loss"] == [0.0, 0.0]
    assert loss.degenerate_batches.batches == 8
    assert loss.degenerate_batches.degenerate == [
        (i, "all 8 labels are one class") for i in range(8)
    ]


def test_clustering_loss_does_not_warn_on_mixed_batches():
    loss = ClusteringLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateBatchWarning)
        _sorted_fit(loss, batch_size=16)
    assert loss.degenerate_batches.batches == 4
    assert loss.degenerate_batches.degenerate == []
