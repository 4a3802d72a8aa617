import numpy as np
import pytest
from sklearn import metrics

from fl_embed.losses import margins

SKLEARN = {
    "nmi": lambda a, b: metrics.normalized_mutual_info_score(
        a, b, average_method="geometric"
    ),
    "ami": metrics.adjusted_mutual_info_score,
    "ari": metrics.adjusted_rand_score,
    "vmeasure": metrics.v_measure_score,
}


def _random_pairs(seed, count=25):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        m = int(rng.integers(2, 40))
        a = rng.integers(0, rng.integers(1, 8), m)
        b = rng.integers(0, rng.integers(1, 8), m)
        yield a, b


@pytest.mark.parametrize("margin_type", sorted(SKLEARN))
def test_scores_match_scikit_learn(margin_type):
    for a, b in _random_pairs(0):
        if margin_type == "nmi" and len(set(a)) == 1 and len(set(b)) == 1:
            continue  # scikit-learn's special case agrees (1.0) but is tested below
        expected = SKLEARN[margin_type](a, b)
        got = float(margins.clustering_score(a, b, margin_type))
        assert got == pytest.approx(expected, abs=1e-4), (a, b)


def test_nmi_is_one_for_a_relabelled_identical_clustering():
    y = np.array([3, 3, 17, 17, 42])
    assert float(
        margins.clustering_score(y, np.array([0, 0, 5, 5, 1]))
    ) == pytest.approx(1.0)


@pytest.mark.parametrize("margin_type", margins.MARGIN_TYPES)
def test_single_cluster_against_many_is_worst_and_finite(margin_type):
    y = np.arange(6) % 3
    score = float(margins.clustering_score(y, np.zeros(6, int), margin_type))
    assert np.isfinite(score)
    if margin_type in ("nmi", "vmeasure", "const"):
        assert score == 0.0


def test_single_cluster_on_both_sides_scores_one_not_nan():
    score = margins.clustering_score(np.zeros(5, int), np.zeros(5, int), "nmi")
    assert float(score) == 1.0
    assert float(margins.structured_margin(np.zeros(5, int), np.zeros(5, int))) == 0.0


def test_const_margin_is_one_iff_partitions_differ():
    y = np.array([0, 0, 1, 1, 2])
    assert (
        float(margins.structured_margin(np.array([7, 7, 3, 3, 9]), y, "const")) == 0.0
    )
    assert (
        float(margins.structured_margin(np.array([7, 7, 3, 9, 9]), y, "const")) == 1.0
    )
    assert (
        float(margins.structured_margin(np.array([0, 0, 0, 1, 1]), y, "const")) == 1.0
    )


def test_unknown_margin_type_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown margin_type 'nmj'"):
        margins.clustering_score([0, 1], [0, 1], "nmj")


def test_expected_mi_table_matches_scikit_learn_emi():
    from sklearn.metrics.cluster import contingency_matrix
    from sklearn.metrics.cluster._expected_mutual_info_fast import (
        expected_mutual_information,
    )

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 20)
    pred = rng.integers(0, 5, 20)
    table = margins.expected_mi_table(np.bincount(y).astype(np.float32), 20.0).numpy()
    emi = table[np.bincount(pred)[np.bincount(pred) > 0]].sum() / 20.0
    expected = expected_mutual_information(contingency_matrix(y, pred), 20)
    assert emi == pytest.approx(expected, rel=1e-4)
