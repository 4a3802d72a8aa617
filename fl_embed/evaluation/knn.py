"""Exact k-nearest-neighbour search, blockwise so no n x n matrix is ever held in memory.

Two backends give the same neighbours: plain numpy (float64 scores of every pair, re-ranked by
exact distances near the k-th; the default),
and faiss (`pip install fl_embed[faiss]`), whose float32 search only proposes candidates that
are then ranked by float64 distances (see `_faiss_knn`). numpy stays the default because on a
2-core CPU the faiss path measured slower at k >= 300 (the float64 re-ranking of k candidates
per query costs more than it saves; BUILD_NOTES.md, issue 16).
"""

import numbers

import numpy as np

from fl_embed.evaluation.inputs import check_embeddings, check_positive_int

# Queries per block: a block holds [block_size, n] float64 scores and a bool mask of the same
# shape, about 0.3 GB for n = 60k (Stanford Online Products).
DEFAULT_BLOCK_SIZE = 512
# Candidate thresholds are estimated on every _SAMPLE_STRIDE-th gallery column.
_SAMPLE_STRIDE = 16
# faiss path: queries per faiss search, and per float64 re-ranking block ([block, k, d] floats).
_FAISS_SEARCH_BLOCK = 4096
_RERANK_BLOCK = 128
# Candidate pairs whose exact distance is computed at once ([pairs, d] float64).
_EXACT_CHUNK = 1 << 16
BACKENDS = ("auto", "numpy", "faiss")


def faiss_module():
    """The faiss module, or None when it is not installed (the numpy fallback is used)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _resolve_backend(backend: str, caller: str):
    """faiss module or None for numpy, from "auto" / "numpy" / "faiss"."""
    if backend not in BACKENDS:
        raise ValueError(
            f"{caller}: backend must be one of {BACKENDS}, got {backend!r}."
        )
    if backend == "numpy":
        return None
    faiss = faiss_module()
    if faiss is None and backend == "faiss":
        raise ValueError(
            f"{caller}: backend='faiss' but faiss is not installed "
            "(pip install faiss-cpu, or fl_embed[faiss])."
        )
    return faiss


def exact_knn(
    embeddings: np.ndarray,
    k: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str = "numpy",
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every item among all the others (leave-one-out retrieval).

    Every item is a query and the gallery is every other item, as in the protocol of Song et
    al. 2016 that the paper follows (section 4). Items are ranked by their exact squared
    distance (`exact_squared_distances`, float64 differences summed element by element), ties
    broken by the lower gallery index, so the result equals a stable sort of each row of the
    full distance matrix. Matrix products (float64 here, float32 in faiss) only screen: items
    within their error bound of the k-th distance are re-ranked exactly.

    Formula:
    ```
    D_qj^2 = sum_i (x_ji - x_qi)^2,  j != q
    neighbours(q) = the k indices j with the smallest (D_qj, j), in that order
    ```

    Args:
      embeddings: float array [n, d].
      k: number of neighbours, 1 <= k <= n - 1.
      block_size: queries handled at once by the numpy path; memory grows as block_size * n.
      backend: "numpy", "faiss", or "auto" (faiss if installed, else numpy). All return the
        same neighbours in the same order.

    Returns:
      (distances float32 [n, k] ascending, indices int32 [n, k]).

    Raises:
      ValueError: embeddings refused by `check_embeddings` (NaN included), k outside
        [1, n - 1], block_size < 1, an unknown backend, or "faiss" without faiss installed.
      TypeError: k that is not an integer.
    """
    x = check_embeddings(embeddings, "exact_knn").astype(np.float64)
    n = x.shape[0]
    if not isinstance(k, numbers.Integral) or isinstance(k, bool):
        raise TypeError(f"exact_knn: k must be an integer, got {k!r}.")
    if not 1 <= k <= n - 1:
        raise ValueError(
            f"exact_knn: k={k} must be between 1 and the gallery size n - 1 = {n - 1}."
        )
    check_positive_int(block_size, "block_size", "exact_knn")
    faiss = _resolve_backend(backend, "exact_knn")
    sq_norms = np.einsum("ij,ij->i", x, x)
    distances = np.empty((n, k), np.float32)
    indices = np.empty((n, k), np.int32)
    if faiss is not None:
        _faiss_knn(faiss, x, sq_norms, distances, indices)
        return distances, indices
    for start in range(0, n, block_size):
        _numpy_knn_rows(
            x,
            sq_norms,
            np.arange(start, min(start + block_size, n)),
            distances,
            indices,
        )
    return distances, indices


