"""Algorithm 2 (`pam.py`): Lemma 1, and the incremental bookkeeping against the numpy fallback."""

import numpy as np
import pytest

from fl_embed.losses import loss_augmented_inference
from fl_embed.losses.numpy_inference import loss_augmented_inference_np, pam_refine_np
from tests.losses import reference as ref
from tests.losses.batches import random_batch as _batch


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
