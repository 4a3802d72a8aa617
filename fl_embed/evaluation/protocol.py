"""The paper's evaluation protocol (section 4) in one call: embeddings and labels in, metrics out."""

from collections.abc import Sequence

import numpy as np
from absl import logging

from fl_embed.evaluation.clustering import clustering_nmi
from fl_embed.evaluation.inputs import check_embeddings, check_seed, in_float32_range
from fl_embed.evaluation.knn import BACKENDS, DEFAULT_BLOCK_SIZE, exact_knn
from fl_embed.evaluation.ranking import ranked_matches
from fl_embed.evaluation.retrieval import (
    map_at_r,
    neighbour_matches,
    r_precision,
    recall_at_k,
    same_class_counts,
)

# Recall@K cut-offs of the paper's tables.
CUB_CARS_KS = (1, 2, 4, 8)
PRODUCTS_KS = (1, 10, 100, 1000)
# How `evaluate` finds the ranked relevance: "ranks" (`ranked_matches`, one screened pass, no
# neighbour list) or "knn" (the depth nearest neighbours of `exact_knn`, through knn_backend).
# Same metrics; "ranks" avoids the K_max = 1000 list (BUILD_NOTES.md, issue 16).
RETRIEVAL_METHODS = ("auto", "ranks", "knn")


