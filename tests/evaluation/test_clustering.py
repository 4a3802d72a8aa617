"""nmi (paper eq. 9) against scikit-learn; the k-means step on data with a known answer."""

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from fl_embed.evaluation.clustering import clustering_nmi, entropy, nmi


def sklearn_nmi(a, b) -> float:
    return normalized_mutual_info_score(a, b, average_method="geometric")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sizes", [(5, 5), (3, 40), (200, 150)])
def test_nmi_matches_sklearn_geometric_mean_on_random_labelings(seed, sizes):
    rng = np.random.default_rng(seed)
    a = (
        rng.integers(0, sizes[0], size=500) * 7 - 3
    )  # arbitrary, non-contiguous label values
    b = rng.integers(0, sizes[1], size=500)
    assert nmi(a, b) == pytest.approx(sklearn_nmi(a, b), abs=1e-12)


def test_nmi_matches_sklearn_on_correlated_labelings():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 20, size=1000)
    b = np.where(rng.random(1000) < 0.7, a, rng.integers(0, 25, size=1000))
    assert nmi(a, b) == pytest.approx(sklearn_nmi(a, b), abs=1e-12)


@pytest.mark.parametrize(
    "a, b",
    [
        ([0, 0, 0, 0], [1, 1, 1, 1]),  # both one cluster
        ([0, 0, 1, 1], [5, 5, 5, 5]),  # one side one cluster
        ([0, 0, 1, 1], [7, 7, 3, 3]),  # same partition, relabelled
        ([0, 1, 2, 3], [3, 2, 1, 0]),  # every item its own cluster
        ([0, 1, 0, 1], [0, 0, 1, 1]),  # independent
    ],
)
def test_nmi_limit_cases_agree_with_sklearn(a, b):
    assert nmi(np.array(a), np.array(b)) == pytest.approx(sklearn_nmi(a, b), abs=1e-12)


def test_entropy_of_a_uniform_labeling_is_log_of_the_class_count():
    assert entropy(np.array([3, 1, 4, 1, 3, 4])) == pytest.approx(np.log(3))


def test_nmi_rejects_labelings_of_different_lengths():
    with pytest.raises(ValueError, match="equal length"):
        nmi(np.array([0, 1, 1]), np.array([0, 1]))


def test_clustering_nmi_is_one_on_far_apart_classes_and_low_on_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = 100.0 * np.eye(4, 8)
    separated = centres[labels] + rng.normal(size=(200, 8))
    assert clustering_nmi(separated, labels, seed=0) == pytest.approx(1.0)
    assert clustering_nmi(rng.normal(size=(200, 8)), labels, seed=0) < 0.2


def test_clustering_nmi_above_the_kmeans_plusplus_limit_still_recovers_most_classes():
    # 1,200 classes take the random-seeding path used for Stanford Online Products.
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(1200), 2)
    centres = rng.normal(size=(1200, 16))
    x = centres[labels] + 0.01 * rng.normal(size=(2400, 16))
    assert clustering_nmi(x, labels, seed=0) > 0.9
