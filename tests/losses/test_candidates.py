"""The segment-sum scoring of every candidate at once (`candidates.py`) against margins built from scratch."""

import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import candidates as cand
from fl_embed.losses import facility_location as fl
from tests.losses.batches import random_batch as _batch
from tests.losses.batches import tf_distances as _tf_distances


@pytest.mark.parametrize("margin_type", ["nmi", "ami", "ari", "vmeasure", "const"])
def test_every_candidates_margin_equals_the_margin_of_its_clustering(margin_type):
    # The inference scores all candidates at once from segment sums over a base clustering, with
    # rows only for cells, clusters and classes that can change the sums. Here each candidate's
    # margin is computed from scratch: g(S u {j}) and the margin of that partition.
    from fl_embed.losses import margins

    rng = np.random.default_rng(12)
    cases = [
        _batch(rng, m, c) + (rng.choice(m, k, replace=False),)
        for m, c, k in [(20, 6, 4), (24, 20, 9), (30, 3, 12)]
    ]
    # Tight, well separated classes with a medoid in all but the last (which has one point): the
    # candidates of that class complete a perfect clustering, so margins of 0 occur too.
    y = np.r_[np.repeat(np.arange(5), 4), 5]
    x = np.eye(6, dtype=np.float32)[y] + rng.normal(scale=0.01, size=(21, 6)).astype(
        np.float32
    )
    cases.append((x, y, np.flatnonzero(np.r_[True, y[1:] != y[:-1]])[:5]))
    for x, y, medoids in cases:
        m, num_classes, num_medoids = len(y), len(set(y.tolist())), len(medoids)
        medoids = medoids.astype(np.int32)
        d = tf.constant(_tf_distances(x))
        labels = tf.constant(y, tf.int32)
        n = max(num_classes, num_medoids + 1)
        slots = tf.constant(np.r_[medoids, np.full(n - num_medoids, m)], tf.int32)
        classes = cand.make_classes(labels, margin_type, n)
        asg = fl.cluster_assignment(d, slots)
        mind = tf.reduce_min(tf.gather(d, medoids), axis=0)
        fixed = tf.constant(np.isin(np.arange(m), medoids))
        cell_id = margins.dense_labels(asg * m + labels)
        base = cand.make_base(mind, asg, fixed, cell_id, n, margin_type)
        index = tf.range(m)
        taken = cand.taken_points(tf.transpose(d), index, num_medoids, base)
        got = cand.candidate_margins(taken, base, classes, margin_type).numpy()
        for j in sorted(set(range(m)) - set(medoids.tolist())):
            with_j = tf.constant(np.r_[medoids, j], tf.int32)
            expected = margins.structured_margin(
                fl.cluster_assignment(d, with_j), labels, margin_type
            )
            assert got[j] == pytest.approx(float(expected), abs=1e-5), (m, j)


@pytest.mark.parametrize("margin_type", ["nmi", "vmeasure"])
def test_margin_upper_bound_is_at_least_every_candidates_margin(margin_type):
    # The bound used to prune Algorithm 1's candidates, from the exact number of points each
    # candidate takes and their class weights, against the margin of g(S u {j}) built from
    # scratch; batches with singletons, duplicates, one class and all-singleton classes.
    from fl_embed.losses import margins

    rng = np.random.default_rng(31)
    cases = [_batch(rng, m, c) for m, c in [(30, 8), (24, 20), (20, 2), (16, 16)]]
    x, _ = _batch(rng, 18, 3)
    cases.append((np.repeat(x[:6], 3, axis=0), np.repeat(np.arange(3), 6)))
    cases.append((x, np.zeros(18, int)))
    for x, y in cases:
        m = len(y)
        d = tf.constant(_tf_distances(x))
        labels = tf.constant(y, tf.int32)
        classes = cand.make_classes(labels, margin_type, m)
        weights = cand.take_weights(classes).numpy()
        for num_medoids in (0, 1, max(1, len(set(y.tolist())) - 1)):
            medoids = rng.choice(m, num_medoids, replace=False).astype(np.int32)
            slots = tf.constant(np.r_[medoids, np.full(m - num_medoids, m)], tf.int32)
            # No medoid yet: every point unassigned (slot n = m).
            asg = fl.cluster_assignment(d, slots) if num_medoids else tf.fill([m], m)
            mind = tf.reduce_min(
                tf.concat([tf.gather(d, medoids), tf.fill([1, m], np.inf)], 0), axis=0
            )
            fixed = tf.constant(np.isin(np.arange(m), medoids))
            cell_id = tf.where(asg < m, margins.dense_labels(asg * m + labels), m)
            base = cand.make_base(mind, asg, fixed, cell_id, m, margin_type)
            taken = cand.taken_points(tf.transpose(d), tf.range(m), num_medoids, base)
            count = tf.reduce_sum(taken, axis=0)
            weight = tf.constant(weights @ taken.numpy())
            bound = cand.margin_upper_bound(count, weight, base, classes, margin_type)
            for j in sorted(set(range(m)) - set(medoids.tolist())):
                with_j = tf.constant(np.r_[medoids, j], tf.int32)
                exact = margins.structured_margin(
                    fl.cluster_assignment(d, with_j), labels, margin_type
                )
                assert float(bound[j]) >= float(exact), (m, num_medoids, j)
