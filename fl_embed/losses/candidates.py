"""Scoring every candidate medoid at once: the kernel shared by Algorithms 1 and 2.

Both algorithms repeatedly score a set of candidate medoids against a *base* clustering (greedy:
the facilities chosen so far; PAM: S without slot k), where each candidate takes over the points
closer to it than to their base medoid. The facility part is a masked reduction. Every structured
margin is a function of sums of an elementwise function over the contingency table (see
`margins.py`), so a candidate's margin follows from the counts of the points it takes over per
(cluster, class) cell, per cluster and per class: three segment sums of the take-over mask
[points, candidates] by the base's cells, clusters and classes, O(m x candidates) a step.

Only groups of two or more points get a row (`group_rows`): f(0) = f(1) = 0 for every margin but
"const", so a group of one point adds nothing whether or not it is taken. S has n >= K slots
(unused ones hold m), and the per-cluster and per-class tables have at most n rows; shapes depend
on m and n only, so XLA compiles once per (batch size, n).

Pruning. For "nmi" and "vmeasure", `margin_upper_bound` bounds a candidate's margin from two
column sums of the points it would take, so most candidates can be ruled out without their
three segment sums (see `greedy.py`).

Ties. Scores within a relative tolerance RTOL are tied (float32 rounding decides otherwise, and
ties are common: with singleton classes two candidates often score exactly the same), and ties go
to the lowest point index.
"""

from typing import NamedTuple

import tensorflow as tf

from fl_embed.losses import margins as margins_lib

RTOL = 1e-5
# Margin types with a `margin_upper_bound`, and the absolute slack added to it: float32 rounding
# of the segment sums moves a computed margin by ~1e-5 at m = 4096.
BOUNDED_MARGINS = ("nmi", "vmeasure")
BOUND_SLACK = 1e-4


class Classes(NamedTuple):
    """The true classes y*, fixed during the inference."""

    labels: tf.Tensor  # int32 [m], class ids in [0, K)
    num_classes: tf.Tensor  # int32 scalar K
    # Row of each point's class in the per-class table (see `group_rows`), and the row count.
    row: tf.Tensor  # int32 [m]
    num_rows: tf.Tensor  # int32 scalar
    s_c: tf.Tensor  # float32 scalar, sum over classes of f(class size)
    emi_table: tf.Tensor  # float32 [m + 1], only read by "ami"


class Base(NamedTuple):
    """The clustering every candidate is scored against (see the module docstring)."""

    mind: tf.Tensor  # float32 [m], distance to the base medoid (+inf when unassigned)
    asg: tf.Tensor  # int32 [m], base slot in [0, n), n when unassigned
    fixed: tf.Tensor  # bool [m], medoids of the base: they keep their slot
    # Rows of the point in the per-cell and per-cluster tables (see `group_rows`), and the sizes
    # of the cells and clusters in those rows.
    cell: tf.Tensor  # int32 [m]
    cell_size: tf.Tensor  # float32 [rows]
    cluster: tf.Tensor  # int32 [m]
    cluster_size: tf.Tensor  # float32 [rows]


def segment_sum(data: tf.Tensor, ids: tf.Tensor, n) -> tf.Tensor:
    """Sums of `data` rows per id in [0, n); rows with id n are dropped. [m, ...] -> [n, ...]."""
    return tf.math.unsorted_segment_sum(data, ids, n + 1)[:n]


