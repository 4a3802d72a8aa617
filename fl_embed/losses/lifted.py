"""Lifted structured embedding loss (paper section 2.2, eq. 2; Song et al. 2016)."""

import keras
import tensorflow as tf

from fl_embed.distances import pairwise_distances
from fl_embed.losses.base import MetricLossWrapper
from fl_embed.losses.triplet import pair_masks
from fl_embed.losses.validation import check_hyperparameter, check_labels_embeddings


def masked_row_logsumexp(
    values: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """log sum_{k: mask[i, k]} exp(values[i, k]) per row, split as a shift and a sum for stability.

    Formula:
    ```
    shift_i = max_{k: mask[i, k]} values[i, k]
    scaled_sum_i = sum_{k: mask[i, k]} exp(values[i, k] - shift_i)      (in [1, m])
    logsumexp_i = shift_i + log(scaled_sum_i)
    ```

    Args:
      values: float Tensor [m, n].
      mask: bool Tensor [m, n].

    Returns:
      (shift [m], scaled_sum [m]); for a row with an empty mask, shift is 0 and scaled_sum 0.
      The shift carries no gradient (the log-sum-exp does not depend on it).
    """
    any_in_row = tf.reduce_any(mask, axis=1)
    lowest = tf.fill(tf.shape(values), values.dtype.min)
    shift = tf.reduce_max(tf.where(mask, values, lowest), axis=1)
    shift = tf.stop_gradient(tf.where(any_in_row, shift, tf.zeros_like(shift)))
    # Zero the exponent outside the mask before exp: tf.where would otherwise route an inf
    # forward value into a NaN gradient.
    exponent = tf.where(mask, values - shift[:, None], tf.zeros_like(values))
    scaled_sum = tf.reduce_sum(
        tf.where(mask, tf.exp(exponent), tf.zeros_like(values)), axis=1
    )
    return shift, scaled_sum


def lifted_pair_objective(
    dists: tf.Tensor, negative: tf.Tensor, margin: float
) -> tf.Tensor:
    """J_ij, the term inside the hinge of paper eq. 2, for every pair (i, j).

    Formula:
    ```
    J_ij = log(sum_{(i,k) in N} exp(margin - D_ik) + sum_{(j,l) in N} exp(margin - D_jl)) + D_ij
    ```
    computed as a log-sum-exp over the union of both anchors' negatives, shifted by the
    larger of the two row maxima so no exp overflows.

    Args:
      dists: float Tensor [m, m], Euclidean distances D.
      negative: bool Tensor [m, m], negative[i, k] = y[i] != y[k].
      margin: the margin alpha of eq. 2.

    Returns:
      float Tensor [m, m], symmetric. Meaningless where neither i nor j has a negative.
    """
    shift, scaled_sum = masked_row_logsumexp(margin - dists, negative)
    pair_shift = tf.maximum(shift[:, None], shift[None, :])
    pair_sum = scaled_sum[:, None] * tf.exp(shift[:, None] - pair_shift) + scaled_sum[
        None, :
    ] * tf.exp(shift[None, :] - pair_shift)
    safe_sum = tf.where(pair_sum > 0.0, pair_sum, tf.ones_like(pair_sum))
    return pair_shift + tf.math.log(safe_sum) + dists


@tf.autograph.experimental.do_not_convert
def lifted_struct_loss(labels, embeddings, margin: float = 1.0) -> tf.Tensor:
    """Lifted structured embedding loss (paper eq. 2).

    Formula:
    ```
    loss = 1/(2|P|) * sum_{(i, j) in P} [J_ij]_+^2
    ```
    with J_ij from `lifted_pair_objective`, D the Euclidean distance and P the positive pairs.
    J_ij is symmetric, so averaging over ordered pairs (as here) equals averaging over unordered
    ones. The paper applies it to unnormalised embeddings.

    Args:
      labels: int Tensor [m] or [m, 1], class ids.
      embeddings: float Tensor [m, d]; float16/bfloat16 are computed in float32.
      margin: the margin alpha of eq. 2.

    Returns:
      float32 scalar. 0, with a zero gradient, for a batch without a positive pair or without
      a negative.

    Raises:
      ValueError / tf.errors.InvalidArgumentError: see `check_labels_embeddings`; a margin that
        is NaN, infinite, negative or not a number (`check_hyperparameter`).
    """
    margin = check_hyperparameter(margin, "margin", "lifted_struct_loss")
    labels, embeddings = check_labels_embeddings(
        labels, embeddings, "lifted_struct_loss"
    )
    dists = pairwise_distances(embeddings)
    positive, negative = pair_masks(labels)
    objective = lifted_pair_objective(dists, negative, margin)
    valid = tf.logical_and(positive, tf.reduce_any(negative, axis=1, keepdims=True))
    squared_hinge = tf.square(tf.nn.relu(objective))
    total = tf.reduce_sum(tf.where(valid, squared_hinge, tf.zeros_like(squared_hinge)))
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    return total / (2.0 * tf.maximum(count, 1.0))


@keras.saving.register_keras_serializable(package="fl_embed")
class LiftedStructLoss(MetricLossWrapper):
    """Keras loss for `lifted_struct_loss` (paper eq. 2).

    `y_true`: int labels [batch] or [batch, 1]; `y_pred`: embeddings [batch, dim], unnormalised
    in the paper's setting.

    Args:
      margin: the margin alpha of eq. 2.
      **kwargs: `name`, `reduction`, `dtype` of `keras.losses.Loss`.
    """

    def __init__(self, margin: float = 1.0, name: str = "lifted_struct_loss", **kwargs):
        check_hyperparameter(margin, "margin", name)
        super().__init__(lifted_struct_loss, name=name, margin=margin, **kwargs)
