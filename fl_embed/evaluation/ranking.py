"""The ranked relevance the retrieval metrics read, without a k = 1000 neighbour list.

Recall@K only asks where each query's first same-class item ranks, and MAP@R / R-precision only
look at the first R_q neighbours (R_q <= R_max = largest class size - 1, 11 for Stanford Online
Products). So instead of the K_max = 1000 nearest neighbours of every query, one blockwise pass
over the float32 matrix product (BLAS) counts, per query, the items ranked before its nearest
same-class item and keeps the few candidates for its first R_max neighbours.

The ranking rule is the one of `exact_knn`: exact squared distances
`exact_squared_distances` (float64, ||x_j - x_q||^2 summed element by element), ties to the
lower gallery index. The float32 product only screens: with `screen_error_bound` b_q, an item
whose screened value is below t - b_q has an exact distance below t, one above t + b_q an
exact distance above it; items in between (ties and near-ties) are decided by their exact
distance. So the result is exact, ties included.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from fl_embed.evaluation.inputs import check_embeddings, check_positive_int
from fl_embed.evaluation.knn import (
    exact_squared_distances,
    screen_error_bound,
    sort_candidates,
)

# Queries per block: the block holds [block_size, n] float32 screened distances and one bool
# mask of that shape at a time, about 0.3 GB for n = 60k (Stanford Online Products).
RANKING_BLOCK_SIZE = 1024
# The candidate threshold of a query's first R_max neighbours is read off every
# _SAMPLE_STRIDE-th column of its row: an upper bound that keeps ~_SAMPLE_STRIDE * R_max
# candidates per query.
_SAMPLE_STRIDE = 4
# A query whose sample has at most this many items screened below t_q + b_q gets its rank
# from the candidates (about _SAMPLE_STRIDE times as many items); others count (see
# `_block_matches`).
_NEAR_SAMPLE_LIMIT = 64


def ranked_matches(
    embeddings: np.ndarray,
    labels: np.ndarray,
    depth: int,
    block_size: int = RANKING_BLOCK_SIZE,
    workers: int | None = None,
) -> np.ndarray:
    """Same-class flags of the ranked neighbour list, where the protocol's metrics read them.

    With neighbours ranked as `exact_knn` ranks them (leave-one-out, exact squared distance,
    ties to the lower index), returns M [n, depth] such that, for every query q with R_q >= 1:
    - columns 0 .. R_q - 1 equal the full list's same-class flags,
    - the first True of the row is at the rank of q's nearest same-class item when that rank
      is below depth, and the row has no True before it.
    So `recall_at_k(M, K)` (K <= depth), `map_at_r(M, R)` and `r_precision(M, R)` equal their
    values on `neighbour_matches(labels, exact_knn(x, depth)[1])`. Columns at R_q or beyond
    other than that first True are False whatever the list holds there. Rows of queries
    without a same-class item are all False.

    Formula (rank of the nearest same-class item j* of q, at squared distance t = D_qj*^2):
    ```
    rank(q) = |{j != q: D_qj^2 < t}| + |{j < j*: D_qj^2 = t}|
    ```

    Args:
      embeddings: float array [n, d] (float32 values; `evaluate` passes float32).
      labels: int array [n].
      depth: width of M, >= R_max.
      block_size: queries per block; memory grows as block_size * workers * n.
      workers: blocks processed at once, each on its own thread with a single-threaded
        product (default: the CPUs this process may run on). Most of a block is numpy's
        single-threaded comparisons and counts, so one block per core is faster than one
        block at a time with a multi-threaded BLAS.

    Returns:
      bool array [n, depth].

    Raises:
      ValueError: embeddings refused by `check_embeddings`, labels of another length, no
        query with a same-class item, depth < R_max or depth > n - 1, block_size or workers
        < 1.
    """
    x = check_embeddings(embeddings, "ranked_matches").astype(np.float32)
    n, d = x.shape
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != n:
        raise ValueError(
            f"ranked_matches: {n} embeddings but {labels.shape[0]} labels."
        )
    check_positive_int(block_size, "block_size", "ranked_matches")
    if workers is None:
        workers = len(os.sched_getaffinity(0))
    check_positive_int(workers, "workers", "ranked_matches")
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    positives = _same_class_table(codes)
    r_max = positives.shape[1] - 1
    if r_max < 1:
        raise ValueError("ranked_matches: every class has a single item.")
    if not r_max <= depth <= n - 1:
        raise ValueError(
            f"ranked_matches: depth={depth} must lie in [R_max = {r_max}, n - 1 = {n - 1}]."
        )
    x64 = x.astype(np.float64)
    sq_norms = np.einsum("ij,ij->i", x64, x64)
    bound = screen_error_bound(sq_norms, d, np.float32)
    nearest, nearest_sq, farthest_sq = _positive_distances(x64, positives)
    read_columns = (
        np.arange(r_max) < np.count_nonzero(positives >= 0, axis=1)[:, None] - 1
    )
    # Screened distance minus ||x_q||^2 as one float32 product: [x_q, 1] . [-2 x_j, ||x_j||^2]
    # (scaling by -2 is exact).
    queries = np.hstack([x, np.ones((n, 1), np.float32)])
    gallery_t = np.ascontiguousarray(
        np.hstack([-2.0 * x, sq_norms.astype(np.float32)[:, None]]).T
    )
    matches = np.zeros((n, depth), bool)

    def fill_block(start):
        stop = min(start + block_size, n)
        rows = np.arange(start, stop)
        screened = queries[rows] @ gallery_t
        screened[np.arange(rows.size), rows] = np.inf  # not its own neighbour
        _block_matches(
            x64,
            screened,
            rows,
            sq_norms[rows],
            bound[rows],
            nearest[rows],
            nearest_sq[rows],
            farthest_sq[rows],
            codes,
            matches[start:stop],  # a view: filled in place, blocks never overlap
            read_columns[start:stop],
        )

    starts = range(0, n, block_size)
    if workers == 1 or len(starts) == 1:
        for start in starts:
            fill_block(start)
    else:
        # numpy releases the GIL in the product, the comparisons and the sorts; a block's
        # product on one BLAS thread keeps the two threads from oversubscribing the cores.
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(fill_block, starts):
                pass  # re-raises a block's error here
    return matches


def _block_matches(
    x64,
    screened,
    rows,
    shift,
    bound,
    nearest,
    nearest_sq,
    farthest_sq,
    codes,
    out,
    read,
):
    """Fills out = matches[rows] for one block; screened values are distances minus shift.

    Candidates are the items screened at most e_q, with e_q the larger of
    - theta_q + 2 b_q, theta_q an upper bound of the R_max-th smallest screened value (the
      R_max-th of a column sample, or the farthest same-class item, one of R_q <= R_max
      items): every item of exact rank below R_q falls under it;
    - t_q + b_q (t_q = distance to the nearest same-class item j*) when the sample suggests
      few items under it: every item ranked before j* falls under it.
    Candidates ranked by (exact distance, index) give the first R_max neighbours and, in the
    second case, the rank of j* as its position. Other queries (j* far away) count the items
    screened below t_q - b_q and decide the rest exactly (`_first_match_ranks`).
    """
    r_max, depth = read.shape[1], out.shape[1]
    n = screened.shape[1]
    sample = screened[:, ::_SAMPLE_STRIDE]
    if sample.shape[1] > r_max:
        theta = np.partition(sample, r_max - 1, axis=1)[:, r_max - 1] + bound
    else:
        theta = np.full(rows.size, np.inf)
    theta = np.minimum(theta, farthest_sq - shift) + bound
    upper = nearest_sq - shift + bound
    near = np.count_nonzero(sample <= upper[:, None].astype(np.float32), axis=1)
    near = (near <= _NEAR_SAMPLE_LIMIT) & (nearest >= 0)
    limit = np.where(near, np.maximum(theta, upper), theta).astype(np.float32)
    local, cols = np.divmod(np.flatnonzero(screened <= limit[:, None]), n)
    local, cols, _, position = sort_candidates(x64, rows, local, cols)
    keep = position < r_max
    out[local[keep], position[keep]] = (
        codes[cols[keep]] == codes[rows[local[keep]]]
    ) & read[local[keep], position[keep]]
    is_nearest = cols == nearest[local]
    first = np.full(rows.size, -1, np.int64)
    first[local[is_nearest]] = position[is_nearest]
    if np.any(first[near] < 0):
        raise RuntimeError("ranked_matches: screening error above its bound.")
    far = np.flatnonzero(~near)
    first[far] = _first_match_ranks(
        x64,
        screened[far],
        rows[far],
        nearest[far],
        nearest_sq[far],
        shift[far],
        bound[far],
        depth,
    )
    has = (first >= 0) & (first < depth)
    out[np.flatnonzero(has), first[has]] = True


def _same_class_table(codes: np.ndarray) -> np.ndarray:
    """[n, largest class size] int64: row q lists q's class members by index, padded with -1."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(codes.size) - starts[codes[order]]
    by_class = np.full((counts.size, counts.max()), -1, np.int64)
    by_class[codes[order], position] = order
    return by_class[codes]


