"""Algorithm 2 of the paper: PAM refinement of the loss-augmented medoids.

Each swap of Algorithm 2 scores the members of one cluster k against the clustering by "S
without slot k" (`candidates.py`). To make that base a select instead of an O(m^2) rebuild, every
point's nearest and second-nearest slot are kept across swaps (`TwoNearest`); after a swap only
the points that had slot k among their two nearest are recomputed.
"""

from typing import NamedTuple

import tensorflow as tf

from fl_embed.losses import candidates as cand
from fl_embed.losses import margins as margins_lib
from fl_embed.losses.facility_location import force_medoid_slots, nearest_slot

# Candidates scored at once in one swap (Algorithm 2 line 4), and stale points refreshed at once
# after it; clusters hold ~4 points at C/m = 0.25, larger ones take several chunks.
_CHUNK = 8


class TwoNearest(NamedTuple):
    """The nearest and second-nearest slot of every point under the current S.

    Order is by (distance, slot), so `slot1` is the lowest slot at the minimum distance, as in
    g(S) before medoids are forced into their own slot; slots are n (the number of slots) and
    distances +inf where there is no such slot.
    """

    dist1: tf.Tensor  # float32 [P]
    slot1: tf.Tensor  # int32 [P]
    dist2: tf.Tensor
    slot2: tf.Tensor


def two_nearest(slot_distances: tf.Tensor) -> TwoNearest:
    """[slots, P] distances -> `TwoNearest` of the P points."""
    num_slots = tf.shape(slot_distances)[0]
    d1, s1 = nearest_slot(slot_distances)
    rest = tf.where(
        tf.equal(tf.range(num_slots)[:, None], s1[None, :]),
        float("inf"),
        slot_distances,
    )
    d2, s2 = nearest_slot(rest)
    return TwoNearest(
        d1,
        tf.where(tf.math.is_inf(d1), num_slots, s1),
        d2,
        tf.where(tf.math.is_inf(d2), num_slots, s2),
    )


class Problem(NamedTuple):
    """What stays fixed during the refinement (`refinement_problem`)."""

    distances: tf.Tensor  # float32 [m, m]
    columns: tf.Tensor  # float32 [m, m], column q holds D[q, :]
    padded: tf.Tensor  # float32 [m + 1, m], row m: an unused slot, +inf to every point
    classes: cand.Classes
    weights: tf.Tensor  # float32 [m], `candidates.take_weights`
    gamma: tf.Tensor
    margin_type: str


def refinement_problem(
    distances, classes: cand.Classes, margin_multiplier, margin_type
):
    """The `Problem` of `pam_refine` for these distances and classes."""
    m = tf.shape(distances)[0]
    return Problem(
        distances,
        tf.transpose(distances),
        tf.concat([distances, tf.fill([1, m], float("inf"))], axis=0),
        classes,
        cand.take_weights(classes),
        margin_multiplier,
        margin_type,
    )


def cell_ids(asg, labels, num_slots, cell_table):
    """Cell ids of the clustering `asg` (slots in [0, n]; n: unassigned): one member's index
    per (slot, class) cell, read from a [n (n + 1)] table, and the updated table.

    Each point writes its index at its key and reads back the winner. The table is carried
    across calls and never cleared (only keys written just now are read): O(m) instead of an
    O(m^2) fill. Unassigned points get an id too; callers mask them.
    """
    key = asg * num_slots + labels
    cell_table = tf.tensor_scatter_nd_update(
        cell_table, key[:, None], tf.range(tf.shape(labels)[0])
    )
    return tf.gather(cell_table, key), cell_table


def base_without(k, medoids, near: TwoNearest, cell_table, problem: Problem):
    """The clustering by S without slot k: points of cluster k go to their second slot.

    Returns (`candidates.Base`, the updated cell table of `cell_ids`).
    """
    labels = problem.classes.labels
    m = tf.shape(labels)[0]
    n = tf.shape(medoids)[0]
    in_k = tf.equal(near.slot1, k)
    mind = tf.where(in_k, near.dist2, near.dist1)
    asg = tf.where(in_k, near.slot2, near.slot1)
    # The other medoids keep their own slot (unused slots write to a scratch entry).
    slot_of = tf.tensor_scatter_nd_update(
        tf.fill([m + 1], n), medoids[:, None], tf.range(n)
    )[:m]
    fixed = (slot_of < n) & tf.not_equal(slot_of, k)
    asg = tf.where(fixed, slot_of, asg)
    cell, cell_table = cell_ids(asg, labels, n, cell_table)
    cell = tf.where(asg < n, cell, m)
    base = cand.make_base(mind, asg, fixed, cell, n, problem.margin_type)
    return base, cell_table


