"""Algorithm 1 of the paper: greedy loss-augmented inference."""

from typing import NamedTuple

import tensorflow as tf

from fl_embed.losses import candidates as cand

# Candidates scored exactly at once after pruning. A step of m = 1024 keeps ~1-60 of them, and
# the step's fixed cost dominates: Algorithm 1 alone took 70-77 ms at m = 512 / 384 with chunks
# of 8 against 87-98 ms with 16, and 2.84 s against 3.21 s at 4096 / 1024 (BUILD_NOTES).
_CHUNK = 8
# Above this fraction of the candidates left after pruning, a step scores all of them at once.
_FULL_FRACTION = 4
# Rows of D read at once when the points taken by a new facility update every candidate's sums.
_ROWS = 64
# ... and when a step moves at most this many points (most steps), one chunk of this size.
_FEW_ROWS = 8


class _Sums(NamedTuple):
    """Per candidate q, sums over the points p it is closer to than their nearest facility in S
    (D[q, p] < mind[p]), kept exact from step to step (`_update_sums`)."""

    energy: tf.Tensor  # float64 [m], F(X, S u {q}) = -sum_p min(D[q, p], mind[p])
    count: tf.Tensor  # int32 [m], how many such points
    weight: tf.Tensor  # float64 [m], the sum of their `take_weights`


def greedy_facilities(
    distances,
    labels,
    margin_multiplier,
    margin_type: str = "nmi",
    num_slots=None,
    emi_table=None,
    classes=None,
) -> tf.Tensor:
    """Algorithm 1: greedily add i* = argmax_i A(S u {i}) until |S| = |Y|.

    Formula:
        A(S) = F(X, S) + gamma Delta(g(S), y*)        (eqs. 4, 7, 8)
    Every candidate i is scored at each step (`candidates.py`): it takes over the points closer
    to it than to their medoid in S, and its A(S u {i}) follows from the energy of that reduction
    and three segment sums of the taken points. Ties go to the lowest point index.

    For "nmi" and "vmeasure" a step bounds every candidate's A(S u {i}) by its energy plus gamma
    times `candidates.margin_upper_bound`, scores the `_CHUNK` best bounds exactly, and then only
    the candidates whose bound reaches the best exact score less the tie tolerance: none of the
    others can be among the tied best, so the lowest-index argmax is unchanged.

    Every candidate's energy and the two sums its bound needs are kept from step to step: only
    the points a new facility takes change their distance to S, so a step reads their columns
    of D, not all of [m, m].

    Args:
      distances: float32 [m, m], pairwise Euclidean distances.
      labels: int32 [m], class ids in [0, m) (e.g. `margins.dense_labels`).
      margin_multiplier: float scalar gamma.
      margin_type: one of margins.MARGIN_TYPES.
      num_slots: n, the length of S as returned, at least the number of classes K (default m).
        The per-cluster and per-class tables have n rows, so a smaller n is faster; it must be
        known when XLA compiles (a Python int, or computed from static shapes).
      emi_table: for "ami", `margins.expected_mi_table` of the classes; computed when None.
      classes: `candidates.make_classes(labels, margin_type, n, emi_table)` when the caller has
        it (`pam.pam_refine` takes the same); built here when None.

    Returns:
      int32 [n]: the K medoids in slot order, then m (unused slots).

    Raises:
      tf.errors.InvalidArgumentError: num_slots below K (outside XLA).
    """
    m = tf.shape(distances)[0]
    n = m if num_slots is None else num_slots
    if classes is None:
        classes = cand.make_classes(labels, margin_type, n, emi_table)
    index = tf.range(m)
    # Column q holds D[q, :]: candidates along the last axis, so segment sums run over points.
    columns = tf.transpose(distances)
    weights = cand.take_weights(classes)
    # Scores are float64: in float32 an energy of ~400 rounds by 3e-5, which moved candidates
    # across the tie tolerance at m = 512 (the numpy fallback scores in float64).
    gamma = tf.cast(margin_multiplier, tf.float64)
    problem = (distances, columns, weights, classes, gamma, margin_type)

    def add_facility(t, medoids, mind, asg, fixed, cell, sums):
        base = cand.make_base(mind, asg, fixed, cell, n, margin_type)
        energy = sums.energy
        if margin_type in cand.BOUNDED_MARGINS:
            best = _pruned_argmax(t, base, energy, sums, problem)
        else:
            best = _full_argmax(t, base, energy, problem)
        row = tf.gather(distances, best)
        takes = ((row < mind) & ~fixed) | tf.equal(index, best)
        new_mind = tf.where(takes, row, mind)
        asg = tf.where(takes, t, asg)
        # New cell ids, O(m): the taken points form one new cell per class (key m + class); the
        # others keep their cell (key = old id). Each cell's id is its lowest-index member.
        key = tf.where(takes, m + classes.labels, tf.where(cell < m, cell, 2 * m))
        first = tf.math.unsorted_segment_min(index, key, 2 * m + 1)
        return (
            t + 1,
            tf.tensor_scatter_nd_update(medoids, [[t]], [best]),
            new_mind,
            asg,
            fixed | tf.equal(index, best),
            tf.where(asg < n, tf.gather(first, key), m),
            _update_sums(sums, takes, mind, new_mind, columns, weights),
        )

    # Before the first facility every point is infinitely far from S: every candidate takes all.
    everything = _Sums(
        -tf.reduce_sum(tf.cast(distances, tf.float64), axis=1),
        tf.fill([m], m),
        tf.fill([m], tf.reduce_sum(tf.cast(weights, tf.float64))),
    )
    _, medoids, *_ = tf.while_loop(
        lambda t, *_: t < classes.num_classes,
        add_facility,
        (
            tf.constant(0),
            tf.fill([n], m),  # S
            tf.fill([m], float("inf")),  # distance to the nearest medoid in S
            tf.fill([m], n),  # g(S), n while unassigned
            tf.zeros([m], tf.bool),  # medoids
            tf.fill([m], m),  # cell ids
            everything,
        ),
    )
    return medoids


