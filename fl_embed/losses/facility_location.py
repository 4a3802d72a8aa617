"""Facility location and the loss-augmented inference of the clustering loss (paper section 3).

Public pieces, each named as in the paper:
  facility_energy      F(X, S), eq. 4
  cluster_assignment   g(S), eq. 7
  oracle_score         F~(X, y*), eq. 5
  greedy_facilities    Algorithm 1
  pam_refine           Algorithm 2
  loss_augmented_inference   Algorithm 1 then Algorithm 2: the S of (*) in eq. 6

All functions take a pairwise distance matrix `distances` [m, m] (Euclidean, not squared) and
labels with class ids in [0, m). Medoids S are a vector of point indices in slot order: slot k
is cluster k of g(S).

How the inference is vectorised. Both algorithms repeatedly score a set of candidate medoids
against a *base* clustering (greedy: the facilities chosen so far; PAM: S without slot k), where
each candidate takes over the points closer to it than to their base medoid. The facility part is
a masked reduction. Every structured margin is a function of sums of an elementwise function
over the contingency table (see `margins.py`), so a candidate's margin follows from the counts of
the points it takes over per (cluster, class) cell, per cluster and per class: three segment sums
of the take-over mask [points, candidates] by the base's cells, clusters and classes. Only groups
of two or more points get a row (`_rows`): f(0) = f(1) = 0 for every margin but "const", so a
group of one point adds nothing whether or not it is taken. Algorithm 1 updates the cell ids in
O(m) a step; Algorithm 2 keeps every point's two nearest slots across swaps, so each base is a
select. S has n >= K slots (unused ones hold m), and the per-cluster and per-class tables have at
most n rows; shapes depend on m and n only, so XLA compiles once per (batch size, n).

Ties. Scores within a relative tolerance RTOL are tied (float32 rounding decides otherwise, and
ties are common: with singleton classes two candidates often score exactly the same), and ties go
to the lowest point index. Distance ties in g(S) go to the lowest slot; a medoid always belongs
to its own slot, even when another medoid sits at the same position.
"""

from typing import NamedTuple

import tensorflow as tf

from fl_embed.losses import margins as margins_lib

RTOL = 1e-5
# Candidates scored at once in one PAM swap (Algorithm 2 line 4); clusters larger than this take
# several chunks.
_PAM_CHUNK = 8


