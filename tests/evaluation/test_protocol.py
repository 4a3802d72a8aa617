"""evaluate(): the protocol's metric dict, the singleton-class rule, and clear errors on bad input."""

import numpy as np
import pytest

from fl_embed.evaluation.protocol import PRODUCTS_KS, evaluate


def clustered(n_classes: int, per_class: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = rng.normal(size=(n_classes, 16))
    return (centres[labels] + spread * rng.normal(size=(labels.size, 16))).astype(
        np.float32
    ), labels


def test_returns_the_protocol_keys_as_fractions():
    x, labels = clustered(10, 8, spread=0.8)
    metrics = evaluate(x, labels, ks=(1, 2, 4, 8))
    assert list(metrics) == [
        "nmi",
        "recall@1",
        "recall@2",
        "recall@4",
        "recall@8",
        "map@r",
        "r_precision",
    ]
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    recalls = [metrics[f"recall@{k}"] for k in (1, 2, 4, 8)]
    assert (
        recalls == sorted(recalls) and recalls[0] < 1.0
    )  # the spread leaves room to improve


def test_a_perfect_embedding_scores_one_everywhere():
    x, labels = clustered(6, 5, spread=1e-3)
    metrics = evaluate(x, labels, ks=(1, 4))
    assert metrics == pytest.approx(
        {"nmi": 1.0, "recall@1": 1.0, "recall@4": 1.0, "map@r": 1.0, "r_precision": 1.0}
    )


def test_singleton_classes_are_left_out_of_retrieval_but_not_out_of_the_gallery():
    # Classes 0 and 1 are tight pairs; class 2 and 3 are single items. The singleton at -0.03 sits
    # right next to class 0, so class 0's query at 0.0 retrieves it first: a miss at K = 1.
    x = np.array([[0.0], [0.1], [5.0], [5.01], [-0.03], [100.0]], np.float32)
    labels = np.array([0, 0, 1, 1, 2, 3])
    metrics = evaluate(x, labels, ks=(1, 2))
    # Queries counted: the four items of classes 0 and 1; only item 0 misses at K = 1.
    assert metrics["recall@1"] == pytest.approx(3 / 4)
    assert metrics["recall@2"] == pytest.approx(1.0)
    # Item 0 (R = 1) finds its match second: precision 0 at rank 1, so AP@R = 0.
    assert metrics["map@r"] == pytest.approx(3 / 4)
    assert metrics["r_precision"] == pytest.approx(3 / 4)


def test_products_ks_are_accepted_for_a_large_enough_gallery():
    x, labels = clustered(300, 4, spread=0.5)
    metrics = evaluate(x, labels, ks=PRODUCTS_KS)
    assert metrics["recall@1000"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "embeddings, labels, ks, message",
    [
        (np.zeros((4, 2)), np.array([0, 0, 1]), (1,), "4 embeddings but 3 labels"),
        (
            np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]]),
            np.array([0, 0, 1]),
            (1,),
            "NaN or Inf",
        ),
        (np.zeros((1, 2)), np.array([0]), (1,), "at least 2 items"),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            np.array([0, 0, 1, 1, 1]),
            (1, 5),
            "K=5 is outside",
        ),
        (np.zeros((3, 2)), np.array([0, 1, 2]), (1,), "single item"),
        (np.zeros((3, 2)), np.array([0.5, 1.0, 1.0]), (1,), "integer class ids"),
        (np.zeros(3), np.array([0, 0, 1]), (1,), r"\[n, d\] array"),
    ],
    ids=[
        "mismatched_lengths",
        "nan",
        "one_item",
        "k_beyond_gallery",
        "all_singletons",
        "float_labels",
        "rank_1",
    ],
)
def test_bad_input_raises_a_clear_error(embeddings, labels, ks, message):
    with pytest.raises(ValueError, match=message):
        evaluate(embeddings, labels, ks=ks)


def test_faiss_and_numpy_backends_give_identical_metrics_on_a_tie_heavy_set():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 12, size=300)
    # A 3 x 3 x 3 grid of points: every query has large groups of equidistant neighbours.
    x = rng.integers(0, 3, size=(300, 3)).astype(np.float32)
    numpy_metrics = evaluate(x, labels, ks=(1, 2, 4, 8), knn_backend="numpy")
    faiss_metrics = evaluate(x, labels, ks=(1, 2, 4, 8), knn_backend="faiss")
    assert faiss_metrics == numpy_metrics
