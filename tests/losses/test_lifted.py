"""lifted_struct_loss against a loop-by-loop numpy reading of paper eq. 2."""

import numpy as np
import pytest

from fl_embed.losses.lifted import lifted_struct_loss
from tests.losses.baseline_references import (
    autodiff,
    numeric_gradient,
    reference_lifted_struct,
)


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
