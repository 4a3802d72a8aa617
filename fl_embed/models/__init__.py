"""Embedding models: backbones (Inception v3, BN-Inception, a small CNN) with a linear embedding head."""

from fl_embed.models.bn_inception import bn_inception
from fl_embed.models.embedder import (
    BACKBONE_LAYER,
    BACKBONES,
    DEFAULT_INPUT_SHAPES,
    build_backbone,
    build_embedder,
    save_backbone_weights,
)
from fl_embed.models.preprocessing import SCALINGS, preprocess_for, scaling_for
from fl_embed.models.small_cnn import small_cnn

__all__ = [
    "BACKBONES",
    "BACKBONE_LAYER",
    "DEFAULT_INPUT_SHAPES",
    "SCALINGS",
    "bn_inception",
    "build_backbone",
    "build_embedder",
    "preprocess_for",
    "save_backbone_weights",
    "scaling_for",
    "small_cnn",
]
