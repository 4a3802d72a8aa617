"""triplet_semihard_loss against a loop-by-loop numpy reading of paper eq. 1 (semi-hard variant)."""

import numpy as np
import tensorflow as tf

from fl_embed.losses.triplet import (
    pair_masks,
    triplet_semihard_loss,
)


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