def move_slot(k, new, medoids, near: TwoNearest, problem: Problem) -> TwoNearest:
    """`near` for `medoids`, where S[k] has just become `new`: (D[new], k) enters every point's
    pair; points that had k among their two nearest are recomputed from scratch, a chunk at a
    time."""
    m = tf.shape(problem.distances)[0]
    chunk = tf.minimum(m, _CHUNK)
    row = tf.gather(problem.distances, new)
    first = (row < near.dist1) | (tf.equal(row, near.dist1) & (k < near.slot1))
    second = (row < near.dist2) | (tf.equal(row, near.dist2) & (k < near.slot2))
    moved = TwoNearest(
        tf.where(first, row, near.dist1),
        tf.where(first, k, near.slot1),
        tf.where(first, near.dist1, tf.where(second, row, near.dist2)),
        tf.where(first, near.slot1, tf.where(second, k, near.slot2)),
    )
    stale = tf.equal(near.slot1, k) | tf.equal(near.slot2, k)
    order = tf.argsort(tf.cast(~stale, tf.int32), stable=True)  # stale points first
    num_stale = tf.reduce_sum(tf.cast(stale, tf.int32))

    def refresh_chunk(q, near: TwoNearest):
        pos = q * chunk + tf.range(chunk)
        points = tf.gather(order, tf.minimum(pos, m - 1))
        fresh = two_nearest(
            tf.gather(tf.gather(problem.padded, points, axis=1), medoids)
        )
        target = tf.where(pos < num_stale, points, m)[:, None]

        def put(old, new_values):
            extended = tf.concat([old, old[:1]], axis=0)
            return tf.tensor_scatter_nd_update(extended, target, new_values)[:-1]

        return q + 1, TwoNearest(*map(put, near, fresh))

    _, moved = tf.while_loop(
        lambda q, _: q * chunk < num_stale, refresh_chunk, (tf.constant(0), moved)
    )
    return moved


class _Clusters(NamedTuple):
    """The clusters of the assignment frozen at the start of a sweep (Algorithm 2 line 2)."""

    frozen: tf.Tensor  # int32 [m], y_PAM = g(S)
    energy: tf.Tensor  # float32 [m], F(X_{cluster of j}, {j}) for every point j
    members: tf.Tensor  # int32 [m], points ordered by cluster
    starts: tf.Tensor  # int32 [n], offset of each cluster in `members`
    sizes: tf.Tensor  # int32 [n]


def _freeze(medoids, near: TwoNearest, distances) -> _Clusters:
    m = tf.shape(distances)[0]
    frozen = force_medoid_slots(near.slot1, medoids)  # g(S), eq. 7
    same = tf.equal(frozen[:, None], frozen[None, :])
    energy = -tf.reduce_sum(tf.where(same, distances, 0.0), axis=1)
    sizes = tf.math.unsorted_segment_sum(
        tf.ones([m], tf.int32), frozen, tf.shape(medoids)[0]
    )
    return _Clusters(
        frozen,
        energy,
        tf.argsort(frozen, stable=True),
        tf.cumsum(sizes, exclusive=True),
        sizes,
    )


def _member_scores(k, base: cand.Base, clusters: _Clusters, problem: Problem):
    """float32 [m + 1]: F(X_{cluster k}, {j}) + gamma Delta(g(S with S[k] = j), y*) at each
    member j of cluster k, -inf elsewhere (Algorithm 2 line 4), `_CHUNK` candidates at once."""
    m = tf.shape(problem.distances)[0]
    chunk = tf.minimum(m, _CHUNK)
    start, size = clusters.starts[k], clusters.sizes[k]

    def score_chunk(q, scores):
        pos = start + q * chunk + tf.range(chunk)
        member = tf.where(
            pos < start + size, tf.gather(clusters.members, tf.minimum(pos, m - 1)), m
        )
        safe = tf.minimum(member, m - 1)
        taken = cand.taken_points(
            tf.gather(problem.columns, safe, axis=1), safe, k, base
        )
        margin = cand.candidate_margins(
            taken, base, problem.classes, problem.margin_type
        )
        value = tf.gather(clusters.energy, safe) + problem.gamma * margin
        return q + 1, tf.tensor_scatter_nd_update(scores, member[:, None], value)

    _, scores = tf.while_loop(
        lambda q, _: q < (size + chunk - 1) // chunk,
        score_chunk,
        (tf.constant(0), tf.fill([m + 1], -float("inf"))),
    )
    return scores


