"""Algorithm 1 of the paper: greedy loss-augmented inference."""

import tensorflow as tf

from fl_embed.losses import candidates as cand


def greedy_facilities(
    distances,
    labels,
    margin_multiplier,
    margin_type: str = "nmi",
    num_slots=None,
    emi_table=None,
) -> tf.Tensor:
    """Algorithm 1: greedily add i* = argmax_i A(S u {i}) until |S| = |Y|.

    Formula:
        A(S) = F(X, S) + gamma Delta(g(S), y*)        (eqs. 4, 7, 8)
    Every candidate i is scored at each step (`candidates.py`): it takes over the points closer
    to it than to their medoid in S, and its A(S u {i}) follows from the energy of that reduction
    and three segment sums of the taken points. Ties go to the lowest point index.

    Args:
      distances: float32 [m, m], pairwise Euclidean distances.
      labels: int32 [m], class ids in [0, m) (e.g. `margins.dense_labels`).
      margin_multiplier: float scalar gamma.
      margin_type: one of margins.MARGIN_TYPES.
      num_slots: n, the length of S as returned, at least the number of classes K (default m).
        The per-cluster and per-class tables have n rows, so a smaller n is faster; it must be
        known when XLA compiles (a Python int, or computed from static shapes).
      emi_table: for "ami", `margins.expected_mi_table` of the classes; computed when None.

    Returns:
      int32 [n]: the K medoids in slot order, then m (unused slots).

    Raises:
      tf.errors.InvalidArgumentError: num_slots below K (outside XLA).
    """
    m = tf.shape(distances)[0]
    n = m if num_slots is None else num_slots
    classes = cand.make_classes(labels, margin_type, n, emi_table)
    index = tf.range(m)
    # Column q holds D[q, :]: candidates along the last axis, so segment sums run over points.
    columns = tf.transpose(distances)

    def add_facility(t, medoids, mind, asg, fixed, cell):
        base = cand.make_base(mind, asg, fixed, cell, n, margin_type)
        energy = -tf.reduce_sum(tf.minimum(columns, mind[:, None]), axis=0)
        taken = cand.taken_points(columns, index, t, base)
        margin = cand.candidate_margins(taken, base, classes, margin_type)
        best = cand.argmax_lowest_index(energy + margin_multiplier * margin, ~fixed)
        row = tf.gather(distances, best)
        takes = ((row < mind) & ~fixed) | tf.equal(index, best)
        asg = tf.where(takes, t, asg)
        # New cell ids, O(m): the taken points form one new cell per class (key m + class); the
        # others keep their cell (key = old id). Each cell's id is its lowest-index member.
        key = tf.where(takes, m + classes.labels, tf.where(cell < m, cell, 2 * m))
        first = tf.math.unsorted_segment_min(index, key, 2 * m + 1)
        return (
            t + 1,
            tf.tensor_scatter_nd_update(medoids, [[t]], [best]),
            tf.where(takes, row, mind),
            asg,
            fixed | tf.equal(index, best),
            tf.where(asg < n, tf.gather(first, key), m),
        )

    _, medoids, _, _, _, _ = tf.while_loop(
        lambda t, *_: t < classes.num_classes,
        add_facility,
        (
            tf.constant(0),
            tf.fill([n], m),  # S
            tf.fill([m], float("inf")),  # distance to the nearest medoid in S
            tf.fill([m], n),  # g(S), n while unassigned
            tf.zeros([m], tf.bool),  # medoids
            tf.fill([m], m),  # cell ids
        ),
    )
    return medoids
