"""ranked_matches against a brute-force ranked list (float64 differences, stable sort: ties to the
lower index) and evaluate(retrieval="ranks") against the neighbour-list path, on tie-heavy sets."""

import numpy as np
import pytest

from fl_embed.evaluation.knn import faiss_module
from fl_embed.evaluation.protocol import evaluate
from fl_embed.evaluation.ranking import ranked_matches
from fl_embed.evaluation.retrieval import same_class_counts
from tests.evaluation.test_knn import brute_force_knn, tie_heavy_sets


def near_ties(n: int = 400) -> np.ndarray:
    """Copies of 20 vectors, each copy moved by a few float32 ulps in one coordinate: distances
    differ below the float32 screen's error bound, so only the exact distances order them."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 8)).astype(np.float32)[rng.integers(0, 20, size=n)]
    steps = rng.integers(-3, 4, size=n)
    x[:, 0] = [
        np.float32(v) if s == 0 else np.nextafter(v, np.float32(np.sign(s) * np.inf))
        for v, s in zip(x[:, 0], steps)
    ]
    for _ in range(2):
        x[:, 1] = np.nextafter(x[:, 1], np.float32(np.inf))
    return x


def ranking_sets():
    return {**tie_heavy_sets(), "near_ties": near_ties()}


def brute_force_reference(x, labels):
    """Per query with R >= 1: same-class flags of the full ranked list, and the first one's rank."""
    full = labels[brute_force_knn(x, len(x) - 1)[1]] == labels[:, None]
    return full, np.argmax(full, axis=1)


# Blocks of one query on three threads, several blocks on one or two, one block (no threads).
@pytest.mark.parametrize("block_size, workers", [(1, 3), (37, 1), (37, 2), (1024, 2)])
@pytest.mark.parametrize("classes", [4, 30, 160])
@pytest.mark.parametrize("name", ["grid", "duplicates", "tie_groups", "near_ties"])
def test_matches_the_brute_force_ranked_list_where_the_metrics_read_it(
    name, classes, block_size, workers
):
    x = ranking_sets()[name]
    labels = np.random.default_rng(classes).integers(0, classes, size=len(x))
    r = same_class_counts(labels)
    depth = max(100, int(r.max()))
    matches = ranked_matches(x, labels, depth, block_size=block_size, workers=workers)
    full, first = brute_force_reference(x, labels)
    for q in np.flatnonzero(r > 0):
        np.testing.assert_array_equal(matches[q, : r[q]], full[q, : r[q]], f"query {q}")
        expected_first = first[q] if first[q] < depth else None
        found = np.flatnonzero(matches[q])
        assert (found[0] if found.size else None) == expected_first, f"query {q}"
    assert not matches[r == 0].any()


@pytest.mark.parametrize("name", ["grid", "duplicates", "tie_groups", "near_ties"])
def test_evaluate_gives_the_same_metrics_by_ranks_and_by_neighbour_lists(name):
    x = ranking_sets()[name]
    labels = np.random.default_rng(7).integers(0, 25, size=len(x))
    labels[:3] = [1000, 1001, 1002]  # singletons stay in the gallery only
    ks = (1, 2, 4, 8, 100)
    by_ranks = evaluate(x, labels, ks=ks, retrieval="ranks")
    assert by_ranks == evaluate(x, labels, ks=ks, retrieval="knn", knn_backend="numpy")
    if faiss_module() is not None:
        assert by_ranks == evaluate(
            x, labels, ks=ks, retrieval="knn", knn_backend="faiss"
        )


def test_the_tie_rule_decides_the_first_match_rank():
    # Query 0 at the origin; items 1-4 all at distance 1. Item 3 is the only one of query 0's class:
    # items 1 and 2 (lower indices) rank before it, item 4 after it: rank 2.
    x = np.array([[0.0], [1.0], [-1.0], [1.0], [-1.0]], np.float32)
    labels = np.array([0, 1, 2, 0, 3])
    matches = ranked_matches(x, labels, depth=4)
    np.testing.assert_array_equal(matches[0], [False, False, True, False])


@pytest.mark.parametrize("block_size, workers", [(1024, 1), (8, 2)])
def test_screening_bound_failure_is_an_error_not_a_wrong_rank(
    monkeypatch, block_size, workers
):
    from fl_embed.evaluation import ranking

    monkeypatch.setattr(
        ranking, "screen_error_bound", lambda sq_norms, dim, dtype: 0.0 * sq_norms - 1.0
    )
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with pytest.raises(RuntimeError, match="bound"):
        ranked_matches(
            x, np.arange(50) % 5, depth=10, block_size=block_size, workers=workers
        )


@pytest.mark.parametrize(
    "labels, depth, message",
    [
        (np.arange(6), 2, "single item"),
        (np.array([0, 0, 0, 0, 1, 1]), 2, r"depth=2 must lie in \[R_max = 3"),
        (np.array([0, 0, 1, 1, 2, 2]), 6, "n - 1 = 5"),
        (np.array([0, 0, 1]), 1, "6 embeddings but 3 labels"),
    ],
)
def test_bad_arguments_raise(labels, depth, message):
    with pytest.raises(ValueError, match=message):
        ranked_matches(np.zeros((6, 2), np.float32), labels, depth)


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_a_bad_worker_count_is_refused(workers):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        ranked_matches(
            np.eye(6, dtype=np.float32), np.arange(6) % 3, 2, workers=workers
        )


def test_the_tie_rule_decides_a_far_first_match_rank():
    # Query 0's only class-mate (item 400) lies beyond 300 items at 0.5 and ties with items
    # 301-350 (lower indices: before it) and 401-599 (after it), at +-1: rank 350. So many items
    # under it send the query down the counting path rather than the candidate one.
    x = np.full(600, 5.0, np.float32)
    x[0], x[1:301], x[301:351], x[400:] = 0.0, 0.5, -1.0, 1.0
    labels = np.arange(600) + 1
    labels[[0, 400]] = 0
    matches = ranked_matches(x[:, None], labels, depth=500)
    assert np.flatnonzero(matches[0]).tolist() == [350]
    first = brute_force_reference(x[:, None], labels)[1]
    assert first[0] == 350


@pytest.mark.parametrize("ks, expected", [((1, 2, 4), "knn"), ((1, 5, 30), "ranks")])
def test_auto_retrieval_takes_ranks_only_when_the_largest_k_is_deeper_than_r_max(
    monkeypatch, ks, expected
):
    from fl_embed.evaluation import protocol

    used = []
    real_ranks, real_knn = protocol.ranked_matches, protocol.exact_knn
    monkeypatch.setattr(
        protocol,
        "ranked_matches",
        lambda *a, **k: used.append("ranks") or real_ranks(*a, **k),
    )
    monkeypatch.setattr(
        protocol, "exact_knn", lambda *a, **k: used.append("knn") or real_knn(*a, **k)
    )
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(8), 5)  # R_max = 4
    x = rng.normal(size=(40, 3)).astype(np.float32)
    auto = evaluate(x, labels, ks=ks)
    assert used == [expected]
    assert auto == evaluate(x, labels, ks=ks, retrieval="knn")
