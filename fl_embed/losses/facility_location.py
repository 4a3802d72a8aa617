"""Facility location and the loss-augmented inference of the clustering loss (paper section 3).

Public pieces, each named as in the paper:
  facility_energy      F(X, S), eq. 4
  cluster_assignment   g(S), eq. 7
  oracle_score         F~(X, y*), eq. 5
  greedy_facilities    Algorithm 1
  pam_refine           Algorithm 2
  loss_augmented_inference   Algorithm 1 then Algorithm 2: the S of (*) in eq. 6

All functions take a pairwise distance matrix `distances` [m, m] (Euclidean, not squared) and
dense labels in 0..C-1. Medoids S are a vector of point indices in slot order: slot k is cluster
k of g(S).

How the inference is vectorised. Both algorithms repeatedly score a set of candidate medoids
against a *base* clustering (greedy: the facilities chosen so far; PAM: S without slot k), where
each candidate takes over the points closer to it than to their base medoid. The facility part is
a masked row reduction. Every structured margin is a function of sums of an elementwise function
over the contingency table (see `margins.py`), so a candidate's margin follows from the counts of
the points it takes over per (cluster, class) cell, per cluster and per class. Cell counts come
from one batched matmul over class blocks ([Q, C, n] x [C, n, n], n = size of the largest class),
cluster counts from one matmul with the one-hot base assignment. Shapes depend only on m, C and n,
so XLA compiles once per batch shape.

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
_PAM_CHUNK = 16


def facility_energy(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """F(X, S) = -sum_i min_{j in S} ||f(X_i) - f(X_j)||, eq. 4.

    Args:
      distances: float Tensor [m, m], pairwise Euclidean distances.
      medoids: int Tensor [K], point indices of the facilities S.

    Returns:
      float scalar.
    """
    return -tf.reduce_sum(tf.reduce_min(tf.gather(distances, medoids), axis=0))


def cluster_assignment(distances: tf.Tensor, medoids: tf.Tensor) -> tf.Tensor:
    """g(S)[i] = argmin_k ||f(X_i) - f(X_{S[k]})||, eq. 7.

    Distance ties go to the lowest slot; each medoid is assigned to its own slot.

    Args:
      distances: float Tensor [m, m].
      medoids: int Tensor [K], point indices.

    Returns:
      int32 Tensor [m], slot of each point in 0..K-1.
    """
    _, asg = _nearest_slot(tf.gather(distances, medoids))
    return _force_medoid_slots(asg, medoids)


def oracle_score(
    distances: tf.Tensor, labels: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """F~(X, y*) = sum_k max_{j in class k} F(X_{class k}, {j}), eq. 5.

    Args:
      distances: float Tensor [m, m].
      labels: int Tensor [m], dense class ids in 0..C-1.

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


class _Layout(NamedTuple):
    """Points grouped by true class: blocks[c, n] is the n-th point of class c, or m (padding)."""

    labels: tf.Tensor  # int32 [m]
    blocks: tf.Tensor  # int32 [C, n]
    valid: tf.Tensor  # bool [C, n]
    class_counts: tf.Tensor  # float32 [C]
    s_c: tf.Tensor  # float32 scalar, sum_c f(n_c)
    emi_table: tf.Tensor  # float32 [m + 1], only used by "ami"


class _Base(NamedTuple):
    """The clustering every candidate is scored against (see module docstring)."""

    mind: tf.Tensor  # float32 [m], distance to the base medoid (+inf when unassigned)
    asg: tf.Tensor  # int32 [m], base slot, K when unassigned
    fixed: tf.Tensor  # bool [m], medoids of the base: they keep their slot
    cell_rep: (
        tf.Tensor
    )  # float32 [C, n, n], point (c, n) is counted in cell representative (c, l)
    cell_counts: (
        tf.Tensor
    )  # float32 [C, n], size of the cell at each representative, else 0
    cluster_onehot: tf.Tensor  # float32 [m, K]
    cluster_counts: tf.Tensor  # float32 [K]
    s_ac: tf.Tensor
    s_a: tf.Tensor
    s_e: tf.Tensor


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
    return tf.tensor_scatter_nd_update(
        asg, medoids[:, None], tf.range(tf.shape(medoids)[0], dtype=asg.dtype)
    )


