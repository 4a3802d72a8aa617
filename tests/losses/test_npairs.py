"""npairs_loss against a loop-by-loop numpy reading of paper eq. 3."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

from fl_embed.losses.npairs import NPairsLoss, embedding_norm_penalty, npairs_loss


def reference_npairs(labels: np.ndarray, x: np.ndarray, reg_lambda: float) -> float:
    """Paper eq. 3 written as loops over ordered positive pairs, in float64."""
    m = len(labels)
    sim = x @ x.T
    terms = []
    for i in range(m):
        negatives = [sim[i, k] for k in range(m) if labels[k] != labels[i]]
        if not negatives:
            continue
        for j in range(m):
            if j == i or labels[j] != labels[i]:
                continue
            # -log(exp(S_ij) / (exp(S_ij) + sum_k exp(S_ik))), via logsumexp so large S do not overflow.
            terms.append(logsumexp([sim[i, j], *negatives]) - sim[i, j])
    if not terms:
        return 0.0
    return float(np.mean(terms) + reg_lambda / m * np.linalg.norm(x, axis=1).sum())


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
@pytest.mark.parametrize("reg_lambda", [0.0, 0.002, 0.5])
def test_value_matches_numpy_reference_on_random_batches(seed, reg_lambda):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=16)
    x = rng.normal(size=(16, 8))
    got = npairs_loss(labels, x.astype(np.float32), reg_lambda=reg_lambda).numpy()
    np.testing.assert_allclose(got, reference_npairs(labels, x, reg_lambda), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences_of_reference(seed):
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    x = rng.normal(size=(9, 3))
    _, grad = autodiff(npairs_loss, labels, x, reg_lambda=0.1)
    expected = numeric_gradient(lambda z: reference_npairs(labels, z, 0.1), x)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4)


def test_hand_worked_batch_of_three_points():
    # Points a = (1, 0), b = (2, 0) of class 0 and c = (0, 3) of class 1, lambda 0.
    # S_ab = 2, S_ac = 0, S_bc = 0. Pairs (a, b): -log(e^2 / (e^2 + e^0)); (b, a): the same.
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], np.float32)
    expected = np.log1p(np.exp(-2.0))
    got = npairs_loss(np.array([0, 0, 1]), x, reg_lambda=0.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The regulariser is the mean norm, not squared: (1 + 2 + 3) / 3 = 2.
    got = npairs_loss(np.array([0, 0, 1]), x, reg_lambda=0.5).numpy()
    np.testing.assert_allclose(got, expected + 0.5 * 2.0, rtol=1e-6)


def test_large_unnormalised_embeddings_stay_finite_and_match_reference():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=12)
    x = 40.0 * rng.normal(
        size=(12, 4)
    )  # dot products in the thousands overflow a naive exp
    loss, grad = autodiff(npairs_loss, labels, x)
    np.testing.assert_allclose(loss, reference_npairs(labels, x, 0.002), rtol=1e-4)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    "labels",
    [np.zeros(6, np.int32), np.arange(6, dtype=np.int32)],
    ids=["no_negative", "no_positive"],
)
def test_degenerate_batch_gives_zero_loss_and_zero_gradient(labels):
    x = np.random.default_rng(0).normal(size=(6, 4))
    loss, grad = autodiff(npairs_loss, labels, x)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, 0.0)


def test_zero_embedding_gets_a_finite_regulariser_gradient():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    loss, grad = autodiff(npairs_loss, np.array([0, 0, 1, 1]), x, reg_lambda=1.0)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    embeddings = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        penalty = embedding_norm_penalty(embeddings)
    np.testing.assert_allclose(penalty.numpy(), (0 + 1 + 1 + 2) / 4)
    np.testing.assert_array_equal(tape.gradient(penalty, embeddings).numpy()[0], 0.0)


def test_float16_embeddings_are_computed_in_float32():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=12)
    x = rng.normal(size=(12, 8)).astype(np.float16)
    loss = npairs_loss(labels, x)
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(
        loss.numpy(), reference_npairs(labels, x.astype(np.float64), 0.002), rtol=1e-5
    )


def test_tf_function_with_unknown_batch_size_matches_eager():
    fn = tf.function(
        npairs_loss,
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
            fn(labels, x).numpy(), npairs_loss(labels, x).numpy(), rtol=1e-6
        )


def test_labels_of_the_wrong_rank_raise_a_clear_error():
    with pytest.raises(ValueError, match="labels must have shape"):
        npairs_loss(np.zeros((4, 2), np.int32), np.ones((4, 2), np.float32))


def test_keras_loss_round_trips_through_serialization():
    loss = NPairsLoss(reg_lambda=0.01)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert isinstance(restored, NPairsLoss)
    assert restored.get_config()["reg_lambda"] == 0.01


def test_keras_loss_trains_a_model_with_fit():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(64, 10)).astype(np.float32)
    labels = rng.integers(0, 4, size=(64, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8)])
    model.compile(optimizer="sgd", loss=NPairsLoss())
    history = model.fit(features, labels, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = reference_npairs(
        labels[:16, 0], model.predict(features[:16], verbose=0).astype(float), 0.002
    )
    np.testing.assert_allclose(
        model.evaluate(features[:16], labels[:16], verbose=0), expected, rtol=1e-4
    )
