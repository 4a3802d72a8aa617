"""Batch samplers: how the examples of one training batch are chosen (paper section 3.5)."""

from fl_embed.samplers.class_ratio import (
    ClassRatioSampler,
    check_sub_batches,
    class_ratio_dataset,
    classes_per_batch,
    labels_of,
    pipeline_rows,
    source_lookup,
    tensor_lookup,
)

__all__ = [
    "ClassRatioSampler",
    "check_sub_batches",
    "class_ratio_dataset",
    "classes_per_batch",
    "labels_of",
    "pipeline_rows",
    "source_lookup",
    "tensor_lookup",
]
