"""Clustering quality: NMI (paper eq. 9-10) between the true classes and a k-means clustering."""

import numbers

import numpy as np
from sklearn.cluster import KMeans

from fl_embed.evaluation.inputs import check_embeddings, check_seed, in_float32_range

# k-means settings for the protocol's NMI (k = number of classes). scikit-learn's default
# seeding, greedy k-means++, costs about n * k * d * (2 + log k) sequential work: instant for
# CUB-200-2011 and Cars196 (k ~ 100), but over two minutes on its own for Stanford Online
# Products (60,502 x 64, k = 11,316) on two cores. Above KMEANS_PLUSPLUS_MAX_CLUSTERS clusters
# the seeds are k distinct random data points instead, and Lloyd's iterations are capped at
# KMEANS_LARGE_MAX_ITER, which keeps that evaluation under three minutes (figures in
# experiments/bench_eval.py). One run (n_init=1) either way, scikit-learn's current default.
KMEANS_PLUSPLUS_MAX_CLUSTERS = 1000
KMEANS_LARGE_MAX_ITER = 30


def entropy(labels: np.ndarray) -> float:
    """H(y) = -sum_i P(i) log P(i), with P(i) from paper eq. 10 (natural log).

    Args:
      labels: int array [m].

    Returns:
      float >= 0.
    """
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """MI(y1, y2) = sum_{i,j} P(i, j) log(P(i, j) / (P(i) P(j))), with P from paper eq. 10.

    Only the non-empty cells of the contingency table are built, so two labelings with 11k
    values each cost O(m log m), not 11k x 11k.

    Args:
      labels_a: int array [m].
      labels_b: int array [m].

    Returns:
      float >= 0.
    """
    _, a = np.unique(labels_a, return_inverse=True)
    _, b = np.unique(labels_b, return_inverse=True)
    a, b = a.reshape(-1).astype(np.int64), b.reshape(-1).astype(np.int64)
    cells, joint = np.unique(a * (b.max() + 1) + b, return_counts=True)
    m = a.size
    count_a = np.bincount(a)[cells // (b.max() + 1)]
    count_b = np.bincount(b)[cells % (b.max() + 1)]
    mi = np.sum(
        joint / m * (np.log(joint) + np.log(m) - np.log(count_a) - np.log(count_b))
    )
    return float(max(mi, 0.0))


def nmi(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Normalised mutual information with the geometric mean of the entropies (paper eq. 9).

    Formula:
    ```
    NMI(y1, y2) = MI(y1, y2) / sqrt(H(y1) H(y2))
    ```
    Two labelings that put everything in one cluster agree perfectly (NMI 1); if only one of
    them does, NMI is 0. Both limits follow scikit-learn's `normalized_mutual_info_score`.

    Args:
      labels_true: int array [m].
      labels_pred: int array [m].

    Returns:
      float in [0, 1].

    Raises:
      ValueError: lengths differ or are zero.
    """
    labels_true, labels_pred = (
        np.asarray(labels_true).reshape(-1),
        np.asarray(labels_pred).reshape(-1),
    )
    if labels_true.size != labels_pred.size or labels_true.size == 0:
        raise ValueError(
            f"nmi: needs two non-empty labelings of equal length, got {labels_true.size} and {labels_pred.size}."
        )
    h_true, h_pred = entropy(labels_true), entropy(labels_pred)
    if h_true == 0.0 and h_pred == 0.0:
        return 1.0
    if h_true == 0.0 or h_pred == 0.0:
        return 0.0
    return float(
        min(
            mutual_information(labels_true, labels_pred) / np.sqrt(h_true * h_pred), 1.0
        )
    )


def kmeans_clusters(
    embeddings: np.ndarray, n_clusters: int, seed: int = 0
) -> np.ndarray:
    """Cluster assignments of scikit-learn's KMeans with the protocol's settings (see above).

    Args:
      embeddings: float array [n, d].
      n_clusters: k, 1 <= k <= n.
      seed: random_state of the seeding.

    Returns:
      int array [n], cluster ids in [0, k).

    Raises:
      ValueError: see `check_embeddings`; a seed outside [0, 2**32); k outside [1, n].
    """
    if n_clusters <= KMEANS_PLUSPLUS_MAX_CLUSTERS:
        settings = {"init": "k-means++", "max_iter": 300}
    else:
        settings = {"init": "random", "max_iter": KMEANS_LARGE_MAX_ITER}
    x = in_float32_range(check_embeddings(embeddings, "kmeans_clusters"))
    check_seed(seed, "kmeans_clusters")
    if not isinstance(n_clusters, numbers.Integral) or not 1 <= n_clusters <= len(x):
        raise ValueError(
            f"kmeans_clusters: n_clusters must be an integer in [1, n = {len(x)}], got "
            f"{n_clusters!r}."
        )
    kmeans = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed, **settings)
    return kmeans.fit_predict(x)


def clustering_nmi(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """The protocol's NMI (paper section 4): k-means with k = number of classes, then eq. 9.

    Args:
      embeddings: float array [n, d].
      labels: int array [n], true classes.
      seed: random_state of the k-means seeding.

    Returns:
      float in [0, 1].
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(np.asarray(embeddings)):
        raise ValueError(
            f"clustering_nmi: {len(np.asarray(embeddings))} embeddings but {len(labels)} labels."
        )
    n_classes = np.unique(labels).size
    return nmi(labels, kmeans_clusters(embeddings, n_classes, seed))
