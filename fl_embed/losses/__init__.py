"""Metric-learning losses: the facility-location clustering loss and the paper's baselines."""

from fl_embed.losses.cluster import (
    ClusteringLoss,
    ClusterLossTerms,
    cluster_loss,
    cluster_loss_terms,
)
from fl_embed.losses.compiled import loss_augmented_inference
from fl_embed.losses.lifted import LiftedStructLoss, lifted_struct_loss
from fl_embed.losses.margins import MARGIN_TYPES, clustering_score, structured_margin
from fl_embed.losses.npairs import NPairsLoss, npairs_loss
from fl_embed.losses.registry import LOSS_NAMES, LOSSES, LossSpec, get_loss, loss_terms
from fl_embed.losses.triplet import TripletSemiHardLoss, triplet_semihard_loss

__all__ = [
    "LOSSES",
    "LOSS_NAMES",
    "MARGIN_TYPES",
    "ClusterLossTerms",
    "ClusteringLoss",
    "LiftedStructLoss",
    "LossSpec",
    "NPairsLoss",
    "TripletSemiHardLoss",
    "cluster_loss",
    "cluster_loss_terms",
    "clustering_score",
    "get_loss",
    "lifted_struct_loss",
    "loss_augmented_inference",
    "loss_terms",
    "npairs_loss",
    "structured_margin",
    "triplet_semihard_loss",
]
