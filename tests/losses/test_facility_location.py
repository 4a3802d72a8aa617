"""Algorithms 1-2 and eqs. 4, 5, 7 against the independent references in `reference.py`."""

import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import candidates as cand
from fl_embed.losses import facility_location as fl
from fl_embed.losses import loss_augmented_inference
from fl_embed.losses.greedy import greedy_facilities
from fl_embed.losses.numpy_inference import (
    loss_augmented_inference_np,
    pam_refine_np,
)
from fl_embed.losses.pam import pam_refine
from tests.losses import reference as ref


def _batch(rng, m, num_classes, dim=3):
    y = ref.dense(
        np.concatenate(
            [np.arange(num_classes), rng.integers(0, num_classes, m - num_classes)]
        )
    )
    x = rng.normal(size=(m, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, y


def _tf_distances(x):
    return ref.distances(x).astype(np.float32)


def test_facility_energy_is_eq4():
    rng = np.random.default_rng(0)
    x, _ = _batch(rng, 9, 3)
    d = _tf_distances(x)
    medoids = [1, 4, 7]
    assert float(fl.facility_energy(d, medoids)) == pytest.approx(
        ref.energy(d, medoids), rel=1e-6
    )


def test_cluster_assignment_is_eq7_with_medoids_in_their_own_slot():
    x = np.array([[0.0], [0.0], [1.0], [2.0]], np.float32)  # points 0 and 1 coincide
    d = _tf_distances(x)
    got = fl.cluster_assignment(d, tf.constant([1, 0, 3])).numpy()
    assert got.tolist() == ref.assign(d, [1, 0, 3]).tolist() == [1, 0, 0, 2]


def test_oracle_score_is_eq5():
    rng = np.random.default_rng(1)
    x, y = _batch(rng, 11, 4)
    d = _tf_distances(x)
    score, oracle_medoid = fl.oracle_score(d, y.astype(np.int32))
    assert float(score) == pytest.approx(ref.oracle(d, y), rel=1e-6)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        assert len(set(oracle_medoid.numpy()[members])) == 1


@pytest.mark.parametrize("margin_type", ["nmi", "ami", "ari", "vmeasure", "const"])
def test_greedy_and_pam_give_the_reference_medoids(margin_type):
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, y = _batch(rng, 9, 4)
        gamma = float(rng.choice([0.1, 1.0, 4.0]))
        _, expected = ref.loss(ref.distances(x), y, gamma, margin_type)
        got = (
            loss_augmented_inference(y, x, gamma, margin_type=margin_type)
            .numpy()
            .tolist()
        )
        assert got == expected


def test_numpy_fallback_gives_identical_medoids_to_the_tensorflow_inference():
    rng = np.random.default_rng(4)
    for m, num_classes in [(16, 4), (16, 12), (24, 6)]:
        x, y = _batch(rng, m, num_classes, dim=8)
        xla = loss_augmented_inference(y, x, 1.0).numpy()
        numpy = loss_augmented_inference(y, x, 1.0, inference="numpy").numpy()
        np.testing.assert_array_equal(xla, numpy)


@pytest.mark.parametrize("m, num_classes, dim", [(48, 12, 2), (64, 8, 2), (96, 24, 3)])
def test_identical_medoids_on_larger_batches_where_pam_moves_many_medoids(
    m, num_classes, dim
):
    # Low-dimensional points make Algorithm 2 swap often, which exercises the incremental
    # nearest/second-nearest bookkeeping of the XLA inference (a stale update there showed up only
    # at m >= 48).
    rng = np.random.default_rng(11)
    for _ in range(4):
        x, y = _batch(rng, m, num_classes, dim=dim)
        gamma = float(rng.choice([0.5, 1.0, 3.0]))
        xla = loss_augmented_inference(y, x, gamma).numpy()
        numpy = loss_augmented_inference(y, x, gamma, inference="numpy").numpy()
        np.testing.assert_array_equal(xla, numpy)


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


@pytest.mark.parametrize("m, num_classes", [(128, 20), (128, 64), (128, 65), (160, 30)])
def test_inference_in_fewer_slots_than_points_gives_the_same_medoids(m, num_classes):
    # K classes of a batch of m run in the fewest of m, m/2, m/4, m/8 slots (at least 64) that
    # hold them: eagerly, chosen from the concrete labels; in a tf.function, by a switch at run
    # time. Both must give what the numpy reference gives.
    rng = np.random.default_rng(13)
    x, y = _batch(rng, m, num_classes, dim=4)
    numpy = loss_augmented_inference(y, x, 1.0, inference="numpy").numpy()
    eager = loss_augmented_inference(y, x, 1.0).numpy()
    in_graph = tf.function(lambda e, l: loss_augmented_inference(l, e, 1.0))
    graph = in_graph(tf.constant(x), tf.constant(y)).numpy()
    np.testing.assert_array_equal(eager, numpy)
    np.testing.assert_array_equal(graph, numpy)
    for n in (num_classes, m):
        d, labels = tf.constant(_tf_distances(x)), tf.constant(y, tf.int32)
        direct = pam_refine(
            d, labels, greedy_facilities(d, labels, 1.0, num_slots=n), 1.0
        )
        direct = direct.numpy()
        np.testing.assert_array_equal(direct[:num_classes], numpy)
        assert direct.shape == (n,) and np.all(direct[num_classes:] == m)


def test_inference_with_a_batch_size_unknown_when_traced_picks_its_slots_at_run_time():
    rng = np.random.default_rng(14)
    spec = [tf.TensorSpec([None, 4]), tf.TensorSpec([None], tf.int32)]
    in_graph = tf.function(
        lambda e, l: loss_augmented_inference(l, e, 1.0), input_signature=spec
    )
    for m, num_classes in [(128, 20), (96, 70)]:
        x, y = _batch(rng, m, num_classes, dim=4)
        numpy = loss_augmented_inference(y, x, 1.0, inference="numpy").numpy()
        got = in_graph(tf.constant(x), tf.constant(y, tf.int32)).numpy()
        np.testing.assert_array_equal(got, numpy)


def test_fewer_slots_than_classes_is_refused():
    rng = np.random.default_rng(15)
    x, y = _batch(rng, 12, 5)
    d, labels = tf.constant(_tf_distances(x)), tf.constant(y, tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_slots"):
        greedy_facilities(d, labels, 1.0, num_slots=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_slots"):
        pam_refine(d, labels, tf.range(4), 1.0)


def test_greedy_alone_matches_algorithm_1():
    rng = np.random.default_rng(5)
    x, y = _batch(rng, 10, 3)
    expected = ref.greedy(ref.distances(x), y, 1.0)
    got = (
        loss_augmented_inference(y, x, 1.0, enable_pam_finetuning=False)
        .numpy()
        .tolist()
    )
    assert got == expected


def test_never_beats_the_exact_maximum_and_finds_it_when_clusters_are_separated():
    rng = np.random.default_rng(6)
    for _ in range(4):
        x, y = _batch(rng, 8, 3, dim=2)
        d = ref.distances(x)
        medoids = loss_augmented_inference(y, x, 1.0).numpy().tolist()
        assert (
            ref.augmented(d, y, medoids, 1.0, "nmi") <= ref.exact_max(d, y, 1.0) + 1e-6
        )
    centers = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    x = np.repeat(centers, 3, axis=0) + rng.normal(scale=0.01, size=(9, 2))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = np.repeat(np.arange(3), 3)
    d = ref.distances(x)
    medoids = loss_augmented_inference(y, x, 0.1).numpy().tolist()
    assert ref.augmented(d, y, medoids, 0.1, "nmi") == pytest.approx(
        ref.exact_max(d, y, 0.1), abs=1e-5
    )


def test_pam_never_decreases_the_augmented_score_lemma_1():
    # The swap score of Algorithm 2 uses the assignment frozen at the start of a sweep; a search over
    # 3,000 random batches (m <= 8) with the reference found no counter-example.
    rng = np.random.default_rng(7)
    for _ in range(40):
        m = int(rng.integers(4, 14))
        x, y = _batch(rng, m, int(rng.integers(2, m)))
        d = ref.distances(x)
        gamma = float(rng.choice([0.0, 0.5, 2.0]))
        greedy = loss_augmented_inference_np(d, y, gamma, enable_pam_finetuning=False)
        before = ref.augmented(d, y, greedy.tolist(), gamma, "nmi")
        for sweeps in (1, 5):
            after = pam_refine_np(d, y, greedy, gamma, iterations=sweeps)
            assert ref.augmented(d, y, after.tolist(), gamma, "nmi") >= before - 1e-9


@pytest.mark.parametrize(
    "labels",
    [
        np.zeros(6, int),  # one class
        np.arange(6),  # every point its own class
        np.array([3, 17, 42, 3, 17, 42]),  # labels that are not 0..K-1
    ],
)
def test_degenerate_label_sets_match_the_reference(labels):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, expected = ref.loss(ref.distances(x), ref.dense(labels), 1.0)
    assert loss_augmented_inference(labels, x, 1.0).numpy().tolist() == expected
