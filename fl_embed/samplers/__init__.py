"""Batch samplers: how the examples of one training batch are chosen (paper section 3.5)."""

from fl_embed.samplers.class_ratio import (
    ClassRatioSampler,
    class_ratio_dataset,
    classes_per_batch,
    labels_of,
    source_lookup,
    tensor_lookup,
)

__all__ = [
    "ClassRatioSampler",
    "class_ratio_dataset",
    "classes_per_batch",
    "labels_of",
    "source_lookup",
    "tensor_lookup",
]
