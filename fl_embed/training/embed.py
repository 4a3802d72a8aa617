"""Embedding a whole evaluation split with a model or a SavedModel signature."""

from collections.abc import Callable

import numpy as np
import tensorflow as tf


def embed_dataset(
    embed_fn: Callable[[tf.Tensor], tf.Tensor],
    dataset: tf.data.Dataset,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `embed_fn` over every (image, label) example of `dataset`, in order.

    Args:
      embed_fn: float images [b, H, W, C] -> embeddings [b, d] (a Keras model in inference mode,
        or a SavedModel signature).
      dataset: finite, unbatched (image, label) examples.
      batch_size: examples per call of `embed_fn`.

    Returns:
      (embeddings float32 [n, d], labels int64 [n]).

    Raises:
      ValueError: the data set is empty.
    """
    embeddings, labels = [], []
    for images, batch_labels in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        embeddings.append(np.asarray(embed_fn(images), dtype=np.float32))
        labels.append(batch_labels.numpy().astype(np.int64))
    if not embeddings:
        raise ValueError("embed_dataset: the evaluation data set is empty.")
    return np.concatenate(embeddings), np.concatenate(labels)
