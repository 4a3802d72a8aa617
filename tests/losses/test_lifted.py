"""lifted_struct_loss against a loop-by-loop numpy reading of paper eq. 2."""

import numpy as np

from fl_embed.losses.lifted import lifted_struct_loss
from tests.losses.baseline_references import (
    autodiff,
    reference_lifted_struct,
)


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