def _update_sums(sums: _Sums, moved, mind, new_mind, columns, weights) -> _Sums:
    """`sums` after the points `moved` got the nearer facility distance `new_mind`.

    Only those points change their term in any candidate's sums, so the update reads their
    columns of D (rows of `columns`), `_FEW_ROWS` or `_ROWS` at a time: O(moved x m) instead of
    a pass over [m, m] (the energy pass alone was most of a step at m = 4096). The sums are
    float64 so that a thousand updates do not drift from the sums computed afresh (the tie
    tolerance is relative 1e-5)."""
    m = tf.shape(columns)[0]
    num_moved = tf.reduce_sum(tf.cast(moved, tf.int32))
    order = tf.tensor_scatter_nd_update(
        tf.zeros([m + 1], tf.int32),
        tf.where(moved, tf.cumsum(tf.cast(moved, tf.int32)) - 1, m)[:, None],
        tf.range(m),
    )

    # Most steps move a few points: a chunk of _ROWS would be mostly padding.
    args = (order, num_moved, mind, new_mind, columns, weights)
    return tf.cond(
        num_moved <= _FEW_ROWS,
        lambda: _update_in_chunks(sums, tf.minimum(m, _FEW_ROWS), *args),
        lambda: _update_in_chunks(sums, tf.minimum(m, _ROWS), *args),
    )


def _update_in_chunks(sums, rows, order, num_moved, mind, new_mind, columns, weights):
    """`_update_sums`' loop: the moved points `order[:num_moved]`, `rows` at a time."""
    m = tf.shape(columns)[0]

    def update_chunk(q, sums: _Sums):
        pos = q * rows + tf.range(rows)
        points = tf.gather(order, tf.minimum(pos, m - 1))
        old = tf.gather(mind, points)
        # Padding rows get new = old: they change nothing.
        new = tf.where(pos < num_moved, tf.gather(new_mind, points), old)[:, None]
        old = old[:, None]
        d = tf.gather(columns, points)  # row p: D[q, p] for every candidate q
        gain = tf.reduce_sum(
            tf.cast(tf.minimum(d, old) - tf.minimum(d, new), tf.float64), axis=0
        )
        # Points that stop counting for q: D[q, p] < old but not < new.
        leaves = (d < old) & ~(d < new)
        weight = tf.where(leaves, tf.gather(weights, points)[:, None], 0.0)
        return q + 1, _Sums(
            sums.energy + gain,
            sums.count - tf.reduce_sum(tf.cast(leaves, tf.int32), axis=0),
            sums.weight - tf.reduce_sum(tf.cast(weight, tf.float64), axis=0),
        )

    return tf.while_loop(
        lambda q, _: q * rows < num_moved, update_chunk, (tf.constant(0), sums)
    )[1]