def check_embeddings_labels(
    embeddings, labels, ks: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate evaluation inputs and canonicalise them.

    Args:
      embeddings: float array [n, d].
      labels: integer array [n] or [n, 1] (whole-valued floats are accepted).
      ks: the Recall@K cut-offs.

    Returns:
      (embeddings float32 [n, d], labels int64 [n]). Embeddings whose squared distances would
      leave float32's range (largest |x| above 2**32 or below 2**-32) are rescaled by a power
      of two, which changes no neighbour and no k-means cluster.

    Raises:
      ValueError: wrong shapes (d = 0 included), embeddings that are not real numbers,
        mismatched lengths, fewer than 2 items, NaN/Inf embeddings, non-integer labels, or a K
        outside [1, n - 1] (the gallery of a query is the other n - 1 items).
    """
    x = check_embeddings(embeddings, "evaluate")
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"evaluate: labels must have shape [n] or [n, 1], got {y.shape}."
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"evaluate: {x.shape[0]} embeddings but {y.shape[0]} labels.")
    if x.shape[0] < 2:
        raise ValueError(
            f"evaluate: needs at least 2 items (a query and a gallery), got {x.shape[0]}."
        )
    x = in_float32_range(x)
    # Labels read back from float arrays (e.g. a Keras y_true) are fine if whole-valued.
    whole_floats = np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))
    if not (np.issubdtype(y.dtype, np.integer) or whole_floats):
        raise ValueError(
            f"evaluate: labels must be integer class ids, got dtype {y.dtype}."
        )
    given, ks = ks, tuple(ks) if isinstance(ks, (Sequence, np.ndarray)) else ()
    if not ks or any(
        not isinstance(k, (int, np.integer)) or isinstance(k, bool) for k in ks
    ):
        raise ValueError(
            f"evaluate: ks must be a non-empty sequence of ints, got {given!r}."
        )
    gallery = x.shape[0] - 1
    for k in ks:
        if not 1 <= k <= gallery:
            raise ValueError(
                f"evaluate: K={k} is outside [1, {gallery}], the gallery size (n - 1 other items)."
            )
    return x, y.astype(np.int64)


def evaluate(
    embeddings,
    labels,
    ks: Sequence[int] = CUB_CARS_KS,
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK_SIZE,
    knn_backend: str = "numpy",
    retrieval: str = "auto",
) -> dict[str, float]:
    """NMI, Recall@K, MAP@R and R-precision of an embedding of a labelled test set.

    Every item is a query; its gallery is every other item (Song et al. 2016, paper section 4).
    Neighbours are exact Euclidean nearest neighbours, ties broken by the lower index (see
    `exact_knn`). NMI compares the labels with k-means (k = number of classes, settings in
    `fl_embed.evaluation.clustering`).

    A query whose class has no other item (R = 0) has no correct answer: it is left out of
    Recall@K, MAP@R and R-precision (counting it as a miss would cap Recall@K below 1 for a
    perfect embedding, and MAP@R is undefined for it), but it stays in every other query's
    gallery and in the NMI. A warning gives their number. The paper's data sets have none.

    Args:
      embeddings: float array [n, d].
      labels: integer array [n].
      ks: the Recall@K cut-offs, each in [1, n - 1]; (1, 2, 4, 8) for CUB-200-2011 and Cars196,
        (1, 10, 100, 1000) for Stanford Online Products (`PRODUCTS_KS`).
      seed: random_state of k-means.
      block_size: queries per block of the retrieval pass; memory grows as block_size * n
        (times the cores for retrieval="ranks", which runs a block per core).
      knn_backend: "numpy", "faiss" or "auto" (faiss when installed, else numpy) for
        retrieval="knn"; the neighbours, hence the metrics, are the same (see `exact_knn`).
      retrieval: "ranks" (`ranked_matches`: the rank of each query's nearest same-class item
        and its first R_max neighbours), "knn" (the full neighbour list of `exact_knn`, as
        deep as the largest K) or "auto": "ranks" when the largest K exceeds R_max (SOP:
        1000 against 11), else "knn" (CUB, Cars, glyphs: the list is R_max deep either way,
        and "ranks" adds its counting pass). Both rank by the same rule and give the same
        metrics.

    Returns:
      dict with keys "nmi", "recall@K" for each K in ks, "map@r", "r_precision"; fractions in
      [0, 1].

    Raises:
      ValueError: see `check_embeddings_labels`; also when no class has two items, and for an
        unknown retrieval or knn_backend.
    """
    x, y = check_embeddings_labels(embeddings, labels, ks)
    check_seed(seed, "evaluate")
    if retrieval not in RETRIEVAL_METHODS:
        raise ValueError(
            f"evaluate: retrieval must be one of {RETRIEVAL_METHODS}, got {retrieval!r}."
        )
    if knn_backend not in BACKENDS:
        raise ValueError(
            f"evaluate: knn_backend must be one of {BACKENDS}, got {knn_backend!r}."
        )
    num_relevant = same_class_counts(y)
    has_relevant = num_relevant > 0
    if not np.any(has_relevant):
        raise ValueError(
            "evaluate: every class has a single item, so no query has a correct answer."
        )
    if not np.all(has_relevant):
        logging.warning(
            "evaluate: %d of %d queries are the only item of their class; they are left out of "
            "Recall@K, MAP@R and R-precision.",
            np.count_nonzero(~has_relevant),
            y.size,
        )
    depth = max(max(ks), int(num_relevant.max()))
    if retrieval == "auto":
        retrieval = "ranks" if max(ks) > int(num_relevant.max()) else "knn"
    if retrieval == "ranks":
        matches = ranked_matches(x, y, depth, block_size=block_size)[has_relevant]
    else:
        _, indices = exact_knn(x, depth, block_size=block_size, backend=knn_backend)
        # Class codes as int32 halve the [n, depth] label lookup (0.25 GB at SOP size, K = 1000).
        codes = np.unique(y, return_inverse=True)[1].reshape(-1).astype(np.int32)
        matches = neighbour_matches(codes, indices)[has_relevant]
        del indices
    metrics = {"nmi": clustering_nmi(x, y, seed=seed)}
    for k in ks:
        metrics[f"recall@{k}"] = recall_at_k(matches, k)
    metrics["map@r"] = map_at_r(matches, num_relevant[has_relevant])
    metrics["r_precision"] = r_precision(matches, num_relevant[has_relevant])
    return metrics