def swap_sum_bounds(slot, medoids, near: TwoNearest, cell_table, problem: Problem):
    """Bounds on the contingency sums (x log x) after each point j replaces the medoid of
    `slot[j]`, for the margins in `candidates.BOUNDED_MARGINS`.

    Returns (float32 [m], at most s_ac of g(S with S[slot[j]] = j); float32 [m], at least its
    s_a; float32 scalar Delta(g(S), y*); the updated cell table of `cell_ids`).

    With k = slot[j], the swap moves only the points of the current cluster k (s_k of them,
    class weights W_k) and points p that j is at least as close to as their nearest slot
    (counted with j itself: count_j, weight_j; any over-count keeps it a bound). Moved points
    leave their cells and join others, so s_ac >= s_ac(S) - W_k - weight_j (as in
    `candidates.margin_upper_bound`); the s_k points join other clusters, each adding at most
    1 + log m to s_a (f(n + g) - f(n) <= g f'(n + g), f convex), and cluster k ends with at most
    s_k + count_j points, so s_a <= s_a(S) - f(s_k) + f(s_k + count_j) + s_k (1 + log m);
    `candidates.margin_bound_from_sums` turns these into the bound. One pass over [m, m].
    """
    classes, margin_type = problem.classes, problem.margin_type
    n = tf.shape(medoids)[0]
    f = margins_lib.stat_fn(margin_type)
    m = tf.shape(classes.labels)[0]
    m_float = tf.cast(m, tf.float32)
    ones = tf.ones([m])
    current = force_medoid_slots(near.slot1, medoids)  # g(S): every point assigned
    cell, cell_table = cell_ids(current, classes.labels, n, cell_table)
    cell_size = cand.segment_sum(ones, cell, m)
    size = cand.segment_sum(ones, current, n)
    s_ac = tf.reduce_sum(f(cell_size))
    s_a = tf.reduce_sum(f(size))
    margin = 1.0 - margins_lib.score_from_sums(
        margin_type, s_ac, s_a, classes.s_c, m_float
    )
    # Row j of D against every point's nearest-slot distance: rows reduce fastest on CPU.
    closer = problem.distances <= near.dist1[None, :]
    count = tf.reduce_sum(tf.cast(closer, tf.float32), axis=1) + 1.0
    weight = (
        tf.reduce_sum(tf.where(closer, problem.weights[None, :], 0.0), axis=1)
        + problem.weights
    )
    s_k = tf.gather(size, slot)
    w_k = tf.gather(cand.segment_sum(problem.weights, current, n), slot)
    s_ac_low = s_ac - w_k - weight
    s_a_up = (
        s_a
        - f(s_k)
        + f(tf.minimum(s_k + count, m_float))
        + s_k * (1.0 + tf.math.log(m_float))
    )
    return s_ac_low, s_a_up, margin, cell_table


def swap_margin_bounds(slot, medoids, near: TwoNearest, cell_table, problem: Problem):
    """Upper bounds on the margin after each point j replaces the medoid of `slot[j]`.

    Returns (float32 [m], B_j >= Delta(g(S with S[slot[j]] = j), y*) + BOUND_SLACK; float32
    scalar Delta(g(S), y*); the updated cell table), from `swap_sum_bounds`.
    """
    s_ac, s_a, margin, cell_table = swap_sum_bounds(
        slot, medoids, near, cell_table, problem
    )
    bound = cand.margin_bound_from_sums(s_ac, s_a, problem.classes, problem.margin_type)
    return bound, margin, cell_table


