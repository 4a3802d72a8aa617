"""exact_knn against a brute-force float64 distance matrix sorted stably (ties to the lower index)."""

import numpy as np
import pytest

from fl_embed.evaluation.knn import exact_knn


def brute_force_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    indices = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, indices, axis=1), indices


@pytest.mark.parametrize("k", [1, 5, 40, 299])
@pytest.mark.parametrize("block_size", [1, 37, 512])
def test_matches_brute_force_on_random_embeddings(k, block_size):
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    distances, indices = exact_knn(x, k, block_size=block_size)
    expected_distances, expected_indices = brute_force_knn(x, k)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-5, atol=1e-6)
    assert distances.dtype == np.float32 and indices.dtype == np.int32


@pytest.mark.parametrize("k", [1, 3, 10, 60])
def test_ties_go_to_the_lower_index(k):
    # Integer points on a small grid: distances are exact in floating point and heavily tied.
    x = np.random.default_rng(1).integers(0, 3, size=(250, 2)).astype(np.float32)
    _, indices = exact_knn(x, k, block_size=64)
    np.testing.assert_array_equal(indices, brute_force_knn(x, k)[1])


def test_threshold_that_keeps_too_few_candidates_falls_back_to_the_whole_row():
    # Every 16th point sits at the origin, the rest far apart on a line: a query at the origin sees
    # its 19 twins as the nearest points, far fewer than k = 50.
    n = 320
    x = np.where(np.arange(n) % 16 == 0, 0.0, 10.0 * np.arange(n))[:, None].astype(
        np.float32
    )
    _, indices = exact_knn(x, 50)
    np.testing.assert_array_equal(indices, brute_force_knn(x, 50)[1])


def test_a_query_is_never_its_own_neighbour_even_among_duplicates():
    x = np.zeros((5, 3), np.float32)
    _, indices = exact_knn(x, 4)
    np.testing.assert_array_equal(
        indices, [[1, 2, 3, 4], [0, 2, 3, 4], [0, 1, 3, 4], [0, 1, 2, 4], [0, 1, 2, 3]]
    )


@pytest.mark.parametrize("k", [0, 5])
def test_k_outside_the_gallery_raises(k):
    with pytest.raises(ValueError, match="gallery size"):
        exact_knn(np.zeros((5, 2), np.float32), k)


def tie_heavy_sets():
    rng = np.random.default_rng(2)
    prototypes = rng.normal(size=(30, 8)).astype(np.float32)
    return {
        # Integer grid: exact distances, heavily tied.
        "grid": rng.integers(0, 3, size=(400, 2)).astype(np.float32),
        # Duplicated non-integer vectors: ties only a consistent score per vector keeps.
        "duplicates": prototypes[rng.integers(0, 30, size=400)],
        # Groups of 40 identical points: every k below cuts through a tie group.
        "tie_groups": np.repeat(np.arange(10.0), 40)[:, None].astype(np.float32),
    }


@pytest.mark.parametrize("k", [1, 9, 39, 45, 120])
@pytest.mark.parametrize("name", ["grid", "duplicates", "tie_groups"])
def test_faiss_and_numpy_give_the_brute_force_neighbours_on_tie_heavy_sets(name, k):
    pytest.importorskip("faiss")
    x = tie_heavy_sets()[name]
    expected = brute_force_knn(x, k)[1]
    _, numpy_indices = exact_knn(x, k, backend="numpy")
    distances, faiss_indices = exact_knn(x, k, backend="faiss")
    np.testing.assert_array_equal(numpy_indices, expected)
    np.testing.assert_array_equal(faiss_indices, expected)
    np.testing.assert_allclose(
        distances, brute_force_knn(x, k)[0], rtol=1e-5, atol=1e-6
    )


def test_faiss_rows_without_a_certificate_are_redone_exactly(monkeypatch):
    # Every point but one is identical: faiss returns the duplicates in an arbitrary order and the
    # k-th distance equals the left-out ones, so no row can be certified; all go to numpy.
    pytest.importorskip("faiss")
    from fl_embed.evaluation import knn

    x = np.zeros((200, 3), np.float32)
    x[150] = 1.0
    redone = []
    original = knn._numpy_knn_rows
    monkeypatch.setattr(
        knn, "_numpy_knn_rows", lambda *a: redone.append(a[2].size) or original(*a)
    )
    _, indices = exact_knn(x, 5, backend="faiss")
    np.testing.assert_array_equal(indices, brute_force_knn(x, 5)[1])
    assert sum(redone) >= 199


def test_numpy_fallback_is_used_when_faiss_is_missing(monkeypatch):
    import sys

    from fl_embed.evaluation import knn

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    assert knn.faiss_module() is None
    x = np.random.default_rng(3).integers(0, 3, size=(100, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        exact_knn(x, 7, backend="auto")[1], brute_force_knn(x, 7)[1]
    )
    with pytest.raises(ValueError, match="faiss is not installed"):
        exact_knn(x, 7, backend="faiss")


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="backend must be one of"):
        exact_knn(np.zeros((5, 2), np.float32), 2, backend="annoy")
