"""Algorithm 1 of the paper: greedy loss-augmented inference."""

from typing import NamedTuple

import tensorflow as tf

from fl_embed.losses import candidates as cand

# Candidates scored exactly at once after pruning (a step of m = 1024 keeps ~1-60 of them; at
# m = 1024 a chunk of 16 costs a quarter of one of 32 on this CPU).
_CHUNK = 16
# Above this fraction of the candidates left after pruning, a step scores all of them at once.
_FULL_FRACTION = 4


class _Bounds(NamedTuple):
    """Per candidate, over-counts of the points it takes: |T| and the sum of `take_weights`
    over T. T only shrinks as S grows (the distances to S only fall), so they stay valid from
    the step they were counted at (see `_pruned_argmax`)."""

    count: tf.Tensor  # float32 [m]
    weight: tf.Tensor  # float32 [m]


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
    problem = (distances, columns, weights, classes, margin_multiplier, margin_type)

    def add_facility(t, medoids, mind, asg, fixed, cell, bounds):
        base = cand.make_base(mind, asg, fixed, cell, n, margin_type)
        energy = -tf.reduce_sum(tf.minimum(columns, mind[:, None]), axis=0)
        if margin_type in cand.BOUNDED_MARGINS:
            best, bounds = _pruned_argmax(t, base, energy, bounds, problem)
        else:
            best = _full_argmax(t, base, energy, problem)
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
            bounds,
        )

    # Before the first facility every candidate takes every point.
    everything = _Bounds(
        tf.fill([m], tf.cast(m, tf.float32)), tf.fill([m], tf.reduce_sum(weights))
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


def _full_argmax(t, base, energy, problem):
    """Algorithm 1's step t with every candidate scored exactly."""
    distances, columns, _, classes, gamma, margin_type = problem
    taken = cand.taken_points(columns, tf.range(tf.shape(distances)[0]), t, base)
    margin = cand.candidate_margins(taken, base, classes, margin_type)
    return cand.argmax_lowest_index(energy + gamma * margin, ~base.fixed)


def _pruned_argmax(t, base, energy, bounds: _Bounds, problem):
    """Algorithm 1's step t (the lowest-index argmax), scoring exactly only the candidates whose
    bound can reach the best score. Returns (best, the `_Bounds` carried to the next step).

    The counts are recounted (one pass over [m, m]) only when the first chunk does not settle
    the step; otherwise the ones from an earlier step, still valid, are kept."""
    distances, columns, weights, classes, gamma, margin_type = problem
    m = tf.shape(distances)[0]
    chunk = tf.minimum(m, _CHUNK)
    valid = ~base.fixed

    def bound_of(bounds: _Bounds):
        margin = cand.margin_upper_bound(
            bounds.count, bounds.weight, base, classes, margin_type
        )
        return tf.where(valid, energy + gamma * margin, -float("inf"))

    def score(candidates, target, scores):
        """Exact A(S u {q}) of the candidates, written at `target` (m: dropped)."""
        taken = cand.taken_points(
            tf.transpose(tf.gather(distances, candidates)), candidates, t, base
        )
        margin = cand.candidate_margins(taken, base, classes, margin_type)
        value = tf.gather(energy, candidates) + gamma * margin
        return tf.tensor_scatter_nd_update(scores, target[:, None], value)

    bound = bound_of(bounds)
    _, top = tf.math.top_k(bound, chunk)
    scores = score(
        top, tf.where(tf.gather(valid, top), top, m), tf.fill([m + 1], -float("inf"))
    )
    best = tf.reduce_max(scores)
    # The tied best score at least best - RTOL (|best| + 1), which grows with best: a candidate
    # bounded below this (for the best found so far) cannot be among them.
    threshold = best - cand.RTOL * (tf.abs(best) + 1.0)
    unscored = valid & ~tf.scatter_nd(top[:, None], tf.ones([chunk], tf.bool), [m])

    def recount():
        # The candidate's own point is added whether or not it is closer: an over-count.
        closer = columns < base.mind[:, None]
        fresh = _Bounds(
            tf.reduce_sum(tf.cast(closer, tf.float32), axis=0) + 1.0,
            tf.reduce_sum(tf.where(closer, weights[:, None], 0.0), axis=0) + weights,
        )
        return fresh, bound_of(fresh)

    bounds, bound = tf.cond(
        tf.reduce_any(unscored & (bound >= threshold)),
        recount,
        lambda: (bounds, bound),
    )
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
    return best, bounds
