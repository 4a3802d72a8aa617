"""Multi-class N-pairs loss (paper section 2.3, eq. 3; Sohn 2016)."""

import keras
import tensorflow as tf

from fl_embed.losses.base import MetricLossWrapper
from fl_embed.losses.lifted import masked_row_logsumexp
from fl_embed.losses.triplet import pair_masks
from fl_embed.losses.validation import check_hyperparameter, check_labels_embeddings


def npairs_softmax_term(similarities: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """The softmax cross-entropy of eq. 3 for every pair (i, j), in a form that cannot overflow.

    Formula:
    ```
    -log(exp(S_ij) / (exp(S_ij) + sum_{k: y[k] != y[i]} exp(S_ik)))
        = softplus(log sum_{k: y[k] != y[i]} exp(S_ik) - S_ij)
    ```

    Args:
      similarities: float Tensor [m, m], dot products S_ij = f(X_i)^T f(X_j).
      negative: bool Tensor [m, m], negative[i, k] = y[i] != y[k].

    Returns:
      float Tensor [m, m]. Meaningless for an anchor i without a negative.
    """
    shift, scaled_sum = masked_row_logsumexp(similarities, negative)
    safe_sum = tf.where(scaled_sum > 0.0, scaled_sum, tf.ones_like(scaled_sum))
    negatives_logsumexp = shift + tf.math.log(safe_sum)
    return tf.nn.softplus(negatives_logsumexp[:, None] - similarities)


def embedding_norm_penalty(embeddings: tf.Tensor) -> tf.Tensor:
    """The regulariser of eq. 3 without lambda: the mean L2 norm (not squared) of the embeddings.

    Formula:
    ```
    penalty = 1/m * sum_i ||f(X_i)||_2
    ```
    A zero embedding gets a zero gradient instead of NaN.

    Args:
      embeddings: float Tensor [m, d].

    Returns:
      float scalar.
    """
    sq_norms = tf.reduce_sum(tf.square(embeddings), axis=1)
    nonzero = sq_norms > 0.0
    norms = tf.where(
        nonzero,
        tf.sqrt(tf.where(nonzero, sq_norms, tf.ones_like(sq_norms))),
        tf.zeros_like(sq_norms),
    )
    return tf.reduce_mean(norms)


@tf.autograph.experimental.do_not_convert
def npairs_loss(labels, embeddings, reg_lambda: float = 0.002) -> tf.Tensor:
    """Multi-class N-pairs loss over every ordered positive pair (paper eq. 3).

    Formula:
    ```
    loss = -1/|P| * sum_{(i, j) in P} log(exp(S_ij) / (exp(S_ij) + sum_{k: y[k] != y[i]} exp(S_ik)))
           + lambda/m * sum_i ||f(X_i)||_2
    ```
    with S_ij = f(X_i)^T f(X_j) and P the ordered positive pairs (i != j). The paper applies it to
    unnormalised embeddings.

    Args:
      labels: int Tensor [m] or [m, 1], class ids.
      embeddings: float Tensor [m, d]; float16/bfloat16 are computed in float32.
      reg_lambda: lambda of eq. 3, the weight of the embedding-norm regulariser.

    Returns:
      float32 scalar. 0 as a whole (regulariser included), with a zero gradient, for a batch
      without a positive pair or without a negative.

    Raises:
      ValueError / tf.errors.InvalidArgumentError: see `check_labels_embeddings`; a reg_lambda that
        is NaN, infinite, negative or not a number (`check_hyperparameter`).
    """
    reg_lambda = check_hyperparameter(reg_lambda, "reg_lambda", "npairs_loss")
    labels, embeddings = check_labels_embeddings(labels, embeddings, "npairs_loss")
    similarities = tf.matmul(embeddings, embeddings, transpose_b=True)
    positive, negative = pair_masks(labels)
    cross_entropy = npairs_softmax_term(similarities, negative)
    valid = tf.logical_and(positive, tf.reduce_any(negative, axis=1, keepdims=True))
    total = tf.reduce_sum(tf.where(valid, cross_entropy, tf.zeros_like(cross_entropy)))
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    loss = total / tf.maximum(count, 1.0) + reg_lambda * embedding_norm_penalty(
        embeddings
    )
    # Without a pair the softmax term is empty; dropping the regulariser too keeps a degenerate
    # batch from shrinking the embeddings on its own.
    return tf.where(count > 0.0, loss, tf.zeros_like(loss))


@keras.saving.register_keras_serializable(package="fl_embed")
class NPairsLoss(MetricLossWrapper):
    """Keras loss for `npairs_loss` (paper eq. 3).

    `y_true`: int labels [batch] or [batch, 1]; `y_pred`: embeddings [batch, dim], unnormalised
    in the paper's setting.

    Args:
      reg_lambda: lambda of eq. 3.
      **kwargs: `name`, `reduction`, `dtype` of `keras.losses.Loss`.
    """

    def __init__(self, reg_lambda: float = 0.002, name: str = "npairs_loss", **kwargs):
        check_hyperparameter(reg_lambda, "reg_lambda", name)
        super().__init__(npairs_loss, name=name, reg_lambda=reg_lambda, **kwargs)
