"""npairs_loss against a loop-by-loop numpy reading of paper eq. 3."""

import numpy as np
import tensorflow as tf

from fl_embed.losses.npairs import embedding_norm_penalty, npairs_loss
from tests.losses.baseline_references import (
    autodiff,
    reference_npairs,
)


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


def test_zero_embedding_gets_a_finite_regulariser_gradient():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    loss, grad = autodiff(npairs_loss, np.array([0, 0, 1, 1]), x, reg_lambda=1.0)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    embeddings = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        penalty = embedding_norm_penalty(embeddings)
    np.testing.assert_allclose(penalty.numpy(), (0 + 1 + 1 + 2) / 4)
    np.testing.assert_array_equal(tape.gradient(penalty, embeddings).numpy()[0], 0.0)
