"""TensorBoard scalars written with TensorFlow alone.

`tf.summary.scalar` lives in the `tensorboard` package, which `tensorflow-cpu` does not install;
`tf.summary.write` with the scalars plugin's metadata writes the same event records.
"""

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


def write_scalars(
    writer: tf.summary.SummaryWriter, step: int, values: dict[str, float]
) -> None:
    """Writes one TensorBoard scalar per entry of `values` at `step`, then flushes.

    Args:
      writer: from `tf.summary.create_file_writer`.
      step: the training step.
      values: tag -> number.
    """
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.write(
                tag, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA
            )
    writer.flush()