def _full_argmax(t, base, energy, problem):
    """Algorithm 1's step t with every candidate scored exactly."""
    distances, columns, _, classes, gamma, margin_type = problem
    taken = cand.taken_points(columns, tf.range(tf.shape(distances)[0]), t, base)
    margin = cand.candidate_margins(taken, base, classes, margin_type)
    return cand.argmax_lowest_index(
        energy + gamma * tf.cast(margin, tf.float64), ~base.fixed
    )


def _pruned_argmax(t, base, energy, sums: _Sums, problem):
    """Algorithm 1's step t (the lowest-index argmax), scoring exactly only the candidates whose
    bound can reach the best score."""
    distances, _, weights, classes, gamma, margin_type = problem
    m = tf.shape(distances)[0]
    chunk = tf.minimum(m, _CHUNK)
    valid = ~base.fixed
    # The candidate's own point is added whether or not it is closer: an over-count.
    margin = cand.margin_upper_bound(
        tf.cast(sums.count + 1, tf.float32),
        tf.cast(sums.weight, tf.float32) + weights,
        base,
        classes,
        margin_type,
    )
    bound = tf.where(valid, energy + gamma * tf.cast(margin, tf.float64), -float("inf"))

    def score(candidates, target, scores):
        """Exact A(S u {q}) of the candidates, written at `target` (m: dropped)."""
        taken = cand.taken_points(
            tf.transpose(tf.gather(distances, candidates)), candidates, t, base
        )
        margin = cand.candidate_margins(taken, base, classes, margin_type)
        value = tf.gather(energy, candidates) + gamma * tf.cast(margin, tf.float64)
        return tf.tensor_scatter_nd_update(scores, target[:, None], value)

    _, top = tf.math.top_k(bound, chunk)
    scores = score(
        top,
        tf.where(tf.gather(valid, top), top, m),
        tf.fill([m + 1], tf.constant(-float("inf"), tf.float64)),
    )
    best = tf.reduce_max(scores)
    # The tied best score at least best - RTOL (|best| + 1), which grows with best: a candidate
    # bounded below this (for the best found so far) cannot be among them.
    threshold = best - cand.RTOL * (tf.abs(best) + 1.0)
    unscored = valid & ~tf.scatter_nd(top[:, None], tf.ones([chunk], tf.bool), [m])
    rest = unscored & (bound >= threshold)
    num_rest = tf.reduce_sum(tf.cast(rest, tf.int32))
    # The rest first, in index order (an O(m) compaction).
    order = tf.tensor_scatter_nd_update(
        tf.zeros([m + 1], tf.int32),
        tf.where(rest, tf.cumsum(tf.cast(rest, tf.int32)) - 1, m)[:, None],
        tf.range(m),
    )

    def score_chunk(q, scores):
        pos = q * chunk + tf.range(chunk)
        candidates = tf.gather(order, tf.minimum(pos, m - 1))
        return q + 1, score(candidates, tf.where(pos < num_rest, candidates, m), scores)

    def score_rest():
        _, rest_scores = tf.while_loop(
            lambda q, _: q * chunk < num_rest, score_chunk, (tf.constant(0), scores)
        )
        return cand.argmax_lowest_index(rest_scores[:m], valid)

    best = tf.cond(
        num_rest * _FULL_FRACTION > m,
        lambda: _full_argmax(t, base, energy, problem),
        score_rest,
    )
    return best