def _positive_distances(x64, positives):
    """Per query: its nearest same-class item j* (lowest index among ties), the exact squared
    distances to j* and to its farthest same-class item (inf / -inf without one)."""
    n = x64.shape[0]
    valid = (positives >= 0) & (positives != np.arange(n)[:, None])
    sq = np.full(positives.shape, np.inf)
    rows, cols = np.nonzero(valid)
    sq[rows, cols] = exact_squared_distances(x64, rows, positives[rows, cols])
    # Members are listed by index, so argmin's first minimum is the lowest index.
    best = np.argmin(sq, axis=1)
    nearest_sq = sq[np.arange(n), best]
    nearest = np.where(np.isfinite(nearest_sq), positives[np.arange(n), best], -1)
    farthest_sq = np.max(np.where(valid, sq, -np.inf), axis=1)
    return nearest, nearest_sq, farthest_sq


def _first_match_ranks(x64, screened, rows, nearest, nearest_sq, shift, bound, depth):
    """rank(q) of `ranked_matches`, capped at depth, for one block of queries (depth for a
    query without a same-class item). Screened values are distances minus shift = ||x_q||^2."""
    lower = (nearest_sq - shift - bound).astype(np.float32)
    upper = (nearest_sq - shift + bound).astype(np.float32)
    ranks = np.count_nonzero(screened < lower[:, None], axis=1)
    in_band = np.count_nonzero(screened <= upper[:, None], axis=1) - ranks
    has_nearest = nearest >= 0
    local = np.arange(rows.size)
    nearest_value = screened[local[has_nearest], nearest[has_nearest]]
    if not np.all(
        (lower[has_nearest] <= nearest_value) & (nearest_value <= upper[has_nearest])
    ):
        raise RuntimeError("ranked_matches: screening error above its bound.")
    # In the band: j* itself and the items whose order against j* only exact distances decide.
    for i in np.flatnonzero(has_nearest & (in_band > 1) & (ranks < depth)):
        row = screened[i]
        band = np.flatnonzero((row >= lower[i]) & (row <= upper[i]))
        exact = exact_squared_distances(x64, rows[i], band)
        t = nearest_sq[i]
        ranks[i] += np.count_nonzero((exact < t) | ((exact == t) & (band < nearest[i])))
    ranks[~has_nearest] = depth
    return np.minimum(ranks, depth)
