"""Eqs. 4, 5, 7 against the independent references in `reference.py`."""

import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import facility_location as fl
from tests.losses import reference as ref
from tests.losses.batches import random_batch as _batch
from tests.losses.batches import tf_distances as _tf_distances


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
