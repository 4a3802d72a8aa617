"""Retrieval metrics from ranked neighbour lists: Recall@K, MAP@R, R-precision.

Every function takes `matches`, a bool array [queries, k] whose row q says, neighbour by
neighbour in ranked order, whether it shares query q's class (see `neighbour_matches`). Only
queries with at least one other item of their class belong in it; `evaluate` drops the
others (see its docstring for why).
"""

import numpy as np


def same_class_counts(labels: np.ndarray) -> np.ndarray:
    """R, the number of other items of each item's class (the relevant set of a query).

    Args:
      labels: int array [n].

    Returns:
      int64 array [n]: R_q = |{j != q: y[j] = y[q]}|.
    """
    labels = _check_labels(labels, "same_class_counts")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] - 1


def neighbour_matches(labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Whether each ranked neighbour shares its query's class.

    Args:
      labels: int array [n].
      indices: int array [n, k], neighbour indices of every query in ranked order.

    Returns:
      bool array [n, k].
    """
    labels = _check_labels(labels, "neighbour_matches")
    indices = np.asarray(indices)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"neighbour_matches: indices must be an integer [n, k] array, got shape "
            f"{indices.shape}, dtype {indices.dtype}."
        )
    if indices.shape[0] != labels.shape[0]:
        raise ValueError(
            f"neighbour_matches: {labels.shape[0]} labels but indices for "
            f"{indices.shape[0]} queries."
        )
    if indices.size and not (0 <= indices.min() and indices.max() < labels.shape[0]):
        raise ValueError(
            f"neighbour_matches: indices must lie in [0, {labels.shape[0]}), got "
            f"{indices.min()} .. {indices.max()}."
        )
    return labels[indices] == labels[:, None]


def _check_labels(labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name}: labels must be [n], got shape {labels.shape}.")
    return labels


def recall_at_k(matches: np.ndarray, k: int) -> float:
    """Recall@K of Song et al. 2016 (paper section 4): the fraction of queries with a same-class
    item among their K nearest neighbours.

    Formula:
    ```
    recall@K = 1/|Q| * sum_q [exists i <= K: y[nn_i(q)] = y[q]]
    ```

    Args:
      matches: bool array [queries, >= k].
      k: K, 1 <= K <= matches.shape[1].

    Returns:
      float in [0, 1].

    Raises:
      ValueError: k outside [1, matches.shape[1]] or no query.
    """
    _check_matches(matches, k, "recall_at_k")
    return float(np.mean(np.any(matches[:, :k], axis=1)))


def map_at_r(matches: np.ndarray, num_relevant: np.ndarray) -> float:
    """MAP@R of Musgrave et al. 2020 ("A Metric Learning Reality Check").

    Formula:
    ```
    AP@R(q) = 1/R_q * sum_{i=1}^{R_q} P@i(q) * rel_i(q),   P@i(q) = 1/i * sum_{t<=i} rel_t(q)
    MAP@R = 1/|Q| * sum_q AP@R(q)
    ```
    with R_q the number of items of q's class other than q, rel_i(q) whether the i-th neighbour
    shares q's class.

    Args:
      matches: bool array [queries, >= max(num_relevant)].
      num_relevant: int array [queries], R_q >= 1.

    Returns:
      float in [0, 1].

    Raises:
      ValueError: shapes disagree, some R_q < 1, or matches is narrower than max R_q.
    """
    relevant_in_top_r, r = _top_r_matches(matches, num_relevant, "map_at_r")
    precision_at_i = np.cumsum(relevant_in_top_r, axis=1) / np.arange(
        1, relevant_in_top_r.shape[1] + 1
    )
    return float(np.mean(np.sum(precision_at_i * relevant_in_top_r, axis=1) / r))


def r_precision(matches: np.ndarray, num_relevant: np.ndarray) -> float:
    """R-precision: the fraction of a query's R_q nearest neighbours that share its class, averaged.

    Formula:
    ```
    R-precision = 1/|Q| * sum_q 1/R_q * sum_{i=1}^{R_q} rel_i(q)
    ```
    Arguments, return value and errors as `map_at_r`.
    """
    relevant_in_top_r, r = _top_r_matches(matches, num_relevant, "r_precision")
    return float(np.mean(np.sum(relevant_in_top_r, axis=1) / r))


def _check_matches(matches: np.ndarray, k: int, name: str) -> None:
    matches = np.asarray(matches)
    if matches.dtype != bool and not np.isin(matches, (0, 1)).all():
        raise ValueError(
            f"{name}: matches must be bool (or 0 / 1), got dtype {matches.dtype} with other "
            "values."
        )
    if matches.ndim != 2 or matches.shape[0] == 0:
        raise ValueError(
            f"{name}: matches must be a non-empty [queries, k] array, got shape {matches.shape}."
        )
    if not 1 <= k <= matches.shape[1]:
        raise ValueError(
            f"{name}: needs the first {k} neighbours of each query, matches has {matches.shape[1]}."
        )


def _top_r_matches(
    matches: np.ndarray, num_relevant: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """matches restricted to each query's first R_q neighbours (later columns zeroed), and R."""
    _check_matches(matches, 1, name)
    r = np.asarray(num_relevant)
    if r.shape != (matches.shape[0],):
        raise ValueError(
            f"{name}: num_relevant has shape {r.shape}, expected ({matches.shape[0]},)."
        )
    if r.min() < 1:
        raise ValueError(
            f"{name}: every query needs R >= 1 other item of its class; got R = {r.min()}."
        )
    width = int(r.max())
    _check_matches(matches, width, name)
    in_top_r = np.arange(width)[None, :] < r[:, None]
    return matches[:, :width] & in_top_r, r
