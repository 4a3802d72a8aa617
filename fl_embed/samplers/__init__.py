"""Batch samplers: how the examples of one training batch are chosen (paper section 3.5).

`class_ratio` is the sampling policy (numpy); `tf_data` feeds it to `tf.data` and to the replicas.
"""

from fl_embed.samplers.class_ratio import (
    ClassRatioSampler,
    check_sub_batches,
    classes_per_batch,
    positions_of_classes,
)
from fl_embed.samplers.tf_data import (
    class_ratio_dataset,
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
    "positions_of_classes",
    "source_lookup",
    "tensor_lookup",
]
