"""Class-ratio sampler: checked against brute-force counts in numpy."""

import collections
import math

import numpy as np
import pytest

from fl_embed.samplers import (
    ClassRatioSampler,
    check_sub_batches,
    classes_per_batch,
)
from fl_embed.samplers.class_ratio import slot_sizes


def cub_like_labels(num_classes=100, low=41, high=60, seed=0):
    """Classes of 41..60 examples, like CUB's train half, in shuffled order."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), rng.integers(low, high + 1, num_classes))
    return rng.permutation(labels)


def sop_like_labels(num_classes=2000, seed=0):
    """Classes of 2..12 examples, like SOP."""
    return cub_like_labels(num_classes, 2, 12, seed)


@pytest.mark.parametrize(
    "labels, batch_size, ratio",
    [
        (cub_like_labels(), 128, 0.25),
        (sop_like_labels(), 128, 0.75),
        (cub_like_labels(), 30, 0.5),
    ],
)
def test_every_batch_has_exactly_c_classes_and_m_distinct_items(
    labels, batch_size, ratio
):
    sampler = ClassRatioSampler(labels, batch_size=batch_size, ratio=ratio, seed=1)
    expected_classes = round(ratio * batch_size)
    for batch in sampler.batches(60):
        assert batch.shape == (batch_size,)
        assert len(np.unique(batch)) == batch_size
        assert len(np.unique(labels[batch])) == expected_classes


def test_no_duplicates_when_classes_barely_fill_their_slot():
    # Every class has exactly ceil(m / C) = 3 examples, so each draw after the first wraps its queue.
    labels = np.repeat(np.arange(20), 3)
    sampler = ClassRatioSampler(labels, batch_size=10, ratio=0.4, seed=3)
    for batch in sampler.batches(200):
        assert len(np.unique(batch)) == 10
        assert len(np.unique(labels[batch])) == 4


def test_class_and_example_frequencies_are_close_to_uniform():
    labels = cub_like_labels(num_classes=50, low=20, high=40)
    sampler = ClassRatioSampler(labels, batch_size=64, ratio=0.25, seed=5)
    num_batches = 500
    class_hits = collections.Counter()
    item_counts = collections.Counter()
    for batch in sampler.batches(num_batches):
        class_hits.update(np.unique(labels[batch]).tolist())
        item_counts.update(labels[batch].tolist())
    # Classes are visited in whole cycles: appearance counts differ by at most one.
    assert max(class_hits.values()) - min(class_hits.values()) <= 1
    expected_items = num_batches * 64 / 50
    assert all(
        abs(c - expected_items) / expected_items < 0.05 for c in item_counts.values()
    )


def test_every_class_appears_within_the_first_cycle():
    labels = sop_like_labels(num_classes=500)
    sampler = ClassRatioSampler(labels, batch_size=32, ratio=0.75, seed=0)
    first = math.ceil(500 / 24)
    seen = set()
    for batch in sampler.batches(first):
        seen.update(labels[batch].tolist())
    assert seen == set(range(500))


def test_examples_within_a_class_are_drawn_without_replacement():
    labels = cub_like_labels(num_classes=12, low=9, high=13)
    sampler = ClassRatioSampler(labels, batch_size=24, ratio=0.25, seed=2)
    counts = np.zeros(len(labels), np.int64)
    for batch in sampler.batches(100):
        counts[batch] += 1
        # Without replacement: no example of a class is drawn twice before all of them were drawn once.
        for label in np.unique(labels):
            per_example = counts[labels == label]
            assert per_example.max() - per_example.min() <= 1
    assert counts.min() >= 1


def test_seeded_runs_repeat_and_seeds_differ():
    labels = cub_like_labels()
    first = list(ClassRatioSampler(labels, seed=7).batches(5))
    again = list(ClassRatioSampler(labels, seed=7).batches(5))
    other = list(ClassRatioSampler(labels, seed=8).batches(5))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize(
    "batch_size, num_classes", [(128, 32), (128, 96), (10, 3), (7, 7)]
)
def test_slot_sizes_sum_to_batch_size_and_differ_by_at_most_one(
    batch_size, num_classes
):
    sizes = slot_sizes(batch_size, num_classes)
    assert sizes.sum() == batch_size and len(sizes) == num_classes
    assert sizes.max() - sizes.min() <= 1


@pytest.mark.parametrize("ratio", [0.0, -0.25, 1.5, float("nan")])
def test_ratio_outside_unit_interval_raises(ratio):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        classes_per_batch(128, ratio)


def test_all_one_class_batch_raises():
    with pytest.raises(ValueError, match="one class"):
        classes_per_batch(128, 0.005)


def test_all_distinct_classes_batch_raises():
    with pytest.raises(ValueError, match="all-distinct"):
        classes_per_batch(128, 1.0)


def test_batch_smaller_than_classes_per_batch_raises():
    with pytest.raises(ValueError, match="smaller than the 96 classes"):
        ClassRatioSampler(sop_like_labels(), batch_size=64, num_classes_per_batch=96)


def test_paper_ratios_give_paper_class_counts():
    assert classes_per_batch(128, 0.25) == 32
    assert classes_per_batch(128, 0.75) == 96


def test_too_few_classes_raises():
    with pytest.raises(ValueError, match="usable classes"):
        ClassRatioSampler(np.repeat(np.arange(10), 20), batch_size=128, ratio=0.25)


def test_small_classes_are_dropped_or_rejected():
    labels = np.concatenate(
        [np.repeat(np.arange(40), 8), [100, 101]]
    )  # two singleton classes
    sampler = ClassRatioSampler(labels, batch_size=32, ratio=0.25)
    assert 100 not in sampler.classes and len(sampler.classes) == 40
    with pytest.raises(ValueError, match="drop_small_classes=True"):
        ClassRatioSampler(labels, batch_size=32, ratio=0.25, drop_small_classes=False)


def test_labels_must_be_a_1d_integer_array():
    with pytest.raises(ValueError, match="1-D integer"):
        ClassRatioSampler(np.zeros([4, 4], np.int64))
    with pytest.raises(ValueError, match="1-D integer"):
        ClassRatioSampler(np.linspace(0, 1, 300))


@pytest.mark.parametrize(
    "labels, batch_size, ratio, sub_batches",
    [
        (cub_like_labels(), 128, 0.25, 2),
        (cub_like_labels(), 128, 0.25, 4),
        (sop_like_labels(), 128, 0.75, 8),
        (cub_like_labels(), 36, 1 / 3, 3),
    ],
)
def test_each_sub_batch_holds_exactly_c_over_r_classes_and_the_batch_c(
    labels, batch_size, ratio, sub_batches
):
    sampler = ClassRatioSampler(
        labels, batch_size=batch_size, ratio=ratio, seed=2, sub_batches=sub_batches
    )
    classes = round(ratio * batch_size)
    share = batch_size // sub_batches
    for batch in sampler.batches(40):
        assert batch.shape == (batch_size,)
        assert len(np.unique(batch)) == batch_size
        assert len(np.unique(labels[batch])) == classes
        for part in batch.reshape(sub_batches, share):
            assert len(np.unique(labels[part])) == classes // sub_batches


def test_sub_batches_keep_class_frequencies_uniform():
    labels = cub_like_labels(num_classes=50, low=20, high=40)
    sampler = ClassRatioSampler(
        labels, batch_size=64, ratio=0.25, seed=5, sub_batches=4
    )
    hits = collections.Counter()
    for batch in sampler.batches(300):
        hits.update(np.unique(labels[batch]).tolist())
    assert max(hits.values()) - min(hits.values()) <= 1


@pytest.mark.parametrize(
    "batch_size, num_classes, sub_batches, message",
    [
        (30, 6, 4, "batch_size 30 does not divide into 4 sub-batches"),
        (32, 6, 4, "classes per batch C 6 does not divide into 4 sub-batches"),
        (16, 4, 4, "one class"),
        (16, 4, 0, "integer >= 1"),
    ],
)
def test_sub_batches_that_do_not_split_the_batch_raise(
    batch_size, num_classes, sub_batches, message
):
    with pytest.raises(ValueError, match=message):
        check_sub_batches(batch_size, num_classes, sub_batches)
    with pytest.raises(ValueError, match=message):
        ClassRatioSampler(
            cub_like_labels(),
            batch_size=batch_size,
            num_classes_per_batch=num_classes,
            sub_batches=sub_batches,
        )