def group_rows(ids, num_ids, max_rows, drop_singletons: bool):
    """Rows of a per-group table (groups: cells, clusters or classes) for group ids in
    [0, num_ids), num_ids meaning no group. Returns (row [m], row sizes, number of rows).

    With `drop_singletons` only groups of two or more points get a row, numbered in id order,
    the rest row = number of rows (dropped by `segment_sum`): when f(0) = f(1) = 0, a group of
    one point adds f(1 - t) = 0 to the sums whether or not a candidate takes it. There are at
    most m // 2 such groups, and at most `max_rows` (a bound on the groups, e.g. the slots).
    """
    m = tf.shape(ids)[0]
    ones = tf.ones([m])
    sizes = segment_sum(ones, ids, num_ids)
    if not drop_singletons:
        return ids, sizes, num_ids
    num_rows = tf.minimum(max_rows, m // 2)
    kept = sizes >= 2.0
    rank = tf.where(kept, tf.cumsum(tf.cast(kept, tf.int32)) - 1, num_rows)
    row = tf.gather(tf.concat([rank, [num_rows]], axis=0), ids)
    return row, segment_sum(ones, row, num_rows), num_rows


def make_classes(labels, margin_type: str, num_slots, emi_table=None) -> Classes:
    """The `Classes` of dense labels (ids in [0, m), e.g. `margins.dense_labels`).

    `num_slots`: n, the length of S, at least the number of classes K (checked when not
    XLA-compiled: XLA drops run-time asserts). `emi_table`: for "ami", the
    `margins.expected_mi_table` of the classes; computed when None.
    """
    m = tf.shape(labels)[0]
    class_size = segment_sum(tf.ones([m]), labels, m)
    s_c = tf.reduce_sum(margins_lib.stat_fn(margin_type)(class_size))
    present = class_size > 0.0
    num_classes = tf.reduce_sum(tf.cast(present, tf.int32))
    check = tf.debugging.assert_less_equal(
        num_classes,
        tf.cast(num_slots, tf.int32),
        message="facility_location: num_slots (the length of S) must be at least the "
        "number of classes K",
    )
    with tf.control_dependencies([check]):
        num_classes = tf.identity(num_classes)
    if margin_type != "ami":
        emi_table = tf.zeros([m + 1])
    elif emi_table is None:
        emi_table = margins_lib.expected_mi_table(class_size, tf.cast(m, tf.float32))
    # Ids made contiguous, 0..K-1 (order kept).
    labels = tf.gather(tf.cumsum(tf.cast(present, tf.int32)) - 1, labels)
    row, _, num_rows = group_rows(
        labels, num_slots, num_slots, margins_lib.singletons_add_nothing(margin_type)
    )
    return Classes(labels, num_classes, row, num_rows, s_c, emi_table)


def make_base(mind, asg, fixed, cell_id, num_slots, margin_type) -> Base:
    """`cell_id`: the point's cell as an id in [0, m), m if unassigned."""
    m = tf.shape(asg)[0]
    drop = margins_lib.singletons_add_nothing(margin_type)
    cell, cell_size, _ = group_rows(cell_id, m, m, drop)
    # AMI's expected-MI term E(cluster size) is not zero at size 1: keep every cluster.
    cluster, cluster_size, _ = group_rows(
        asg, num_slots, num_slots, drop and margin_type != "ami"
    )
    return Base(mind, asg, fixed, cell, cell_size, cluster, cluster_size)


def taken_points(columns, candidates, new_slot, base: Base) -> tf.Tensor:
    """float [m, Q]: 1 where candidate q (column) would take point p (row) from the base.

    Args:
      columns: float [m, Q], distance from each candidate to every point, D[q, p] at [p, q].
      candidates: int32 [Q], the candidates' point indices.
      new_slot: int32 scalar, the slot the candidate fills (ties with base slots below it go to
        them).
      base: see `Base`.
    """
    m = tf.shape(columns)[0]
    mind = base.mind[:, None]
    closer = columns < mind
    tie_wins = tf.equal(columns, mind) & (new_slot < base.asg)[:, None]
    itself = tf.equal(tf.range(m)[:, None], candidates[None, :])
    return tf.cast(((closer | tie_wins) & ~base.fixed[:, None]) | itself, tf.float32)


def _table_lookup(table: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    return tf.gather(table, tf.cast(tf.math.round(counts), tf.int32))


def candidate_margins(
    taken: tf.Tensor, base: Base, classes: Classes, margin_type: str
) -> tf.Tensor:
    """Delta(g(base + candidate), y*) for every candidate at once, eq. 8.

    The candidate's clustering is the base with the taken points moved to a new cluster, so its
    contingency table is the base table less the taken counts per cell and per cluster, plus a
    new row of the taken counts per class. Those counts are three segment sums of `taken`.

    Args:
      taken: float [m, Q], from `taken_points`.
      base, classes: see `Base`, `Classes`.

    Returns:
      float32 [Q].
    """
    f = margins_lib.stat_fn(margin_type)
    m = tf.shape(taken)[0]
    taken_per_cell = segment_sum(taken, base.cell, tf.shape(base.cell_size)[0])
    taken_per_cluster = segment_sum(taken, base.cluster, tf.shape(base.cluster_size)[0])
    taken_per_class = segment_sum(taken, classes.row, classes.num_rows)
    taken_total = tf.reduce_sum(taken, axis=0)
    s_ac = tf.reduce_sum(
        f(base.cell_size[:, None] - taken_per_cell), axis=0
    ) + tf.reduce_sum(f(taken_per_class), axis=0)
    left = base.cluster_size[:, None] - taken_per_cluster
    s_a = tf.reduce_sum(f(left), axis=0) + f(taken_total)
    s_e = None
    if margin_type == "ami":
        table = classes.emi_table
        s_e = tf.reduce_sum(_table_lookup(table, left), axis=0) + _table_lookup(
            table, taken_total
        )
    score = margins_lib.score_from_sums(
        margin_type, s_ac, s_a, classes.s_c, tf.cast(m, tf.float32), s_e
    )
    return 1.0 - score


def argmax_lowest_index(scores: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Index of the best valid score; scores within RTOL of the best are tied, lowest index wins."""
    scores = tf.where(valid, scores, -float("inf"))
    best = tf.reduce_max(scores)
    tol = RTOL * (tf.abs(best) + 1.0)
    winners = valid & (scores >= best - tol)
    return tf.reduce_min(
        tf.where(winners, tf.range(tf.shape(scores)[0]), tf.shape(scores)[0])
    )


def take_weights(classes: Classes) -> tf.Tensor:
    """float32 [m]: 1 + log(size of the point's class), at least 1 + log(size of its cell) in any
    clustering, so at least what a candidate taking the point can lower s_ac by
    (f(n) - f(n - t) <= t f'(n) for the convex f(x) = x log x)."""
    size = segment_sum(
        tf.ones(tf.shape(classes.labels)), classes.labels, tf.shape(classes.labels)[0]
    )
    return 1.0 + tf.math.log(tf.maximum(tf.gather(size, classes.labels), 1.0))


def margin_upper_bound(
    count: tf.Tensor, weight: tf.Tensor, base: Base, classes: Classes, margin_type: str
) -> tf.Tensor:
    """An upper bound on `candidate_margins` from two column sums of the points a candidate takes
    (any over-count keeps it a bound), for the margins in BOUNDED_MARGINS.

    A candidate taking points T with weights w (`take_weights`) has s_ac >= s_ac(base) - sum_T w
    (the taken counts per class only add to s_ac) and s_a <= s_a(base) + f(|T|) (cells and
    clusters only lose points); `margin_bound_from_sums` turns those into a margin bound.

    Args:
      count: float [Q], at least |T| for each candidate.
      weight: float [Q], at least the sum over T of 1 + log(cell size), e.g. of `take_weights`.
      base, classes: see `Base`, `Classes`.
      margin_type: one of BOUNDED_MARGINS.

    Returns:
      float32 [Q], at least the candidate's margin plus BOUND_SLACK.
    """
    f = margins_lib.stat_fn(margin_type)
    s_ac = tf.reduce_sum(f(base.cell_size)) - weight
    s_a = tf.reduce_sum(f(base.cluster_size)) + f(count)
    return margin_bound_from_sums(s_ac, s_a, classes, margin_type)


def margin_bound_from_sums(
    s_ac: tf.Tensor, s_a: tf.Tensor, classes: Classes, margin_type: str
) -> tf.Tensor:
    """An upper bound on the margin of every clustering whose s_ac is at least `s_ac` and whose
    s_a is at most `s_a` (sums of x log x, see `margins.score_from_sums`), for the margins in
    BOUNDED_MARGINS.

    NMI and V-measure grow with s_ac and fall with s_a along the way from a clustering's own
    sums to this corner: first s_a grows at fixed s_ac, where MI - H(y) = (s_ac - s_c) / m stays
    constant and at most 0 (so MI <= H(y) and NMI falls), then s_ac falls. So the corner's
    score is at most the clustering's. A corner whose clustering entropy is zero, or a batch of
    one class, gets the trivial bound 1.

    Args:
      s_ac, s_a: float32, any shape (one entry per candidate).
      classes: see `Classes`.
      margin_type: one of BOUNDED_MARGINS.

    Returns:
      float32 of that shape, the bound plus BOUND_SLACK.
    """
    if margin_type not in BOUNDED_MARGINS:
        raise ValueError(f"No margin bound for {margin_type!r}.")
    m = tf.cast(tf.shape(classes.labels)[0], tf.float32)
    score = margins_lib.score_from_sums(margin_type, s_ac, s_a, classes.s_c, m)
    log_m = tf.math.log(m)
    flat = (log_m - s_a / m < 1e-5) | (log_m - classes.s_c / m < 1e-5)
    return tf.where(flat, 1.0, 1.0 - score) + BOUND_SLACK
