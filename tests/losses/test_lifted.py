"""lifted_struct_loss against a loop-by-loop numpy reading of paper eq. 2."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

from fl_embed.losses.lifted import LiftedStructLoss, lifted_struct_loss


def reference_lifted_struct(labels: np.ndarray, x: np.ndarray, margin: float) -> float:
    """Paper eq. 2 written as loops over positive pairs, in float64."""
    m = len(labels)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    terms = []
    for i in range(m):
        for j in range(m):
            if j == i or labels[j] != labels[i]:
                continue
            exponents = [
                margin - dist[i, k] for k in range(m) if labels[k] != labels[i]
            ]
            exponents += [
                margin - dist[j, k] for k in range(m) if labels[k] != labels[j]
            ]
            if not exponents:
                continue
            objective = logsumexp(exponents) + dist[i, j]
            terms.append(max(objective, 0.0) ** 2)
    return float(np.sum(terms) / (2 * len(terms))) if terms else 0.0


def numeric_gradient(fn, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return grad


def autodiff(loss_fn, labels, x: np.ndarray, **kwargs):
    embeddings = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, embeddings, **kwargs)
    return loss.numpy(), tape.gradient(loss, embeddings).numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("margin", [0.5, 1.0])
def test_value_matches_numpy_reference_on_random_batches(seed, margin):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=16)
    x = rng.normal(size=(16, 8))
    got = lifted_struct_loss(labels, x.astype(np.float32), margin=margin).numpy()
    np.testing.assert_allclose(
        got, reference_lifted_struct(labels, x, margin), rtol=1e-5
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences_of_reference(seed):
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    x = rng.normal(size=(9, 3))
    _, grad = autodiff(lifted_struct_loss, labels, x, margin=1.0)
    expected = numeric_gradient(lambda z: reference_lifted_struct(labels, z, 1.0), x)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4)


def test_hand_worked_batch_of_four_points_on_a_line():
    # Points 0, 1 (class 0) and 3, 5 (class 1), margin 1. Pair (0, 1): negatives of 0 at
    # distances 3, 5, of 1 at 2, 4 -> J = log(e^-2 + e^-4 + e^-1 + e^-3) + 1. Pair (3, 5):
    # negatives of 3 at 3, 2, of 5 at 5, 4 -> J = log(e^-2 + e^-1 + e^-4 + e^-3) + 2.
    x = np.array([[0.0], [1.0], [3.0], [5.0]], np.float32)
    base = np.log(np.exp(-1) + np.exp(-2) + np.exp(-3) + np.exp(-4))
    expected = (
        (base + 1) ** 2 + (base + 2) ** 2
    ) / 4  # ordered pairs: 1/(2*4) * 2 * (...)
    got = lifted_struct_loss(np.array([0, 0, 1, 1]), x, margin=1.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_large_unnormalised_embeddings_stay_finite_and_match_reference():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=12)
    x = 300.0 * rng.normal(
        size=(12, 4)
    )  # exp(margin - D) and exp(D) both under/overflow naively
    loss, grad = autodiff(lifted_struct_loss, labels, x)
    np.testing.assert_allclose(loss, reference_lifted_struct(labels, x, 1.0), rtol=1e-4)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    "labels",
    [np.zeros(6, np.int32), np.arange(6, dtype=np.int32)],
    ids=["no_negative", "no_positive"],
)
def test_degenerate_batch_gives_zero_loss_and_zero_gradient(labels):
    x = np.random.default_rng(0).normal(size=(6, 4))
    loss, grad = autodiff(lifted_struct_loss, labels, x)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, 0.0)


def test_duplicate_embeddings_give_a_finite_gradient():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss, grad = autodiff(lifted_struct_loss, np.array([0, 0, 1, 1]), x)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def test_float16_embeddings_are_computed_in_float32():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=12)
    x = rng.normal(size=(12, 8)).astype(np.float16)
    loss = lifted_struct_loss(labels, x)
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(
        loss.numpy(),
        reference_lifted_struct(labels, x.astype(np.float64), 1.0),
        rtol=1e-5,
    )


def test_tf_function_with_unknown_batch_size_matches_eager():
    fn = tf.function(
        lifted_struct_loss,
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
        ],
    )
    rng = np.random.default_rng(4)
    for m in (5, 11):
        labels = rng.integers(0, 3, size=m).astype(np.int32)
        x = rng.normal(size=(m, 4)).astype(np.float32)
        np.testing.assert_allclose(
            fn(labels, x).numpy(), lifted_struct_loss(labels, x).numpy(), rtol=1e-6
        )


def test_mismatched_batch_sizes_raise_a_clear_error():
    with pytest.raises(ValueError, match="disagree on the batch size"):
        lifted_struct_loss(np.array([0, 0, 1]), np.ones((4, 2), np.float32))


def test_keras_loss_round_trips_through_serialization():
    loss = LiftedStructLoss(margin=0.7)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert isinstance(restored, LiftedStructLoss)
    assert restored.get_config()["margin"] == 0.7


def test_keras_loss_trains_a_model_with_fit():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(64, 10)).astype(np.float32)
    labels = rng.integers(0, 4, size=(64, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8)])
    model.compile(optimizer="sgd", loss=LiftedStructLoss(margin=1.0))
    history = model.fit(features, labels, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = reference_lifted_struct(
        labels[:16, 0], model.predict(features[:16], verbose=0).astype(float), 1.0
    )
    np.testing.assert_allclose(
        model.evaluate(features[:16], labels[:16], verbose=0), expected, rtol=1e-4
    )