def _make_layout(
    labels: tf.Tensor,
    num_classes: tf.Tensor,
    max_class_size: tf.Tensor,
    margin_type: str,
) -> _Layout:
    m = tf.shape(labels)[0]
    order = tf.argsort(labels, stable=True)
    sorted_labels = tf.gather(labels, order)
    counts = tf.math.bincount(labels, minlength=num_classes, maxlength=num_classes)
    starts = tf.cumsum(counts, exclusive=True)
    rank = tf.range(m) - tf.gather(starts, sorted_labels)
    blocks = tf.scatter_nd(
        tf.stack([sorted_labels, rank], axis=1),
        order + 1,
        tf.stack([num_classes, max_class_size]),
    )
    valid = blocks > 0
    blocks = tf.where(valid, blocks - 1, m)
    class_counts = tf.cast(counts, tf.float32)
    emi_table = tf.zeros([m + 1])
    if margin_type == "ami":
        emi_table = margins_lib.expected_mi_table(class_counts, tf.cast(m, tf.float32))
    s_c = tf.reduce_sum(margins_lib.stat_fn(margin_type)(class_counts))
    return _Layout(labels, blocks, valid, class_counts, s_c, emi_table)


def _make_base(mind, asg, fixed, num_slots, layout: _Layout, margin_type: str) -> _Base:
    """`num_slots` must come from a tensor's shape (a compile-time constant inside XLA loops)."""
    f = margins_lib.stat_fn(margin_type)
    assigned = asg < num_slots
    asg_pad = tf.concat([tf.where(assigned, asg, -1), [-1]], axis=0)
    block_asg = tf.gather(asg_pad, layout.blocks)
    block_ok = layout.valid & (block_asg >= 0)
    n = tf.shape(layout.blocks)[1]
    pos = tf.range(n)
    match = (
        tf.equal(block_asg[:, :, None], block_asg[:, None, :]) & block_ok[:, None, :]
    )
    first = tf.reduce_min(tf.where(match, pos[None, None, :], n), axis=2)
    cell_rep = tf.cast(
        block_ok[:, :, None] & tf.equal(first[:, :, None], pos[None, None, :]),
        tf.float32,
    )
    cell_counts = tf.reduce_sum(cell_rep, axis=1)
    cluster_onehot = tf.one_hot(
        asg, num_slots, dtype=tf.float32
    )  # unassigned (K) -> zero row
    cluster_counts = tf.reduce_sum(cluster_onehot, axis=0)
    s_e = tf.constant(0.0)
    if margin_type == "ami":
        s_e = tf.reduce_sum(_table_lookup(layout.emi_table, cluster_counts))
    return _Base(
        mind,
        asg,
        fixed,
        cell_rep,
        cell_counts,
        cluster_onehot,
        cluster_counts,
        tf.reduce_sum(f(cell_counts)),
        tf.reduce_sum(f(cluster_counts)),
        s_e,
    )