def _numpy_knn_rows(
    x: np.ndarray,
    sq_norms: np.ndarray,
    rows: np.ndarray,
    distances: np.ndarray,
    indices: np.ndarray,
) -> None:
    """Fills distances[rows], indices[rows] from the float64 scores of every pair."""
    k = indices.shape[1]
    # ||x_q||^2 is constant along a row, so it is left out of the ranking and added back below.
    # Scaling by -2 is exact, so this equals x_q^T (-2 x_j) bit for bit.
    scores = x[rows] @ x.T
    scores *= -2.0
    scores += sq_norms[None, :]
    scores[np.arange(rows.size), rows] = np.inf  # a query is not its own neighbour
    block_indices = _smallest_k_stable(scores, k)
    # The k nearest by score are the k nearest by exact distance up to the scores' rounding:
    # every item within twice the error bound of the k-th score is re-ranked exactly.
    kth = np.take_along_axis(scores, block_indices[:, -1:], axis=1)
    slack = 2.0 * screen_error_bound(sq_norms, x.shape[1], np.float64)[rows, None]
    local, cols = np.divmod(np.flatnonzero(scores <= kth + slack), scores.shape[1])
    sq, selected = rank_candidates(x, rows, local, cols, k)
    _store(sq, selected, rows, distances, indices)


def _store(sq_distances, selected, rows, distances, indices) -> None:
    distances[rows] = np.sqrt(np.maximum(sq_distances, 0.0))
    indices[rows] = selected


