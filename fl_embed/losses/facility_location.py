"""Facility location (paper section 3): the energy F(X, S) (eq. 4), the oracle score F~(X, y*)
(eq. 5) and the clustering g(S) (eq. 7).

All functions take a pairwise distance matrix `distances` [m, m] (Euclidean, not squared).
Medoids S are a vector of point indices in slot order: slot k is cluster k of g(S); an entry m is
an unused slot. Distance ties in g(S) go to the lowest slot; a medoid always belongs to its own
slot, even when another medoid sits at the same position. The loss-augmented inference that
maximises F(X, S) + gamma Delta(g(S), y*) is in `greedy.py` (Algorithm 1) and `pam.py`
(Algorithm 2).
"""

import tensorflow as tf

from fl_embed.losses import margins as margins_lib


def facility_energy(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """F(X, S) = -sum_i min_{j in S} ||f(X_i) - f(X_j)||, eq. 4.

    Args:
      distances: float Tensor [m, m], pairwise Euclidean distances.
      medoids: int Tensor [K], point indices of the facilities S (entries equal to m are unused
        slots and ignored).

    Returns:
      float scalar.
    """
    return -tf.reduce_sum(tf.reduce_min(slot_rows(distances, medoids), axis=0))


def cluster_assignment(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """g(S)[i] = argmin_k ||f(X_i) - f(X_{S[k]})||, eq. 7.

    Distance ties go to the lowest slot; each medoid is assigned to its own slot.

    Args:
      distances: float Tensor [m, m].
      medoids: int Tensor [K], point indices (entries equal to m are unused slots).

    Returns:
      int32 Tensor [m], slot of each point in 0..K-1.
    """
    _, asg = nearest_slot(slot_rows(distances, medoids))
    return force_medoid_slots(asg, medoids)


def slot_rows(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """Rows of `distances` for each slot; an unused slot (index m) is infinitely far from all."""
    padded = tf.concat(
        [distances, tf.fill([1, tf.shape(distances)[1]], float("inf"))], axis=0
    )
    return tf.gather(padded, medoids)


def oracle_score(
    distances: tf.Tensor, labels: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """F~(X, y*) = sum_k max_{j in class k} F(X_{class k}, {j}), eq. 5.

    Args:
      distances: float Tensor [m, m].
      labels: int Tensor [m], class ids (compared for equality only).

    Returns:
      (score, oracle_medoid): float scalar, and int32 [m] giving for each point the index of the
      medoid j*(k) of its class (lowest index among ties).
    """
    m = tf.shape(distances)[0]
    index = tf.range(m)
    same = tf.equal(labels[:, None], labels[None, :])
    # within[j] = sum over i in class(j) of D_ij: the cost of j as its class's medoid.
    within = tf.reduce_sum(tf.where(same, distances, 0.0), axis=0)
    best = tf.reduce_min(
        tf.where(same, within[None, :], float("inf")), axis=1
    )  # per point, its class's best
    is_best = same & tf.equal(within[None, :], best[:, None])
    oracle_medoid = tf.reduce_min(tf.where(is_best, index[None, :], m), axis=1)
    # Count each class once, at its lowest-index member.
    first_of_class = tf.equal(margins_lib.dense_labels(labels), index)
    return -tf.reduce_sum(tf.where(first_of_class, best, 0.0)), oracle_medoid


def nearest_slot(slot_distances: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Min over slots (rows) and the lowest slot attaining it. [K, m] -> ([m], int32 [m])."""
    num_slots = tf.shape(slot_distances)[0]
    mind = tf.reduce_min(slot_distances, axis=0)
    slot = tf.range(num_slots)[:, None]
    asg = tf.reduce_min(
        tf.where(tf.equal(slot_distances, mind[None, :]), slot, num_slots), axis=0
    )
    return mind, asg


def force_medoid_slots(asg: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """Each medoid into its own slot; unused slots (index m) write to a scratch entry."""
    slots = tf.range(tf.shape(medoids)[0], dtype=asg.dtype)
    extended = tf.concat([asg, tf.zeros([1], asg.dtype)], axis=0)
    return tf.tensor_scatter_nd_update(extended, medoids[:, None], slots)[:-1]
