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