def facility_energy(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """F(X, S) = -sum_i min_{j in S} ||f(X_i) - f(X_j)||, eq. 4.

    Args:
      distances: float Tensor [m, m], pairwise Euclidean distances.
      medoids: int Tensor [K], point indices of the facilities S (entries equal to m are unused
        slots and ignored).

    Returns:
      float scalar.
    """
    return -tf.reduce_sum(tf.reduce_min(_slot_rows(distances, medoids), axis=0))


def cluster_assignment(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """g(S)[i] = argmin_k ||f(X_i) - f(X_{S[k]})||, eq. 7.

    Distance ties go to the lowest slot; each medoid is assigned to its own slot.

    Args:
      distances: float Tensor [m, m].
      medoids: int Tensor [K], point indices (entries equal to m are unused slots).

    Returns:
      int32 Tensor [m], slot of each point in 0..K-1.
    """
    _, asg = _nearest_slot(_slot_rows(distances, medoids))
    return _force_medoid_slots(asg, medoids)


def _slot_rows(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
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
    first_of_class = tf.equal(
        tf.reduce_min(tf.where(same, index[None, :], m), axis=1), index
    )
    return -tf.reduce_sum(tf.where(first_of_class, best, 0.0)), oracle_medoid


class _Classes(NamedTuple):
    """The true classes, fixed during the inference."""

    labels: tf.Tensor  # int32 [m], class ids in [0, K)
    num_classes: tf.Tensor  # int32 scalar K
    # Row of each point's class in the per-class table (see `_rows`), and the number of rows.
    row: tf.Tensor  # int32 [m]
    num_rows: tf.Tensor  # int32 scalar
    s_c: tf.Tensor  # float32 scalar, sum over classes of f(class size)
    emi_table: tf.Tensor  # float32 [m + 1], only read by "ami"


class _Base(NamedTuple):
    """The clustering every candidate is scored against (see module docstring)."""

    mind: tf.Tensor  # float32 [m], distance to the base medoid (+inf when unassigned)
    asg: tf.Tensor  # int32 [m], base slot in [0, n), n when unassigned
    fixed: tf.Tensor  # bool [m], medoids of the base: they keep their slot
    # Rows of the point in the per-cell and per-cluster tables (see `_rows`), and the sizes of
    # the cells and clusters in those rows.
    cell: tf.Tensor  # int32 [m]
    cell_size: tf.Tensor  # float32 [rows]
    cluster: tf.Tensor  # int32 [m]
    cluster_size: tf.Tensor  # float32 [rows]


def _segment_sum(data: tf.Tensor, ids: tf.Tensor, n) -> tf.Tensor:
    """Sums of `data` rows per id in [0, n); rows with id n are dropped. [m, ...] -> [n, ...]."""
    return tf.math.unsorted_segment_sum(data, ids, n + 1)[:n]


def _rows(ids, num_ids, max_rows, drop_singletons: bool):
    """Rows of a per-group table (groups: cells, clusters or classes) for group ids in
    [0, num_ids), num_ids meaning no group. Returns (row [m], row sizes, number of rows).

    With `drop_singletons` only groups of two or more points get a row, numbered in id order,
    the rest row = number of rows (dropped by `_segment_sum`): when f(0) = f(1) = 0, a group of
    one point adds f(1 - t) = 0 to the sums whether or not a candidate takes it. There are at
    most m // 2 such groups, and at most `max_rows` (a bound on the groups, e.g. the slots).
    """
    m = tf.shape(ids)[0]
    ones = tf.ones([m])
    sizes = _segment_sum(ones, ids, num_ids)
    if not drop_singletons:
        return ids, sizes, num_ids
    num_rows = tf.minimum(max_rows, m // 2)
    kept = sizes >= 2.0
    rank = tf.where(kept, tf.cumsum(tf.cast(kept, tf.int32)) - 1, num_rows)
    row = tf.gather(tf.concat([rank, [num_rows]], axis=0), ids)
    return row, _segment_sum(ones, row, num_rows), num_rows


def _make_base(mind, asg, fixed, cell_id, num_slots, margin_type) -> _Base:
    """`cell_id`: the point's cell as an id in [0, m), m if unassigned."""
    m = tf.shape(asg)[0]
    drop = margins_lib.singletons_add_nothing(margin_type)
    cell, cell_size, _ = _rows(cell_id, m, m, drop)
    # AMI's expected-MI term E(cluster size) is not zero at size 1: keep every cluster.
    cluster, cluster_size, _ = _rows(
        asg, num_slots, num_slots, drop and margin_type != "ami"
    )
    return _Base(mind, asg, fixed, cell, cell_size, cluster, cluster_size)


def _table_lookup(table: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    return tf.gather(table, tf.cast(tf.math.round(counts), tf.int32))


def _taken(columns, candidates, new_slot, base: _Base) -> tf.Tensor:
    """float [m, Q]: 1 where candidate q (column) would take point p (row) from the base.

    Args:
      columns: float [m, Q], distance from each candidate to every point, D[q, p] at [p, q].
      candidates: int32 [Q], the candidates' point indices.
      new_slot: int32 scalar, the slot the candidate fills (ties with base slots below it go to
        them).
      base: see `_Base`.
    """
    m = tf.shape(columns)[0]
    mind = base.mind[:, None]
    closer = columns < mind
    tie_wins = tf.equal(columns, mind) & (new_slot < base.asg)[:, None]
    itself = tf.equal(tf.range(m)[:, None], candidates[None, :])
    return tf.cast(((closer | tie_wins) & ~base.fixed[:, None]) | itself, tf.float32)


def _candidate_margins(
    taken: tf.Tensor, base: _Base, classes: _Classes, margin_type: str
) -> tf.Tensor:
    """Delta(g(base + candidate), y*) for every candidate at once.

    The candidate's clustering is the base with the taken points moved to a new cluster, so its
    contingency table is the base table less the taken counts per cell and per cluster, plus a
    new row of the taken counts per class. Those counts are three segment sums of `taken`.

    Args:
      taken: float [m, Q], from `_taken`.
      base, classes: see `_Base`, `_Classes`.

    Returns:
      float32 [Q].
    """
    f = margins_lib.stat_fn(margin_type)
    m = tf.shape(taken)[0]
    taken_per_cell = _segment_sum(taken, base.cell, tf.shape(base.cell_size)[0])
    taken_per_cluster = _segment_sum(
        taken, base.cluster, tf.shape(base.cluster_size)[0]
    )
    taken_per_class = _segment_sum(taken, classes.row, classes.num_rows)
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


def _nearest_slot(slot_distances: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Min over slots (rows) and the lowest slot attaining it. [K, m] -> ([m], int32 [m])."""
    num_slots = tf.shape(slot_distances)[0]
    mind = tf.reduce_min(slot_distances, axis=0)
    slot = tf.range(num_slots)[:, None]
    asg = tf.reduce_min(
        tf.where(tf.equal(slot_distances, mind[None, :]), slot, num_slots), axis=0
    )
    return mind, asg


def _force_medoid_slots(asg: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """Each medoid into its own slot; unused slots (index m) write to a scratch entry."""
    slots = tf.range(tf.shape(medoids)[0], dtype=asg.dtype)
    extended = tf.concat([asg, tf.zeros([1], asg.dtype)], axis=0)
    return tf.tensor_scatter_nd_update(extended, medoids[:, None], slots)[:-1]


def _lowest_member(same: tf.Tensor) -> tf.Tensor:
    """bool [m]: i is the lowest index j with same[i, j] (and same[i, i] holds)."""
    m = tf.shape(same)[0]
    index = tf.range(m)
    return tf.equal(tf.reduce_min(tf.where(same, index[None, :], m), axis=1), index)


def _make_classes(
    labels: tf.Tensor, emi_table: tf.Tensor, margin_type: str, num_slots
) -> _Classes:
    """`num_slots`: n >= K (checked when not XLA-compiled: XLA drops run-time asserts)."""
    m = tf.shape(labels)[0]
    class_size = _segment_sum(tf.ones([m]), labels, m)
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
    # Ids made contiguous, 0..K-1 (order kept).
    labels = tf.gather(tf.cumsum(tf.cast(present, tf.int32)) - 1, labels)
    row, _, num_rows = _rows(
        labels, num_slots, num_slots, margins_lib.singletons_add_nothing(margin_type)
    )
    return _Classes(labels, num_classes, row, num_rows, s_c, emi_table)


def _argmax_lowest_index(scores: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Index of the best valid score; scores within RTOL of the best are tied, lowest index wins."""
    scores = tf.where(valid, scores, -float("inf"))
    best = tf.reduce_max(scores)
    tol = RTOL * (tf.abs(best) + 1.0)
    winners = valid & (scores >= best - tol)
    return tf.reduce_min(
        tf.where(winners, tf.range(tf.shape(scores)[0]), tf.shape(scores)[0])
    )


def greedy_facilities(
    distances,
    labels,
    margin_multiplier,
    margin_type="nmi",
    emi_table=None,
    num_slots=None,
):
    """Algorithm 1: greedily add i* = argmax_i A(S u {i}) until |S| = |Y|.

    A(S) = F(X, S) + gamma Delta(g(S), y*). Every candidate is scored at each step.

    Args:
      distances: float32 [m, m].
      labels: int32 [m], class ids in [0, m).
      margin_multiplier: float scalar gamma.
      margin_type: one of margins.MARGIN_TYPES.
      emi_table: for "ami", `margins.expected_mi_table` of the classes; computed when None.
      num_slots: n, the length of S as returned, at least the number of classes K (default m).
        The per-cluster and per-class tables have n rows, so a smaller n is faster; it must be
        known when XLA compiles (a Python int, or computed from static shapes).

    Returns:
      int32 [n]: the K medoids in slot order, then m (unused slots).
    """
    num_slots = tf.shape(distances)[0] if num_slots is None else num_slots
    classes = _make_classes(
        labels, _emi_table(labels, emi_table, margin_type), margin_type, num_slots
    )
    return _greedy(distances, classes, margin_multiplier, margin_type, num_slots)


def _emi_table(labels, emi_table, margin_type):
    m = tf.shape(labels)[0]
    if margin_type != "ami":
        return tf.zeros([m + 1])
    if emi_table is None:
        same = tf.equal(labels[:, None], labels[None, :])
        sizes = tf.where(
            _lowest_member(same), tf.reduce_sum(tf.cast(same, tf.float32), axis=1), 0.0
        )
        emi_table = margins_lib.expected_mi_table(sizes, tf.cast(m, tf.float32))
    return emi_table


def _greedy(distances, classes: _Classes, gamma, margin_type, num_slots):
    m = tf.shape(distances)[0]
    n = num_slots
    index = tf.range(m)
    labels = classes.labels
    # Column q holds D[q, :]: candidates along the last axis, so segment sums run over points.
    columns = tf.transpose(distances)

    def body(t, medoids, mind, asg, fixed, cell):
        base = _make_base(mind, asg, fixed, cell, n, margin_type)
        energy = -tf.reduce_sum(tf.minimum(columns, mind[:, None]), axis=0)
        margin = _candidate_margins(
            _taken(columns, index, t, base), base, classes, margin_type
        )
        best = _argmax_lowest_index(energy + gamma * margin, ~fixed)
        row = tf.gather(distances, best)
        takes = ((row < mind) & ~fixed) | tf.equal(index, best)
        asg = tf.where(takes, t, asg)
        # New cell ids, O(m): the taken points form one new cell per class (key m + class); the
        # others keep their cell (key = old id). Each cell's id is its lowest-index member.
        key = tf.where(takes, m + labels, tf.where(cell < m, cell, 2 * m))
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
        body,
        (
            tf.constant(0),
            tf.fill([n], m),
            tf.fill([m], float("inf")),
            tf.fill([m], n),
            tf.zeros([m], tf.bool),
            tf.fill([m], m),
        ),
    )
    return medoids


def pam_refine(
    distances,
    labels,
    medoids,
    margin_multiplier,
    margin_type="nmi",
    iterations=5,
    emi_table=None,
):
    """Algorithm 2: T sweeps of loss-augmented medoid swaps starting from `medoids`.

    At the start of each sweep the assignment y_PAM = g(S) is frozen; then for each cluster k in
    turn, S[k] becomes the member j of cluster k maximising
        F(X_{cluster k}, {j}) + gamma Delta(g(S with S[k] = j), y*),
    where S already holds the swaps made for clusters before k. The current medoid is a candidate.

    Args:
      distances: float32 [m, m].
      labels: int32 [m], class ids in [0, m).
      medoids: int32 [n], initial S (Algorithm 1's output): K medoids, then m in n - K unused
        slots.
      margin_multiplier: float scalar gamma.
      margin_type: one of margins.MARGIN_TYPES.
      iterations: T, the number of sweeps.
      emi_table: as in `greedy_facilities`.

    Returns:
      int32 [n], refined medoids in slot order, then m.
    """
    classes = _make_classes(
        labels,
        _emi_table(labels, emi_table, margin_type),
        margin_type,
        tf.shape(medoids)[0],
    )
    return _pam(distances, classes, medoids, margin_multiplier, margin_type, iterations)


class _TwoNearest(NamedTuple):
    """The nearest and second-nearest slot of every point under the current S.

    Order is by (distance, slot), so `slot1` is the lowest slot at the minimum distance, as in
    g(S) before medoids are forced into their own slot; slots are n (the number of slots) and
    distances +inf where there is no such slot.
    """

    dist1: tf.Tensor  # float32 [P]
    slot1: tf.Tensor  # int32 [P]
    dist2: tf.Tensor
    slot2: tf.Tensor


def _two_nearest(slot_distances: tf.Tensor) -> _TwoNearest:
    """[slots, P] distances -> `_TwoNearest` of the P points."""
    num_slots = tf.shape(slot_distances)[0]
    d1, s1 = _nearest_slot(slot_distances)
    rest = tf.where(
        tf.equal(tf.range(num_slots)[:, None], s1[None, :]),
        float("inf"),
        slot_distances,
    )
    d2, s2 = _nearest_slot(rest)
    return _TwoNearest(
        d1,
        tf.where(tf.math.is_inf(d1), num_slots, s1),
        d2,
        tf.where(tf.math.is_inf(d2), num_slots, s2),
    )


def _pam(distances, classes: _Classes, medoids, gamma, margin_type, iterations):
    m = tf.shape(distances)[0]
    n = tf.shape(medoids)[0]
    chunk = tf.minimum(m, _PAM_CHUNK)
    index = tf.range(m)
    slots = tf.range(n)
    labels = classes.labels
    columns = tf.transpose(distances)  # column q holds D[q, :]
    # Row m is the "distance" of an unused slot: +inf to every point.
    padded = tf.concat([distances, tf.fill([1, m], float("inf"))], axis=0)

    def base_without(k, medoids, near: _TwoNearest, cell_table):
        """The clustering by S without slot k: points of cluster k go to their second slot."""
        in_k = tf.equal(near.slot1, k)
        mind = tf.where(in_k, near.dist2, near.dist1)
        asg = tf.where(in_k, near.slot2, near.slot1)
        # The other medoids keep their own slot (unused slots write to a scratch entry).
        slot_of = tf.tensor_scatter_nd_update(
            tf.fill([m + 1], n), medoids[:, None], slots
        )[:m]
        fixed = (slot_of < n) & tf.not_equal(slot_of, k)
        asg = tf.where(fixed, slot_of, asg)
        # Cell ids: each point writes its index at its (slot, class) key and reads back the
        # winner, one member per cell. The table is carried across calls and never cleared:
        # only keys written just now are read. O(m) instead of an O(m^2) fill.
        key = asg * n + labels
        cell_table = tf.tensor_scatter_nd_update(cell_table, key[:, None], index)
        cell = tf.where(asg < n, tf.gather(cell_table, key), m)
        return _make_base(mind, asg, fixed, cell, n, margin_type), cell_table

    def move_slot(k, new, medoids, near: _TwoNearest) -> _TwoNearest:
        """`near` for `medoids`, where S[k] has just become `new`: (D[new], k) enters every
        point's pair; points that had k among their two nearest are recomputed from scratch, a
        chunk at a time."""
        row = tf.gather(distances, new)
        first = (row < near.dist1) | (tf.equal(row, near.dist1) & (k < near.slot1))
        second = (row < near.dist2) | (tf.equal(row, near.dist2) & (k < near.slot2))
        d1 = tf.where(first, row, near.dist1)
        s1 = tf.where(first, k, near.slot1)
        d2 = tf.where(first, near.dist1, tf.where(second, row, near.dist2))
        s2 = tf.where(first, near.slot1, tf.where(second, k, near.slot2))
        stale = tf.equal(near.slot1, k) | tf.equal(near.slot2, k)
        order = tf.argsort(tf.cast(~stale, tf.int32), stable=True)  # stale points first
        num_stale = tf.reduce_sum(tf.cast(stale, tf.int32))

        def fix_chunk(q, d1, s1, d2, s2):
            pos = q * chunk + tf.range(chunk)
            points = tf.gather(order, tf.minimum(pos, m - 1))
            fresh = _two_nearest(tf.gather(tf.gather(padded, points, axis=1), medoids))
            target = tf.where(pos < num_stale, points, m)[:, None]

            def put(old, new_values):
                extended = tf.concat([old, old[:1]], axis=0)
                return tf.tensor_scatter_nd_update(extended, target, new_values)[:-1]

            return (
                q + 1,
                put(d1, fresh.dist1),
                put(s1, fresh.slot1),
                put(d2, fresh.dist2),
                put(s2, fresh.slot2),
            )

        _, d1, s1, d2, s2 = tf.while_loop(
            lambda q, *_: q * chunk < num_stale,
            fix_chunk,
            (tf.constant(0), d1, s1, d2, s2),
        )
        return _TwoNearest(d1, s1, d2, s2)

    def sweep(t, medoids, near, cell_table, changed):
        del changed
        frozen = _force_medoid_slots(near.slot1, medoids)  # g(S), eq. 7
        same = tf.equal(frozen[:, None], frozen[None, :])
        # F(X_{cluster of j}, {j}) for every j, under the frozen assignment.
        cluster_energy = -tf.reduce_sum(tf.where(same, distances, 0.0), axis=1)
        member_order = tf.argsort(frozen, stable=True)
        sizes = tf.math.unsorted_segment_sum(tf.ones([m], tf.int32), frozen, n)
        starts = tf.cumsum(sizes, exclusive=True)

        def swap_slot(k, medoids, near, cell_table):
            base, cell_table = base_without(k, medoids, near, cell_table)

            def score_chunk(q, scores):
                pos = starts[k] + q * chunk + tf.range(chunk)
                ok = pos < starts[k] + sizes[k]
                cand = tf.where(ok, tf.gather(member_order, tf.minimum(pos, m - 1)), m)
                safe = tf.minimum(cand, m - 1)
                taken = _taken(tf.gather(columns, safe, axis=1), safe, k, base)
                margin = _candidate_margins(taken, base, classes, margin_type)
                value = tf.gather(cluster_energy, safe) + gamma * margin
                return q + 1, tf.tensor_scatter_nd_update(scores, cand[:, None], value)

            num_chunks = (sizes[k] + chunk - 1) // chunk
            _, scores = tf.while_loop(
                lambda q, _: q < num_chunks,
                score_chunk,
                (tf.constant(0), tf.fill([m + 1], -float("inf"))),
            )
            best = _argmax_lowest_index(scores[:m], tf.equal(frozen, k))
            swapped = tf.tensor_scatter_nd_update(medoids, [[k]], [best])
            near = tf.cond(
                tf.equal(best, medoids[k]),
                lambda: near,
                lambda: move_slot(k, best, swapped, near),
            )
            return swapped, near, cell_table

        def visit_slot(k, medoids, near, cell_table):
            # A cluster of one member has its medoid as the only candidate: nothing to score.
            medoids, near, cell_table = tf.cond(
                sizes[k] > 1,
                lambda: swap_slot(k, medoids, near, cell_table),
                lambda: (medoids, near, cell_table),
            )
            return k + 1, medoids, near, cell_table

        _, swapped, near, cell_table = tf.while_loop(
            lambda k, *_: k < classes.num_classes,
            visit_slot,
            (tf.constant(0), medoids, near, cell_table),
        )
        return (
            t + 1,
            swapped,
            near,
            cell_table,
            tf.reduce_any(tf.not_equal(swapped, medoids)),
        )

    # A sweep is a function of S alone, so once a sweep changes nothing every later sweep would
    # change nothing either: stopping there returns exactly what T sweeps return.
    _, medoids, _, _, _ = tf.while_loop(
        lambda t, *args: (t < iterations) & args[-1],
        sweep,
        (
            tf.constant(0),
            medoids,
            _two_nearest(tf.gather(padded, medoids)),
            tf.zeros([n * (n + 1)], tf.int32),
            tf.constant(True),
        ),
    )
    return medoids


def inference(
    distances,
    labels,
    gamma,
    margin_type,
    enable_pam,
    iterations,
    emi_table=None,
    num_slots=None,
):
    """Algorithm 1, then Algorithm 2 when `enable_pam`: the medoids of (*) in eq. 6.

    Every shape depends on m and n only, so XLA compiles once per (batch size, n).

    Args:
      distances: float32 [m, m].
      labels: int32 [m], class ids in [0, m).
      gamma: float32 scalar margin multiplier.
      margin_type: one of margins.MARGIN_TYPES.
      enable_pam: python bool.
      iterations: python int, T.
      emi_table: as in `greedy_facilities`.
      num_slots: n >= K, as in `greedy_facilities` (default m).

    Returns:
      int32 [n]: the K medoids in slot order, then m (unused slots).
    """
    num_slots = tf.shape(distances)[0] if num_slots is None else num_slots
    classes = _make_classes(
        labels, _emi_table(labels, emi_table, margin_type), margin_type, num_slots
    )
    medoids = _greedy(distances, classes, gamma, margin_type, num_slots)
    if enable_pam and iterations > 0:
        medoids = _pam(distances, classes, medoids, gamma, margin_type, iterations)
    return medoids