def _faiss_knn(faiss, x, sq_norms, distances, indices) -> None:
    """exact_knn through faiss: float32 candidates, float64 ranking, a certificate per row.

    faiss (IndexFlatL2, float32) returns `fetch` > k + 1 candidates per query in no guaranteed
    order among ties. They are sorted by gallery index and ranked stably by their float64
    squared distance ||x_q - x_j||^2, so ties go to the lower index as in the numpy path. The
    result is exact when the k-th ranked squared distance is below the smallest distance faiss
    can have rounded an item left out up from: every item faiss did not return has a float32
    squared distance >= the largest one it did, and float32 rounding moves a squared distance
    by at most `slack` (a forward error bound of the length-d dot products and norms, doubled).
    Rows without that certificate (many items tied at the k-th distance) are redone by the
    numpy path.
    """
    n, d = x.shape
    k = indices.shape[1]
    fetch = min(n, k + 1 + max(8, k // 8))
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    index = faiss.IndexFlatL2(d)
    index.add(x32)
    eps32 = float(np.finfo(np.float32).eps)
    slack_per_norm = 4.0 * (d + 8) * eps32
    max_sq_norm = float(sq_norms.max())
    uncertified = []
    for start in range(0, n, _FAISS_SEARCH_BLOCK):
        stop = min(start + _FAISS_SEARCH_BLOCK, n)
        faiss_sq, candidates = index.search(x32[start:stop], fetch)
        for sub in range(start, stop, _RERANK_BLOCK):
            rows = np.arange(sub, min(sub + _RERANK_BLOCK, stop))
            cand = np.sort(candidates[rows - start].astype(np.int64), axis=1)
            sq = exact_squared_distances(x, rows[:, None], cand)  # [b, fetch]
            sq[cand == rows[:, None]] = np.inf
            order = np.argsort(sq, axis=1, kind="stable")[:, :k]
            kth_sq = np.take_along_axis(sq, order[:, -1:], axis=1)[:, 0]
            _store(
                np.take_along_axis(sq, order, axis=1),
                np.take_along_axis(cand, order, axis=1),
                rows,
                distances,
                indices,
            )
            if fetch < n:
                slack = slack_per_norm * (sq_norms[rows] + max_sq_norm)
                left_out_floor = faiss_sq[rows - start, -1] - slack
                uncertified.append(rows[~(kth_sq < left_out_floor)])
    uncertified = np.concatenate(uncertified) if uncertified else np.empty(0, np.int64)
    for start in range(0, uncertified.size, DEFAULT_BLOCK_SIZE):
        _numpy_knn_rows(
            x,
            sq_norms,
            uncertified[start : start + DEFAULT_BLOCK_SIZE],
            distances,
            indices,
        )


def screen_error_bound(sq_norms: np.ndarray, dim: int, dtype) -> np.ndarray:
    """b_q >= |screened squared distance - exact squared distance| for every pair (q, j).

    A screened value is ||x_q||^2 + (x_q^T (-2 x_j) + ||x_j||^2) from one matrix product in
    `dtype` (float64 in the numpy kNN, float32 in `ranking.ranked_matches`). Its forward
    error is at most (d + 1) u sum_i |a_i b_i| <= (d + 1) u (||x_q||^2 + 2 ||x_j||^2) (u the
    unit roundoff of dtype), plus a few roundings of the norms and thresholds, each below
    u (||x_q||^2 + ||x_j||^2). The bound, 8 (d + 8) u (||x_q||^2 + max_j ||x_j||^2), is more
    than twice all of them together.

    Args:
      sq_norms: float64 [n], ||x_j||^2.
      dim: d.
      dtype: np.float32 or np.float64, the precision of the product.

    Returns:
      float64 [n].
    """
    u = float(np.finfo(dtype).eps) / 2.0
    return 8.0 * (dim + 8) * u * (sq_norms + sq_norms.max())


def sort_candidates(
    x: np.ndarray, rows: np.ndarray, local: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs sorted by (query, exact squared distance, index), with their positions.

    Args:
      x: float64 [n, d].
      rows: int [b], the block's query indices.
      local: int [p], candidate pairs' positions in rows.
      cols: int [p], candidate pairs' gallery indices.

    Returns:
      (local, cols, squared distances float64, position among the query's candidates), each
      [p], sorted.
    """
    exact = np.empty(local.size)
    for start in range(0, local.size, _EXACT_CHUNK):
        part = slice(start, start + _EXACT_CHUNK)
        exact[part] = exact_squared_distances(x, rows[local[part]], cols[part])
    order = np.lexsort((cols, exact, local))
    local, cols, exact = local[order], cols[order], exact[order]
    position = (
        np.arange(local.size) - np.searchsorted(local, np.arange(rows.size))[local]
    )
    return local, cols, exact, position


def rank_candidates(
    x: np.ndarray, rows: np.ndarray, local: np.ndarray, cols: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first k candidates of each query by (exact squared distance, index).

    Arguments as `sort_candidates`; k candidates kept per query.

    Returns:
      (squared distances float64 [b, k], indices int64 [b, k]); inf / -1 where a query has
      fewer than k candidates.
    """
    local, cols, exact, position = sort_candidates(x, rows, local, cols)
    keep = position < k
    sq = np.full((rows.size, k), np.inf)
    selected = np.full((rows.size, k), -1, np.int64)
    sq[local[keep], position[keep]] = exact[keep]
    selected[local[keep], position[keep]] = cols[keep]
    return sq, selected


def exact_squared_distances(
    x: np.ndarray, queries: np.ndarray, gallery: np.ndarray
) -> np.ndarray:
    """The float64 squared distances that decide ties: ||x_j - x_q||^2 summed element by element.

    The difference form gives bit-identical values to identical gallery vectors (a BLAS kernel
    may not: its rounding can depend on a row's position in a block), so exact ties stay ties.
    The faiss path of `exact_knn` and `ranking.ranked_matches` rank by it.

    Args:
      x: float64 [n, d].
      queries: int array of query indices, broadcastable against `gallery`.
      gallery: int array of gallery indices.

    Returns:
      float64 array of the broadcast shape of queries and gallery.
    """
    diff = x[gallery] - x[queries]
    return np.sum(diff * diff, axis=-1)


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