def _table_lookup(table: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    return tf.gather(table, tf.cast(tf.math.round(counts), tf.int32))


def _candidate_margins(
    candidate_rows: tf.Tensor,
    candidates: tf.Tensor,
    new_slot,
    base: _Base,
    layout: _Layout,
    margin_type: str,
) -> tf.Tensor:
    """Delta(g(base + candidate in `new_slot`), y*) for every candidate at once.

    Args:
      candidate_rows: float [Q, m], distances from each candidate to every point.
      candidates: int32 [Q], the candidates' point indices.
      new_slot: int32 scalar, the slot the candidate fills (ties with base slots below it go to them).
      base, layout: see `_Base`, `_Layout`.

    Returns:
      float32 [Q].
    """
    f = margins_lib.stat_fn(margin_type)
    m = tf.shape(candidate_rows)[1]
    closer = candidate_rows < base.mind[None, :]
    tie_wins = (
        tf.equal(candidate_rows, base.mind[None, :]) & (new_slot < base.asg)[None, :]
    )
    itself = tf.equal(tf.range(m)[None, :], candidates[:, None])
    taken = ((closer | tie_wins) & ~base.fixed[None, :]) | itself
    taken = tf.cast(taken, tf.float32)

    taken_blocks = tf.gather(
        tf.pad(taken, [[0, 0], [0, 1]]), layout.blocks, axis=1
    )  # [Q, C, n]
    taken_per_class = tf.reduce_sum(taken_blocks, axis=2)
    taken_per_cell = tf.einsum("qcn,cnl->qcl", taken_blocks, base.cell_rep)
    taken_per_cluster = tf.matmul(taken, base.cluster_onehot)
    taken_total = tf.reduce_sum(taken, axis=1)

    cell_counts = base.cell_counts[None]
    s_ac = (
        base.s_ac
        + tf.reduce_sum(f(cell_counts - taken_per_cell) - f(cell_counts), axis=[1, 2])
        + tf.reduce_sum(f(taken_per_class), axis=1)
    )
    cluster_counts = base.cluster_counts[None]
    left = cluster_counts - taken_per_cluster
    s_a = base.s_a + tf.reduce_sum(f(left) - f(cluster_counts), axis=1) + f(taken_total)
    s_e = None
    if margin_type == "ami":
        table = layout.emi_table
        s_e = (
            base.s_e
            + tf.reduce_sum(
                _table_lookup(table, left) - _table_lookup(table, cluster_counts),
                axis=1,
            )
            + _table_lookup(table, taken_total)
        )
    score = margins_lib.score_from_sums(
        margin_type, s_ac, s_a, layout.s_c, tf.cast(m, tf.float32), s_e
    )
    return 1.0 - score


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
    distances, labels, margin_multiplier, num_classes, max_class_size, margin_type="nmi"
):
    """Algorithm 1: greedily add i* = argmax_i A(S u {i}) until |S| = |Y|.

    A(S) = F(X, S) + gamma Delta(g(S), y*). Every candidate is scored at each step.

    Args:
      distances: float32 [m, m].
      labels: int32 [m], dense class ids 0..C-1.
      margin_multiplier: float scalar gamma.
      num_classes: int32 scalar C (the number of facilities).
      max_class_size: int32 scalar, size of the largest class.
      margin_type: one of margins.MARGIN_TYPES.

    Returns:
      int32 [C], medoid point indices in slot order.
    """
    layout = _make_layout(labels, num_classes, max_class_size, margin_type)
    return _greedy(distances, layout, num_classes, margin_multiplier, margin_type)


def _greedy(distances, layout: _Layout, num_classes, gamma, margin_type):
    m = tf.shape(distances)[0]
    index = tf.range(m)

    def body(t, medoids, mind, asg, fixed):
        base = _make_base(mind, asg, fixed, tf.shape(medoids)[0], layout, margin_type)
        energy = -tf.reduce_sum(tf.minimum(distances, mind[None, :]), axis=1)
        margin = _candidate_margins(distances, index, t, base, layout, margin_type)
        best = _argmax_lowest_index(energy + gamma * margin, ~fixed)
        row = distances[best]
        takes = ((row < mind) & ~fixed) | tf.equal(index, best)
        return (
            t + 1,
            tf.tensor_scatter_nd_update(medoids, [[t]], [best]),
            tf.where(takes, row, mind),
            tf.where(takes, t, asg),
            fixed | tf.equal(index, best),
        )

    _, medoids, _, _, _ = tf.while_loop(
        lambda t, medoids, *_: t < tf.shape(medoids)[0],
        body,
        (
            tf.constant(0),
            tf.zeros([num_classes], tf.int32),
            tf.fill([m], float("inf")),
            tf.fill([m], num_classes),
            tf.zeros([m], tf.bool),
        ),
    )
    return medoids


def pam_refine(
    distances,
    labels,
    medoids,
    margin_multiplier,
    num_classes,
    max_class_size,
    margin_type="nmi",
    iterations=5,
):
    """Algorithm 2: T sweeps of loss-augmented medoid swaps starting from `medoids`.

    At the start of each sweep the assignment y_PAM = g(S) is frozen; then for each cluster k in
    turn, S[k] becomes the member j of cluster k maximising
        F(X_{cluster k}, {j}) + gamma Delta(g(S with S[k] = j), y*),
    where S already holds the swaps made for clusters before k. The current medoid is a candidate.

    Args:
      distances: float32 [m, m].
      labels: int32 [m], dense class ids 0..C-1.
      medoids: int32 [C], initial S (Algorithm 1's output).
      margin_multiplier: float scalar gamma.
      num_classes, max_class_size: int32 scalars, as in `greedy_facilities`.
      margin_type: one of margins.MARGIN_TYPES.
      iterations: T, the number of sweeps (python int).

    Returns:
      int32 [C], refined medoids in slot order.
    """
    layout = _make_layout(labels, num_classes, max_class_size, margin_type)
    return _pam(distances, layout, medoids, margin_multiplier, margin_type, iterations)


