"""Recall@K against brute force; MAP@R and R-precision on hand-worked examples."""

import numpy as np
import pytest

from fl_embed.evaluation.knn import exact_knn
from fl_embed.evaluation.retrieval import (
    map_at_r,
    neighbour_matches,
    r_precision,
    recall_at_k,
    same_class_counts,
)


def brute_force_recall(x: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Loop over queries with another item of their class; stable sort so ties go to the lower index."""
    x = x.astype(np.float64)
    hits = []
    for q in range(len(x)):
        others = [j for j in range(len(x)) if j != q]
        if not any(labels[j] == labels[q] for j in others):
            continue
        dist = np.linalg.norm(x[others] - x[q], axis=1)
        nearest = np.array(others)[np.argsort(dist, kind="stable")[:k]]
        hits.append(any(labels[j] == labels[q] for j in nearest))
    return float(np.mean(hits))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("grid", [False, True], ids=["continuous", "tied_grid"])
def test_recall_at_k_matches_brute_force_with_singleton_classes(seed, grid):
    rng = np.random.default_rng(seed)
    labels = np.concatenate(
        [rng.integers(0, 15, size=120), [100, 101, 102]]
    )  # three singletons
    if grid:
        x = rng.integers(0, 3, size=(123, 3)).astype(np.float32)
    else:
        x = rng.normal(size=(123, 4)).astype(np.float32)
    has_relevant = same_class_counts(labels) > 0
    _, indices = exact_knn(x, 16)
    matches = neighbour_matches(labels, indices)[has_relevant]
    for k in (1, 2, 4, 8, 16):
        assert recall_at_k(matches, k) == pytest.approx(
            brute_force_recall(x, labels, k), abs=1e-12
        )


def test_same_class_counts_excludes_the_query_itself():
    np.testing.assert_array_equal(
        same_class_counts(np.array([5, 5, 7, 5, -1])), [2, 2, 0, 2, 0]
    )


def test_map_at_r_hand_worked():
    # Query A: R = 4, ranked relevance T F T T (the fifth neighbour, T, lies beyond R):
    #   AP = (1/1 + 2/3 + 3/4) / 4 = 29/48.
    # Query B: R = 2, F T: AP = (1/2) / 2 = 1/4.  MAP@R = (29/48 + 1/4) / 2 = 41/96.
    matches = np.array([[1, 0, 1, 1, 1], [0, 1, 1, 1, 1]], dtype=bool)
    assert map_at_r(matches, np.array([4, 2])) == pytest.approx(41 / 96)


def test_map_at_r_rewards_order_where_r_precision_does_not():
    # Reality Check, section 3.2: with R = 10 and 3 relevant neighbours, the order changes MAP@R
    # (all first: 3/10; all last: (1/8 + 2/9 + 3/10)/10), not R-precision (3/10 both).
    first = np.zeros((1, 10), bool)
    first[0, :3] = True
    last = np.zeros((1, 10), bool)
    last[0, 7:] = True
    r = np.array([10])
    assert map_at_r(first, r) == pytest.approx(0.3)
    assert map_at_r(last, r) == pytest.approx((1 / 8 + 2 / 9 + 3 / 10) / 10)
    assert r_precision(first, r) == pytest.approx(0.3)
    assert r_precision(last, r) == pytest.approx(0.3)


def test_r_precision_hand_worked():
    matches = np.array([[1, 0, 1, 1, 1], [0, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    # 3/4, 1/2, 1/1 -> mean 0.75
    assert r_precision(matches, np.array([4, 2, 1])) == pytest.approx(0.75)


def test_recall_at_k_larger_than_the_neighbour_list_raises():
    with pytest.raises(ValueError, match="first 9 neighbours"):
        recall_at_k(np.ones((3, 8), bool), 9)


def test_map_at_r_rejects_a_query_without_relevant_items():
    with pytest.raises(ValueError, match="R >= 1"):
        map_at_r(np.ones((2, 3), bool), np.array([2, 0]))


def test_map_at_r_rejects_too_few_neighbours_for_r():
    with pytest.raises(ValueError, match="first 4 neighbours"):
        map_at_r(np.ones((2, 3), bool), np.array([2, 4]))
