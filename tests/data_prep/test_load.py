"""data_prep.load and class_ratio_batches on mocked TFDS data with the real builders' feature specs."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import data_prep
from data_prep import paper_sets
from data_prep.testing import fake_labels, mock_paper_data

NUM_EXAMPLES = 120
PER_CLASS = 4


def mocked_labels(name):
    """The labels the mock gives one TFDS split of `name`."""
    spec = data_prep.PAPER_SETS[name]
    return fake_labels(NUM_EXAMPLES, spec.num_classes, PER_CLASS)


@pytest.fixture
def mocked():
    with mock_paper_data(NUM_EXAMPLES, PER_CLASS):
        yield


@pytest.mark.parametrize("name", ["cub200", "cars196", "sop"])
def test_splits_are_class_disjoint_halves_of_the_pooled_data(mocked, name):
    spec = data_prep.PAPER_SETS[name]
    labels = mocked_labels(name)
    copies = {"cub200": 2, "cars196": 2, "sop": 1}[
        name
    ]  # CUB and Cars pool both TFDS splits
    for split, keep in [
        ("train", labels < spec.num_train_classes),
        ("test", labels >= spec.num_train_classes),
    ]:
        got = [int(y) for _, y in data_prep.load(name, split, training=False)]
        assert sorted(got) == sorted(np.tile(labels[keep], copies).tolist())
        assert keep.any()


def test_paper_class_counts():
    counts = {
        n: (s.num_train_classes, s.num_classes - s.num_train_classes)
        for n, s in data_prep.PAPER_SETS.items()
    }
    assert counts == {
        "cub200": (100, 100),
        "cars196": (98, 98),
        "sop": (11_318, 11_316),
    }


def test_prepared_size_is_checked_against_the_paper():
    spec = data_prep.PAPER_SETS["cub200"]
    assert paper_sets.size_mismatch(spec, {"train": 5994, "test": 5794}) is None
    assert "11788" in paper_sets.size_mismatch(spec, {"train": 5994})
    assert paper_sets.size_mismatch(spec, {}) is None


def test_training_images_are_227_crops_scaled_to_inception_range(mocked):
    images = [x.numpy() for x, _ in data_prep.load("cub200", "train", seed=0).take(4)]
    for image in images:
        assert image.shape == (227, 227, 3) and image.dtype == np.float32
        assert image.min() >= -1.0 and image.max() <= 1.0


def test_seeded_training_pipeline_repeats(mocked):
    def first_two():
        return [
            (x.numpy(), int(y))
            for x, y in data_prep.load("cars196", "train", seed=3).take(2)
        ]

    (a, la), (b, lb) = first_two()
    (c, lc), (d, ld) = first_two()
    assert (la, lb) == (lc, ld)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize("name, ratio, classes", [("cub200", None, 4), ("sop", 0.5, 8)])
def test_class_ratio_batches_hold_exactly_c_train_classes(mocked, name, ratio, classes):
    spec = data_prep.PAPER_SETS[name]
    batches = data_prep.class_ratio_batches(
        name, batch_size=16, ratio=ratio, seed=1, num_batches=2
    )
    for images, labels in batches:
        assert images.shape == (16, 227, 227, 3)
        assert len(np.unique(labels.numpy())) == classes
        assert labels.numpy().max() < spec.num_train_classes


def test_class_ratio_batches_repeat_under_a_seed(mocked):
    def run():
        return [
            (x.numpy(), y.numpy())
            for x, y in data_prep.class_ratio_batches(
                "cars196", 16, seed=4, num_batches=1
            )
        ]

    (x1, y1), (x2, y2) = run()[0], run()[0]
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(x1, x2)


def test_class_ratio_batches_fall_back_to_memory_without_random_access(
    mocked, monkeypatch
):
    def no_random_access(*args, **kwargs):
        raise NotImplementedError("tfrecord")

    monkeypatch.setattr(paper_sets, "random_access", no_random_access)
    _, labels = next(
        iter(
            data_prep.class_ratio_batches("sop", 16, ratio=0.25, seed=0, num_batches=1)
        )
    )
    assert len(np.unique(labels.numpy())) == 4


def test_array_record_data_is_read_through_random_access(mocked, monkeypatch):
    def no_tf_data_reader(self, *args, **kwargs):
        raise NotImplementedError(
            "`.as_dataset()` not implemented for ArrayRecord files."
        )

    monkeypatch.setattr(tfds.core.DatasetBuilder, "as_dataset", no_tf_data_reader)
    labels = mocked_labels("cub200")
    got = [int(y) for _, y in data_prep.load("cub200", "test")]
    assert sorted(got) == sorted(np.tile(labels[labels >= 100], 2).tolist())


def test_unknown_name_raises_with_the_choices():
    with pytest.raises(ValueError, match="cub200"):
        data_prep.load("cub2011", "train")


def test_unknown_split_raises_with_the_choices():
    with pytest.raises(ValueError, match="'train'.*'test'"):
        data_prep.load("cub200", "validation")


def test_unknown_scaling_raises(mocked):
    with pytest.raises(ValueError, match="pixel scaling"):
        data_prep.load("cub200", "test", scaling="caffe")


def test_bad_ratio_raises(mocked):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        data_prep.class_ratio_batches("cub200", ratio=1.5)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(data_prep.DataSetNotFoundError, match="manual_dir") as info:
        data_prep.load("cars196", "train", data_dir=str(tmp_path))
    assert "download=True" in str(info.value) and str(tmp_path) in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_data_for_class_ratio_batches_says_how_to_get_it(tmp_path):
    with pytest.raises(
        data_prep.DataSetNotFoundError, match="Stanford_Online_Products.zip"
    ):
        data_prep.class_ratio_batches("sop", data_dir=str(tmp_path))


def test_failed_download_passes_manual_dir_and_explains(tmp_path, monkeypatch):
    seen = {}

    def failing_download(self, download_config=None, **kwargs):
        seen["manual_dir"] = download_config.manual_dir
        raise tfds.download.DownloadError("Failed to get url: no network")

    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", failing_download
    )
    (tmp_path / "archives").mkdir()  # a manual_dir that is no folder is refused earlier
    with pytest.raises(
        data_prep.DataSetNotFoundError, match="CUB_200_2011.tgz"
    ) as info:
        data_prep.load(
            "cub200",
            "train",
            data_dir=str(tmp_path),
            manual_dir=str(tmp_path / "archives"),
        )
    assert "no network" in str(info.value)
    assert str(seen["manual_dir"]) == str(tmp_path / "archives")


def test_glyphs_are_delegated_to_the_glyph_module(monkeypatch):
    glyphs = pytest.importorskip("data_prep.glyphs")
    calls = []
    marker = tf.data.Dataset.range(1)

    def fake_load(split, data_dir=None, augment=False, seed=None):
        calls.append((split, data_dir, augment, seed))
        return marker

    monkeypatch.setattr(glyphs, "load", fake_load)
    assert data_prep.load("glyphs", "train", data_dir="/d", seed=2) is marker
    assert data_prep.load("glyphs", "test") is marker
    assert calls == [("train", "/d", True, 2), ("test", None, False, None)]


def test_unaugmented_class_ratio_batches_are_centre_crops_of_train_images(mocked):
    centre = [x.numpy() for x, _ in data_prep.load("cub200", "train", training=False)]
    plain = data_prep.class_ratio_batches("cub200", 16, seed=2, num_batches=1)
    unaugmented = data_prep.class_ratio_batches(
        "cub200", 16, seed=2, num_batches=1, augment=False
    )

    def found(image):
        return any(np.array_equal(image, c) for c in centre)

    (augmented, labels), (crops, same_labels) = (
        next(iter(plain)),
        next(iter(unaugmented)),
    )
    np.testing.assert_array_equal(labels, same_labels)
    assert all(found(image) for image in crops.numpy())
    assert not all(found(image) for image in augmented.numpy())


def test_glyph_batches_are_delegated_with_the_augment_choice(monkeypatch):
    glyphs = pytest.importorskip("data_prep.glyphs")
    calls = []

    def fake_batches(batch_size, ratio, seed, augment=True, **kwargs):
        calls.append((batch_size, ratio, seed, augment))
        return "batches"

    monkeypatch.setattr(glyphs, "class_ratio_batches", fake_batches)
    assert (
        data_prep.class_ratio_batches("glyphs", 16, 0.5, 3, augment=False) == "batches"
    )
    assert data_prep.class_ratio_batches("glyphs", 8, seed=1) == "batches"
    assert calls == [(16, 0.5, 3, False), (8, glyphs.DEFAULT_RATIO, 1, True)]


def test_only_the_shipped_sets_have_a_floor(monkeypatch):
    baseline = pytest.importorskip("data_prep.glyphs.baseline")
    monkeypatch.setattr(
        baseline,
        "raw_pixel_baseline",
        lambda split, seed, name, ks: {
            "split": split,
            "seed": seed,
            "name": name,
            "ks": ks,
        },
    )
    assert data_prep.floor_metrics("glyphs", seed=4) == {
        "split": "test",
        "seed": 4,
        "name": "glyphs",
        "ks": (1, 2, 4, 8),
    }
    assert data_prep.floor_metrics("hangul")["ks"] == (1, 10, 100)
    assert data_prep.floor_metrics("cub200") is None
    with pytest.raises(ValueError, match="Unknown data set"):
        data_prep.floor_metrics("mnist")