def _pam(distances, layout: _Layout, medoids, gamma, margin_type, iterations):
    m = tf.shape(distances)[0]
    chunk = tf.minimum(m, _PAM_CHUNK)
    index = tf.range(m)

    def swap_slot(k, medoids, frozen, member_order, starts, sizes, cluster_energy):
        slots = tf.range(tf.shape(medoids)[0])
        slot_rows = tf.gather(distances, medoids)
        others = tf.where(tf.equal(slots, k)[:, None], float("inf"), slot_rows)
        mind, asg = _nearest_slot(others)
        num_slots = tf.shape(medoids)[0]
        asg = tf.where(
            tf.math.is_inf(mind), num_slots, asg
        )  # only slot k exists: nothing assigned
        other_medoids = tf.where(tf.equal(slots, k), -1, medoids)
        is_other_medoid = tf.equal(index[:, None], other_medoids[None, :])  # [m, K]
        fixed = tf.reduce_any(is_other_medoid, axis=1)
        asg = tf.where(
            fixed,
            tf.reduce_sum(tf.where(is_other_medoid, slots[None, :], 0), axis=1),
            asg,
        )
        base = _make_base(mind, asg, fixed, num_slots, layout, margin_type)

        def score_chunk(q, scores):
            pos = starts[k] + q * chunk + tf.range(chunk)
            ok = pos < starts[k] + sizes[k]
            cand = tf.where(ok, tf.gather(member_order, tf.minimum(pos, m - 1)), m)
            safe = tf.minimum(cand, m - 1)
            margin = _candidate_margins(
                tf.gather(distances, safe), safe, k, base, layout, margin_type
            )
            value = tf.gather(cluster_energy, safe) + gamma * margin
            return q + 1, tf.tensor_scatter_nd_update(scores, cand[:, None], value)

        num_chunks = (sizes[k] + chunk - 1) // chunk
        _, scores = tf.while_loop(
            lambda q, _: q < num_chunks,
            score_chunk,
            (tf.constant(0), tf.fill([m + 1], -float("inf"))),
        )
        scores = scores[:m]
        best = _argmax_lowest_index(scores, tf.equal(frozen, k))
        return k + 1, tf.tensor_scatter_nd_update(medoids, [[k]], [best])

    def sweep(_, medoids):
        frozen = cluster_assignment(distances, medoids)
        same = tf.equal(frozen[:, None], frozen[None, :])
        # F(X_{cluster of j}, {j}) for every j, under the frozen assignment.
        cluster_energy = -tf.reduce_sum(tf.where(same, distances, 0.0), axis=1)
        member_order = tf.argsort(frozen, stable=True)
        sizes = tf.cast(
            tf.reduce_sum(tf.one_hot(frozen, tf.shape(medoids)[0]), axis=0), tf.int32
        )
        starts = tf.cumsum(sizes, exclusive=True)
        _, medoids = tf.while_loop(
            lambda k, s: k < tf.shape(s)[0],
            lambda k, s: swap_slot(
                k, s, frozen, member_order, starts, sizes, cluster_energy
            ),
            (tf.constant(0), medoids),
        )
        return _ + 1, medoids

    _, medoids = tf.while_loop(
        lambda t, _: t < iterations, sweep, (tf.constant(0), medoids)
    )
    return medoids


def inference(
    distances,
    labels,
    gamma,
    num_classes,
    max_class_size,
    margin_type,
    enable_pam,
    iterations,
):
    """Algorithm 1, then Algorithm 2 when `enable_pam`: the medoids of (*) in eq. 6.

    Args:
      distances: float32 [m, m].
      labels: int32 [m], dense class ids 0..C-1.
      gamma: float32 scalar margin multiplier.
      num_classes, max_class_size: int32 scalars; compile-time constants under XLA.
      margin_type: one of margins.MARGIN_TYPES.
      enable_pam: python bool.
      iterations: python int, T.

    Returns:
      int32 [C], medoids in slot order.
    """
    layout = _make_layout(labels, num_classes, max_class_size, margin_type)
    medoids = _greedy(distances, layout, num_classes, gamma, margin_type)
    if enable_pam and iterations > 0:
        medoids = _pam(distances, layout, medoids, gamma, margin_type, iterations)
    return medoids
