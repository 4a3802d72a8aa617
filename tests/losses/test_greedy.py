"""Algorithm 1 (`greedy.py`) against the independent references in `reference.py`."""

import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import loss_augmented_inference
from fl_embed.losses.greedy import greedy_facilities
from fl_embed.losses.pam import pam_refine
from tests.losses import reference as ref
from tests.losses.batches import random_batch as _batch
from tests.losses.batches import tf_distances as _tf_distances
from tests.losses.batches import tie_heavy_batch as _tie_heavy_batch


def test_greedy_alone_matches_algorithm_1():
    rng = np.random.default_rng(5)
    x, y = _batch(rng, 10, 3)
    expected = ref.greedy(ref.distances(x), y, 1.0)
    got = (
        loss_augmented_inference(y, x, 1.0, enable_pam_finetuning=False)
        .numpy()
        .tolist()
    )
    assert got == expected


@pytest.mark.parametrize("margin_type", ["nmi", "ami", "ari", "vmeasure", "const"])
def test_greedy_and_pam_give_the_reference_medoids(margin_type):
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, y = _batch(rng, 9, 4)
        gamma = float(rng.choice([0.1, 1.0, 4.0]))
        _, expected = ref.loss(ref.distances(x), y, gamma, margin_type)
        got = (
            loss_augmented_inference(y, x, gamma, margin_type=margin_type)
            .numpy()
            .tolist()
        )
        assert got == expected


def test_never_beats_the_exact_maximum_and_finds_it_when_clusters_are_separated():
    rng = np.random.default_rng(6)
    for _ in range(4):
        x, y = _batch(rng, 8, 3, dim=2)
        d = ref.distances(x)
        medoids = loss_augmented_inference(y, x, 1.0).numpy().tolist()
        assert (
            ref.augmented(d, y, medoids, 1.0, "nmi") <= ref.exact_max(d, y, 1.0) + 1e-6
        )
    centers = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    x = np.repeat(centers, 3, axis=0) + rng.normal(scale=0.01, size=(9, 2))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = np.repeat(np.arange(3), 3)
    d = ref.distances(x)
    medoids = loss_augmented_inference(y, x, 0.1).numpy().tolist()
    assert ref.augmented(d, y, medoids, 0.1, "nmi") == pytest.approx(
        ref.exact_max(d, y, 0.1), abs=1e-5
    )


@pytest.mark.parametrize(
    "labels",
    [
        np.zeros(6, int),  # one class
        np.arange(6),  # every point its own class
        np.array([3, 17, 42, 3, 17, 42]),  # labels that are not 0..K-1
    ],
)
def test_degenerate_label_sets_match_the_reference(labels):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, expected = ref.loss(ref.distances(x), ref.dense(labels), 1.0)
    assert loss_augmented_inference(labels, x, 1.0).numpy().tolist() == expected


def test_fewer_slots_than_classes_is_refused():
    rng = np.random.default_rng(15)
    x, y = _batch(rng, 12, 5)
    d, labels = tf.constant(_tf_distances(x)), tf.constant(y, tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_slots"):
        greedy_facilities(d, labels, 1.0, num_slots=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_slots"):
        pam_refine(d, labels, tf.range(4), 1.0)


@pytest.mark.parametrize(
    "margin_type, jit", [("nmi", False), ("nmi", True), ("vmeasure", True)]
)
def test_pruned_greedy_gives_the_numpy_medoids_on_tie_heavy_and_random_batches(
    margin_type, jit
):
    # m > the pruning chunk (16), so most steps score only the candidates whose bound can win;
    # gamma = 0 (energy alone), 1 and 30 (the margin dominates, little is pruned).
    from fl_embed.losses.numpy_inference import greedy_facilities_np

    rng = np.random.default_rng(21)
    solve = lambda d, y, g: greedy_facilities(d, y, g, margin_type)
    if jit:
        solve = tf.function(solve, jit_compile=True)
    cases = [_tie_heavy_batch(rng, 40, 12), _tie_heavy_batch(rng, 48, 30)]
    cases.append(_batch(rng, 64, 20, dim=8))
    for x, y in cases:
        d = _tf_distances(x)
        for gamma in (0.0, 1.0, 30.0):
            expected = greedy_facilities_np(d.astype(np.float64), y, gamma, margin_type)
            got = solve(tf.constant(d), tf.constant(y, tf.int32), tf.constant(gamma))
            np.testing.assert_array_equal(got.numpy()[: len(expected)], expected)
