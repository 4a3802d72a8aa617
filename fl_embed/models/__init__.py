"""Embedding models: backbones (TF-slim's Inception v2, Inception v3, BN-Inception, a small CNN) with a
linear embedding head. `registry.BACKBONE_SPECS` is the one list of backbones."""

from fl_embed.models.bn_inception import bn_inception
from fl_embed.models.embedder import (
    build_backbone,
    build_embedder,
    save_backbone_weights,
)
from fl_embed.models.inception_v2 import inception_v2
from fl_embed.models.preprocessing import SCALINGS, preprocess_for, scaling_for
from fl_embed.models.registry import (
    BACKBONE_LAYER,
    BACKBONE_SPECS,
    BACKBONES,
    get_backbone,
)
from fl_embed.models.small_cnn import small_cnn

__all__ = [
    "BACKBONES",
    "BACKBONE_LAYER",
    "BACKBONE_SPECS",
    "SCALINGS",
    "bn_inception",
    "build_backbone",
    "build_embedder",
    "get_backbone",
    "inception_v2",
    "preprocess_for",
    "save_backbone_weights",
    "scaling_for",
    "small_cnn",
]