def _settled_slots(medoids, near: TwoNearest, cell_table, clusters, problem: Problem):
    """bool [n]: the slots k whose swap (Algorithm 2 line 4) provably keeps S[k] under the
    current S, and the updated cell table.

    Every member j of cluster k scores at most F(X_{cluster k}, {j}) + gamma B_j
    (`swap_margin_bounds`); the current medoid scores F(X_{cluster k}, {S[k]}) + gamma
    Delta(g(S)), its swap leaving g(S) as it is. When every other member's bound is below that
    score less the tie tolerance, none of them is among the tied best, so S[k] stays whatever
    its index. The flags hold until a swap changes S.
    """
    n = tf.shape(medoids)[0]
    if problem.margin_type not in cand.BOUNDED_MARGINS:
        return tf.zeros([n], tf.bool), cell_table
    m = tf.shape(problem.distances)[0]
    slot = clusters.frozen
    bound, margin, cell_table = swap_margin_bounds(
        slot, medoids, near, cell_table, problem
    )
    value = clusters.energy + problem.gamma * bound
    is_medoid = tf.equal(tf.range(m), tf.gather(medoids, slot))
    rival = tf.math.unsorted_segment_max(
        tf.where(is_medoid, -float("inf"), value), slot, n
    )
    # The medoid's own score, lowered by what float32 rounding can move a computed margin.
    energy = tf.gather(tf.concat([clusters.energy, [0.0]], axis=0), medoids)
    own = energy + problem.gamma * (margin - cand.BOUND_SLACK)
    return rival < own - cand.RTOL * (tf.abs(own) + 1.0), cell_table


def _swap(k, medoids, near, cell_table, clusters: _Clusters, problem: Problem):
    """Algorithm 2 lines 4-5 for cluster k: S[k] becomes its best member."""
    m = tf.shape(problem.distances)[0]
    base, cell_table = base_without(k, medoids, near, cell_table, problem)
    scores = _member_scores(k, base, clusters, problem)
    best = cand.argmax_lowest_index(scores[:m], tf.equal(clusters.frozen, k))
    swapped = tf.tensor_scatter_nd_update(medoids, [[k]], [best])
    near = tf.cond(
        tf.equal(best, medoids[k]),
        lambda: near,
        lambda: move_slot(k, best, swapped, near, problem),
    )
    return swapped, near, cell_table


def pam_refine(
    distances,
    labels,
    medoids,
    margin_multiplier,
    margin_type: str = "nmi",
    iterations: int = 5,
    emi_table=None,
    classes=None,
) -> tf.Tensor:
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
      emi_table: as in `greedy.greedy_facilities`.
      classes: as in `greedy.greedy_facilities` (the same `candidates.Classes` for both).

    Returns:
      int32 [n], refined medoids in slot order, then m.

    Raises:
      tf.errors.InvalidArgumentError: fewer slots than classes (outside XLA).
    """
    n = tf.shape(medoids)[0]
    if classes is None:
        classes = cand.make_classes(labels, margin_type, n, emi_table)
    problem = refinement_problem(distances, classes, margin_multiplier, margin_type)

    def sweep(t, medoids, near, cell_table, changed):
        del changed
        clusters = _freeze(medoids, near, distances)
        slots = tf.range(n)

        def next_slot(k, settled):
            # A cluster of one member has its medoid as the only candidate: nothing to score.
            todo = (slots >= k) & (clusters.sizes > 1) & ~settled
            return tf.reduce_min(tf.where(todo, slots, n))

        def visit_slot(k, medoids, near, cell_table, settled):
            swapped, near, cell_table = _swap(
                k, medoids, near, cell_table, clusters, problem
            )
            settled, cell_table = tf.cond(
                tf.equal(swapped[k], medoids[k]),
                lambda: (settled, cell_table),
                lambda: _settled_slots(swapped, near, cell_table, clusters, problem),
            )
            return next_slot(k + 1, settled), swapped, near, cell_table, settled

        settled, cell_table = _settled_slots(
            medoids, near, cell_table, clusters, problem
        )
        _, swapped, near, cell_table, _ = tf.while_loop(
            lambda k, *_: k < n,
            visit_slot,
            (next_slot(0, settled), medoids, near, cell_table, settled),
        )
        changed = tf.reduce_any(tf.not_equal(swapped, medoids))
        return t + 1, swapped, near, cell_table, changed

    # A sweep is a function of S alone, so once a sweep changes nothing every later sweep would
    # change nothing either: stopping there returns exactly what T sweeps return.
    _, medoids, _, _, _ = tf.while_loop(
        lambda t, *args: (t < iterations) & args[-1],
        sweep,
        (
            tf.constant(0),
            medoids,
            two_nearest(tf.gather(problem.padded, medoids)),
            tf.zeros([n * (n + 1)], tf.int32),
            tf.constant(True),
        ),
    )
    return medoids
