"""The class-disjoint validation split of the train classes (tuning), on every data set."""

import numpy as np
import pytest

import data_prep
from data_prep.testing import mock_paper_data
from tests.data_prep.test_load import NUM_EXAMPLES, PER_CLASS, mocked_labels


@pytest.mark.parametrize("name", data_prep.NAMES)
def test_the_halves_are_disjoint_train_classes_and_hold_the_last_quarter(name):
    fit, validation = data_prep.validation_split(name, 0.25)
    train = data_prep.train_classes(name)
    assert np.intersect1d(fit, validation).size == 0
    np.testing.assert_array_equal(np.concatenate([fit, validation]), train)
    assert validation.size == round(0.25 * train.size)
    # The last classes validate: every fit class is below every validation class.
    assert fit.max() < validation.min()


def test_train_classes_are_the_first_half_of_the_shipped_sets():
    assert data_prep.train_classes("glyphs").tolist() == list(range(82))
    assert data_prep.train_classes("cub200").tolist() == list(range(100))


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.01, 0.99, -0.5])
def test_a_fraction_leaving_a_side_too_small_is_refused(fraction):
    with pytest.raises(ValueError, match="at least 2"):
        data_prep.validation_split("glyphs", fraction)


@pytest.mark.parametrize("name", ["glyphs", "hangul"])
def test_shipped_batches_and_examples_keep_to_their_classes(name):
    fit, validation = data_prep.validation_split(name, 0.25)
    batches = data_prep.class_ratio_batches(name, 32, 0.25, seed=1, classes=fit)
    seen = np.concatenate([y.numpy() for _, y in batches.take(8)])
    assert np.isin(seen, fit).all()
    kept = data_prep.load(name, "train", training=False, classes=validation)
    labels = np.array([int(y) for _, y in kept])
    np.testing.assert_array_equal(np.unique(labels), validation)
    _, all_labels = shipped_train_arrays(name)
    assert labels.size == np.isin(all_labels, validation).sum()


def shipped_train_arrays(name):
    import importlib

    return importlib.import_module(f"data_prep.{name}").load_arrays("train")


def test_paper_set_batches_and_examples_keep_to_their_classes():
    with mock_paper_data(NUM_EXAMPLES, PER_CLASS):
        present = np.unique(mocked_labels("cub200"))
        present = present[present < 100]
        fit, held_out = present[:8], present[-2:]
        batches = data_prep.class_ratio_batches(
            "cub200", 8, 0.5, seed=0, classes=fit, num_batches=6
        )
        seen = np.concatenate([y.numpy() for _, y in batches])
        assert np.isin(seen, fit).all() and np.unique(seen).size > 4
        kept = data_prep.load("cub200", "train", classes=held_out)
        labels = [int(y) for _, y in kept]
        assert labels and set(labels) == set(held_out.tolist())


@pytest.mark.parametrize(
    "classes, message",
    [
        ([150], "no examples"),
        ([1, 1], "repeats"),
        ([], "non-empty"),
        ([0.5], "integer"),
    ],
)
def test_bad_classes_are_named(classes, message):
    with pytest.raises(ValueError, match=message):
        data_prep.class_ratio_batches("glyphs", 32, 0.25, classes=np.array(classes))


def test_classes_of_the_test_split_are_refused():
    with pytest.raises(ValueError, match="train classes"):
        data_prep.load("glyphs", "test", classes=[100])
