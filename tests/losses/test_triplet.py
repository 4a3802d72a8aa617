"""triplet_semihard_loss against a loop-by-loop numpy reading of paper eq. 1 (semi-hard variant)."""

import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses.triplet import (
    pair_masks,
    semihard_negatives,
    triplet_semihard_loss,
)
from tests.losses.baseline_references import autodiff, reference_triplet_semihard


def test_negative_at_exactly_the_positive_distance_is_not_semihard():
    # Anchor at 0, positive at 1 (D^2 = 1); negatives at -1 (D^2 = 1, not > 1) and 2 (D^2 = 4).
    x = np.array([[0.0], [1.0], [-1.0], [2.0]], np.float32)
    labels = np.array([0, 0, 1, 2])
    # Pair (0, 1): k* = 3, hinge 1 + 4 - 4 = 1. Pair (1, 0): D^2 = 1; negatives at D^2 4 and 1,
    # so k* is the one at -1 (D^2 4), hinge 1 + 4 - 4 = 1. Mean = 1.
    np.testing.assert_allclose(
        triplet_semihard_loss(labels, x, margin=4.0).numpy(), 1.0, rtol=1e-6
    )


def test_falls_back_to_the_farthest_negative_when_none_is_semihard():
    # Anchor 0 at 0, positive at 10; negatives at 1 and 3, both closer than the positive.
    x = np.array([[0.0], [10.0], [1.0], [3.0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    loss = triplet_semihard_loss(labels, x, margin=1.0).numpy()
    # Pair (0,1): farthest negative 3 -> 100 + 1 - 9 = 92. Pair (1,0): negatives at D^2 81 and 49,
    # none > 100, farthest is 81 -> 100 + 1 - 81 = 20. Pairs (2,3), (3,2): D^2 4; anchor 2's
    # negatives at D^2 1 and 64 -> k* at 64 -> hinge 0; anchor 3's at D^2 9 and 49 -> 9 -> 4+1-9 < 0.
    np.testing.assert_allclose(loss, (92.0 + 20.0) / 4.0, rtol=1e-6)


def test_pair_masks_exclude_the_diagonal_and_split_same_from_different_labels():
    positive, negative = pair_masks(tf.constant([0, 0, 1]))
    np.testing.assert_array_equal(positive.numpy(), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(negative.numpy(), [[0, 0, 1], [0, 0, 1], [1, 1, 0]])


def brute_force_semihard(sq_dists: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """k*(i, j) from a full [m, m, m] scan, ties to the lowest k, written independently."""
    negative = labels[:, None] != labels[None, :]
    semihard = negative[:, None, :] & (sq_dists[:, None, :] > sq_dists[:, :, None])
    nearest = np.argmin(np.where(semihard, sq_dists[:, None, :], np.inf), axis=2)
    farthest = np.argmax(np.where(negative, sq_dists, -np.inf), axis=1)
    return np.where(semihard.any(axis=2), nearest, farthest[:, None])


def tie_heavy_batch(rng, m: int, kind: str) -> np.ndarray:
    """Small-integer embeddings, so float32 squared distances are exact and ties are exact."""
    if kind == "grid":
        return rng.integers(-2, 3, size=(m, 3)).astype(np.float64)
    # Duplicated embeddings: every point is one of a few prototypes.
    prototypes = rng.integers(-3, 4, size=(5, 4)).astype(np.float64)
    return prototypes[rng.integers(0, 5, size=m)]


@pytest.mark.parametrize("m", [17, 96, 200])
@pytest.mark.parametrize("kind", ["grid", "duplicates"])
def test_semihard_negatives_match_an_m_cubed_brute_force_with_ties(m, kind):
    rng = np.random.default_rng(m)
    labels = rng.integers(0, 5, size=m)
    x = tie_heavy_batch(rng, m, kind)
    sq_dists = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    _, negative = pair_masks(tf.constant(labels))
    got = semihard_negatives(tf.constant(sq_dists, tf.float32), negative).numpy()
    expected = brute_force_semihard(sq_dists, labels)
    has_negative = (labels[:, None] != labels[None, :]).any(axis=1)
    np.testing.assert_array_equal(got[has_negative], expected[has_negative])
    assert got.min() >= 0 and got.max() < m  # a valid index even without a negative


def reference_gradient(labels: np.ndarray, x: np.ndarray, margin: float) -> np.ndarray:
    """d loss / d x from the brute-force k*, with d(D_ab^2)/dx_a = 2 (x_a - x_b)."""
    sq_dists = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k_star = brute_force_semihard(sq_dists, labels)
    negative = labels[:, None] != labels[None, :]
    valid = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
    valid &= negative.any(axis=1, keepdims=True)
    grad = np.zeros_like(x)
    for i, j in zip(*np.nonzero(valid)):
        k = k_star[i, j]
        if sq_dists[i, j] + margin - sq_dists[i, k] > 0:
            grad[i] += 2 * (x[i] - x[j]) - 2 * (x[i] - x[k])
            grad[j] -= 2 * (x[i] - x[j])
            grad[k] += 2 * (x[i] - x[k])
    return grad / max(valid.sum(), 1)


@pytest.mark.parametrize("kind", ["grid", "duplicates"])
def test_gradient_on_tie_heavy_batches_follows_the_lowest_index_negative(kind):
    # Duplicated negatives sit at the same distance but are different rows: only the
    # lowest-index one may receive the gradient.
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, size=40)
    x = tie_heavy_batch(rng, 40, kind)
    # Margin 0.5 keeps every hinge off exactly zero (integer distances).
    loss, grad = autodiff(triplet_semihard_loss, labels, x, margin=0.5)
    np.testing.assert_allclose(
        loss, reference_triplet_semihard(labels, x, 0.5), rtol=1e-6
    )
    expected = reference_gradient(labels, x, 0.5)
    assert np.abs(expected).max() > 0.01  # some hinge is active
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
