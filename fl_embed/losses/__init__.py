"""Metric-learning losses: the facility-location clustering loss and the paper's baselines."""

from fl_embed.losses.cluster import (
    ClusteringLoss,
    ClusterLossTerms,
    cluster_loss,
    cluster_loss_terms,
    loss_augmented_inference,
)
from fl_embed.losses.margins import MARGIN_TYPES, clustering_score, structured_margin

__all__ = [
    "MARGIN_TYPES",
    "ClusterLossTerms",
    "ClusteringLoss",
    "cluster_loss",
    "cluster_loss_terms",
    "clustering_score",
    "loss_augmented_inference",
    "structured_margin",
]
