"""Evaluation protocol of the paper (section 4): NMI of k-means and Recall@K, plus MAP@R and
R-precision (Musgrave et al. 2020)."""

from fl_embed.evaluation.clustering import (
    clustering_nmi,
    entropy,
    kmeans_clusters,
    mutual_information,
    nmi,
)
from fl_embed.evaluation.knn import exact_knn, faiss_module
from fl_embed.evaluation.protocol import (
    CUB_CARS_KS,
    PRODUCTS_KS,
    check_embeddings_labels,
    evaluate,
)
from fl_embed.evaluation.report import write_metrics_json
from fl_embed.evaluation.retrieval import (
    map_at_r,
    neighbour_matches,
    r_precision,
    recall_at_k,
    same_class_counts,
)

__all__ = [
    "CUB_CARS_KS",
    "PRODUCTS_KS",
    "check_embeddings_labels",
    "clustering_nmi",
    "entropy",
    "evaluate",
    "exact_knn",
    "faiss_module",
    "kmeans_clusters",
    "map_at_r",
    "mutual_information",
    "neighbour_matches",
    "nmi",
    "r_precision",
    "recall_at_k",
    "same_class_counts",
    "write_metrics_json",
]
