"""Algorithm 2 (`pam.py`): Lemma 1, and the incremental bookkeeping against the numpy fallback."""

import numpy as np
import pytest

from fl_embed.losses import loss_augmented_inference
from fl_embed.losses.numpy_inference import loss_augmented_inference_np, pam_refine_np
from tests.losses import reference as ref
from tests.losses.batches import random_batch as _batch
from tests.losses.batches import tf_distances, tie_heavy_batch


def test_pam_never_decreases_the_augmented_score_lemma_1():
    # The swap score of Algorithm 2 uses the assignment frozen at the start of a sweep; a search over
    # 3,000 random batches (m <= 8) with the reference found no counter-example.
    rng = np.random.default_rng(7)
    for _ in range(40):
        m = int(rng.integers(4, 14))
        x, y = _batch(rng, m, int(rng.integers(2, m)))
        d = ref.distances(x)
        gamma = float(rng.choice([0.0, 0.5, 2.0]))
        greedy = loss_augmented_inference_np(d, y, gamma, enable_pam_finetuning=False)
        before = ref.augmented(d, y, greedy.tolist(), gamma, "nmi")
        for sweeps in (1, 5):
            after = pam_refine_np(d, y, greedy, gamma, iterations=sweeps)
            assert ref.augmented(d, y, after.tolist(), gamma, "nmi") >= before - 1e-9


@pytest.mark.parametrize("m, num_classes, dim", [(48, 12, 2), (64, 8, 2), (96, 24, 3)])
def test_identical_medoids_on_larger_batches_where_pam_moves_many_medoids(
    m, num_classes, dim
):
    # Low-dimensional points make Algorithm 2 swap often, which exercises the incremental
    # nearest/second-nearest bookkeeping of the XLA inference (a stale update there showed up only
    # at m >= 48).
    rng = np.random.default_rng(11)
    for _ in range(4):
        x, y = _batch(rng, m, num_classes, dim=dim)
        gamma = float(rng.choice([0.5, 1.0, 3.0]))
        xla = loss_augmented_inference(y, x, gamma).numpy()
        numpy = loss_augmented_inference(y, x, gamma, inference="numpy").numpy()
        np.testing.assert_array_equal(xla, numpy)


def _xlogx(x):
    return np.sum(x * np.log(np.where(x > 0, x, 1.0)))


@pytest.mark.parametrize("margin_type", ["nmi", "vmeasure"])
def test_swap_margin_bound_is_at_least_the_margin_after_every_swap(margin_type):
    # The bound that lets Algorithm 2 skip a cluster's swap, against the margin of g(S) with
    # S[k] = j built from scratch by the numpy reference, for every point j and its slot k:
    # random and tie-heavy batches (duplicates, singleton classes), greedy and random medoids.
    import tensorflow as tf

    from fl_embed.losses import candidates as cand
    from fl_embed.losses import pam
    from fl_embed.losses.numpy_inference import (
        assignment_np,
        clustering_score_np,
        greedy_facilities_np,
    )

    rng = np.random.default_rng(41)
    cases = [_batch(rng, 30, 8), _batch(rng, 24, 20), _batch(rng, 20, 2)]
    cases += [tie_heavy_batch(rng, 30, 10), tie_heavy_batch(rng, 26, 20)]
    for x, y in cases:
        m, num_classes = len(y), int(y.max()) + 1
        d = tf_distances(x)
        greedy = greedy_facilities_np(d.astype(np.float64), y, 1.0, margin_type)
        random = rng.choice(m, num_classes, replace=False).astype(np.int32)
        for medoids in (greedy, random):
            n = num_classes + 2
            slots = tf.constant(np.r_[medoids, [m, m]], tf.int32)
            classes = cand.make_classes(tf.constant(y, tf.int32), margin_type, n)
            problem = pam.refinement_problem(
                tf.constant(d), classes, tf.constant(1.0), margin_type
            )
            near = pam.two_nearest(tf.gather(problem.padded, slots))
            slot = assignment_np(d, medoids)
            args = (tf.constant(slot, tf.int32), slots, near)
            args += (tf.zeros([n * (n + 1)], tf.int32), problem)
            bound, margin, _ = pam.swap_margin_bounds(*args)
            s_ac, s_a, _, _ = pam.swap_sum_bounds(*args)
            now = 1.0 - clustering_score_np(y, slot, margin_type)
            assert float(margin) == pytest.approx(now, abs=1e-5)
            for j in range(m):
                trial = medoids.copy()
                trial[slot[j]] = j
                after = assignment_np(d, trial)
                exact = 1.0 - clustering_score_np(y, after, margin_type)
                assert float(bound[j]) >= exact, (m, j)
                # Each half of the bound on its own (either alone can be loose enough to
                # hide an error in the other).
                table = np.zeros((num_classes + 2, num_classes))
                np.add.at(table, (after, y), 1.0)
                assert float(s_ac[j]) <= _xlogx(table) + 1e-3, (m, j)
                assert float(s_a[j]) >= _xlogx(table.sum(axis=1)) - 1e-3, (m, j)


@pytest.mark.parametrize("margin_type", ["nmi", "vmeasure"])
def test_pam_with_skipped_swaps_gives_the_numpy_medoids_on_tie_heavy_batches(
    margin_type,
):
    # Swaps whose medoid provably stays are skipped; gamma = 0 (energy alone, most skipped), 1
    # and 30 (the margin dominates). Low-dimensional random batches make many swaps succeed.
    import tensorflow as tf

    from fl_embed.losses.numpy_inference import greedy_facilities_np
    from fl_embed.losses.pam import pam_refine

    rng = np.random.default_rng(43)
    solve = tf.function(
        lambda d, y, s, g: pam_refine(d, y, s, g, margin_type), jit_compile=True
    )
    cases = [tie_heavy_batch(rng, 40, 12), tie_heavy_batch(rng, 48, 30)]
    cases += [_batch(rng, 64, 16, dim=2), _batch(rng, 48, 30, dim=2)]
    for x, y in cases:
        d = tf_distances(x)
        for gamma in (0.0, 1.0, 30.0):
            start = greedy_facilities_np(d.astype(np.float64), y, gamma, margin_type)
            expected = pam_refine_np(d.astype(np.float64), y, start, gamma, margin_type)
            got = solve(
                tf.constant(d),
                tf.constant(y, tf.int32),
                tf.constant(start, tf.int32),
                tf.constant(gamma),
            )
            np.testing.assert_array_equal(got.numpy(), expected)
