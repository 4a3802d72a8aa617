"""Triplet loss with FaceNet semi-hard negative mining (paper section 2.1, eq. 1)."""

import keras
import tensorflow as tf

from fl_embed.distances import pairwise_distances
from fl_embed.losses.base import MetricLossWrapper
from fl_embed.losses.validation import check_hyperparameter, check_labels_embeddings


def pair_masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The positive pairs P and negative pairs N of a batch (paper section 2 notation).

    Args:
      labels: int Tensor [m].

    Returns:
      (positive, negative), bool Tensors [m, m]: positive[i, j] is y[i] == y[j] and i != j
      (ordered pairs, so both (i, j) and (j, i) are in P); negative[i, k] is y[i] != y[k].
    """
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    return tf.logical_and(same, not_self), tf.logical_not(same)


def semihard_negatives(sq_dists: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """The FaceNet semi-hard negative k*(i, j) for every ordered pair (paper section 2.1).

    Formula:
    ```
    k*(i, j) = argmin_{k: y[k] != y[i], D_ik^2 > D_ij^2} D_ik^2
    k*(i, j) = argmax_{k: y[k] != y[i]} D_ik^2      if no k satisfies the constraint
    ```
    Ties go to the lowest index k; the loss value does not depend on the choice. O(m^2) memory
    and O(m^2 log m) time: each anchor's negative distances are sorted once (stably, so equal
    distances stay in index order), and k*(i, j) is the first sorted negative past D_ij^2 (a
    binary search), rather than a scan of an [m, m, m] mask.

    Args:
      sq_dists: float Tensor [m, m], squared distances D^2.
      negative: bool Tensor [m, m], negative[i, k] = y[i] != y[k].

    Returns:
      int Tensor [m, m]: k*(i, j). Meaningless (but a valid index) for an anchor i without
      any negative; callers mask those pairs out.
    """
    m = tf.shape(sq_dists)[0]
    inf = tf.constant(float("inf"), sq_dists.dtype)
    # Non-negatives sort past every (finite) negative distance, so row i's first
    # num_negatives[i] sorted entries are exactly its negatives.
    keyed = tf.where(negative, sq_dists, inf)
    order = tf.argsort(keyed, axis=1, stable=True)  # [i, rank] -> k
    sorted_d = tf.gather(keyed, order, batch_dims=1)
    num_negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1)  # [i]
    # rank of k*(i, j) = the number of i's negatives with D_ik^2 <= D_ij^2 (strict > in the
    # constraint), the first of a run of equal distances being the lowest index.
    rank = tf.searchsorted(sorted_d, sq_dists, side="right", out_type=tf.int32)
    # Fallback: the farthest negative; with ties, the first (lowest k) of the last run.
    last = tf.maximum(num_negatives - 1, 0)
    farthest_d = tf.gather(sorted_d, last[:, None], batch_dims=1)  # [i, 1]
    farthest_rank = tf.searchsorted(
        sorted_d, farthest_d, side="left", out_type=tf.int32
    )
    rank = tf.where(rank < num_negatives[:, None], rank, farthest_rank)
    return tf.gather(order, tf.minimum(rank, m - 1), batch_dims=1)


@tf.autograph.experimental.do_not_convert
def triplet_semihard_loss(labels, embeddings, margin: float = 1.0) -> tf.Tensor:
    """Triplet loss over every positive pair with its semi-hard negative (paper eq. 1, FaceNet).

    Formula:
    ```
    loss = 1/|P| * sum_{(i, j) in P} [D_ij^2 + margin - D_{i, k*(i, j)}^2]_+
    ```
    with D the Euclidean distance, P the ordered positive pairs (i != j) and k*(i, j) from
    `semihard_negatives`. The paper applies it to L2-normalised embeddings.

    Args:
      labels: int Tensor [m] or [m, 1], class ids.
      embeddings: float Tensor [m, d]; float16/bfloat16 are computed in float32.
      margin: the margin alpha of eq. 1.

    Returns:
      float32 scalar. 0, with a zero gradient, for a batch without a positive pair or without
      a negative (no triplet exists).

    Raises:
      ValueError / tf.errors.InvalidArgumentError: see `check_labels_embeddings`; a margin that
        is NaN, infinite, negative or not a number (`check_hyperparameter`).
    """
    margin = check_hyperparameter(margin, "margin", "triplet_semihard_loss")
    labels, embeddings = check_labels_embeddings(
        labels, embeddings, "triplet_semihard_loss"
    )
    sq_dists = pairwise_distances(embeddings, squared=True)
    positive, negative = pair_masks(labels)
    k_star = semihard_negatives(sq_dists, negative)
    d_ik_star = tf.gather(sq_dists, k_star, batch_dims=1)  # [i, j] -> D^2_{i, k*(i, j)}
    # An anchor without a negative has no triplet; in a batch with one such anchor every
    # anchor shares its label, so this empties the whole batch.
    valid = tf.logical_and(positive, tf.reduce_any(negative, axis=1, keepdims=True))
    hinge = tf.nn.relu(sq_dists + margin - d_ik_star)
    total = tf.reduce_sum(tf.where(valid, hinge, tf.zeros_like(hinge)))
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    return total / tf.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="fl_embed")
class TripletSemiHardLoss(MetricLossWrapper):
    """Keras loss for `triplet_semihard_loss` (paper eq. 1 with semi-hard mining).

    `y_true`: int labels [batch] or [batch, 1]; `y_pred`: embeddings [batch, dim], L2-normalised
    in the paper's setting.

    Args:
      margin: the margin alpha of eq. 1.
      **kwargs: `name`, `reduction`, `dtype` of `keras.losses.Loss`.
    """

    def __init__(
        self, margin: float = 1.0, name: str = "triplet_semihard_loss", **kwargs
    ):
        check_hyperparameter(margin, "margin", name)
        super().__init__(triplet_semihard_loss, name=name, margin=margin, **kwargs)
