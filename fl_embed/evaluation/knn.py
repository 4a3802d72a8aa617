"""Exact k-nearest-neighbour search, blockwise so no n x n matrix is ever held in memory."""

import numpy as np

# Queries per block: a block holds [block_size, n] float64 scores and a bool mask of the same
# shape, about 0.3 GB for n = 60k (Stanford Online Products).
DEFAULT_BLOCK_SIZE = 512
# Candidate thresholds are estimated on every _SAMPLE_STRIDE-th gallery column.
_SAMPLE_STRIDE = 16


def exact_knn(
    embeddings: np.ndarray, k: int, block_size: int = DEFAULT_BLOCK_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every item among all the others (leave-one-out retrieval).

    Every item is a query and the gallery is every other item, as in the protocol of Song et
    al. 2016 that the paper follows (section 4). Euclidean distance, computed in float64, whose
    rounding (~1e-16 relative) is far below the precision of float32 embeddings. Ties are
    broken by the lower gallery index, so the result is deterministic and equals a stable sort
    of each row of the full distance matrix.

    Formula:
    ```
    D_qj^2 = ||x_q||^2 - 2 x_q^T x_j + ||x_j||^2,  j != q
    neighbours(q) = the k indices j with the smallest (D_qj, j), in that order
    ```

    Args:
      embeddings: float array [n, d].
      k: number of neighbours, 1 <= k <= n - 1.
      block_size: queries handled at once; memory grows as block_size * n.

    Returns:
      (distances float32 [n, k] ascending, indices int32 [n, k]).

    Raises:
      ValueError: k outside [1, n - 1] or block_size < 1.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(
            f"exact_knn: k={k} must be between 1 and the gallery size n - 1 = {n - 1}."
        )
    if block_size < 1:
        raise ValueError(f"exact_knn: block_size must be positive, got {block_size}.")
    sq_norms = np.einsum("ij,ij->i", x, x)
    minus_two_xt = -2.0 * x.T
    distances = np.empty((n, k), np.float32)
    indices = np.empty((n, k), np.int32)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        rows = np.arange(stop - start)
        # ||x_q||^2 is constant along a row, so it is left out of the ranking and added back below.
        scores = x[start:stop] @ minus_two_xt
        scores += sq_norms[None, :]
        scores[rows, start + rows] = np.inf  # a query is not its own neighbour
        block_indices = _smallest_k_stable(scores, k)
        block_scores = np.take_along_axis(scores, block_indices, axis=1)
        squared = np.maximum(block_scores + sq_norms[start:stop, None], 0.0)
        distances[start:stop] = np.sqrt(squared)
        indices[start:stop] = block_indices
    return distances, indices


def _smallest_k_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest entries per row, ordered by (value, column index).

    A full selection per row (argpartition) costs ~20 ns per entry and would dominate the
    search. Instead a per-row threshold is read off every _SAMPLE_STRIDE-th column, set so that
    a few times k entries fall under it, and only those candidates are sorted. Every entry left
    out is strictly larger than every candidate, so the result is exact, ties included; a row
    whose threshold keeps fewer than k entries is sorted whole.
    """
    n_cols = scores.shape[1]
    sample = scores[:, ::_SAMPLE_STRIDE]
    expected_rank = k * sample.shape[1] / n_cols
    sample_rank = int(np.ceil(expected_rank + 4.0 * np.sqrt(expected_rank) + 4.0))
    if sample_rank >= sample.shape[1]:
        thresholds = np.full(scores.shape[0], np.inf)
    else:
        thresholds = np.partition(sample, sample_rank - 1, axis=1)[:, sample_rank - 1]
    keep = scores <= thresholds[:, None]
    selected = np.empty((scores.shape[0], k), np.int64)
    for row, (row_scores, row_keep) in enumerate(zip(scores, keep)):
        candidates = np.flatnonzero(row_keep)
        if candidates.size < k:
            candidates = np.arange(n_cols)
        # A stable sort keeps ascending column order among equal scores.
        order = np.argsort(row_scores[candidates], kind="stable")[:k]
        selected[row] = candidates[order]
    return selected
