"""Pairwise distances between embeddings, with gradients that stay finite at zero distance."""

import tensorflow as tf


def pairwise_squared_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """Squared Euclidean distances D^2_ij = ||x_i - x_j||^2.

    Args:
      embeddings: float Tensor [m, d].

    Returns:
      float Tensor [m, m], non-negative, with an exact zero diagonal.
    """
    sq_norms = tf.reduce_sum(tf.square(embeddings), axis=1)
    gram = tf.matmul(embeddings, embeddings, transpose_b=True)
    d2 = sq_norms[:, None] - 2.0 * gram + sq_norms[None, :]
    # The expansion can round a hair below zero; the diagonal is zero by definition.
    d2 = tf.maximum(d2, 0.0)
    return tf.linalg.set_diag(d2, tf.zeros_like(sq_norms))


def pairwise_distances(embeddings: tf.Tensor, squared: bool = False) -> tf.Tensor:
    """Euclidean distances D_ij = ||x_i - x_j||_2 (paper eq. 1 notation).

    The gradient of sqrt at 0 is infinite; pairs at zero distance (the diagonal, duplicate
    embeddings) get a zero gradient instead of NaN.

    Args:
      embeddings: float Tensor [m, d].
      squared: return D^2 instead of D.

    Returns:
      float Tensor [m, m].
    """
    d2 = pairwise_squared_distances(embeddings)
    if squared:
        return d2
    positive = d2 > 0.0
    safe = tf.where(positive, d2, tf.ones_like(d2))
    return tf.where(positive, tf.sqrt(safe), tf.zeros_like(d2))
