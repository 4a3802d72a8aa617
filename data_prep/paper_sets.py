"""The three benchmarks of the paper through their TF-Datasets builders, split by class id (section 4).

The paper follows [30] (Oh Song et al., lifted structure): the first half of the classes trains,
the second half tests, so test classes are never seen in training. TFDS's own train/test splits of
CUB and Cars split each class's images instead, so both TFDS splits are pooled and filtered by
class id. SOP's TFDS splits come from Ebay_train.txt / Ebay_test.txt, which already are the class
split; the class-id filter is kept there as a guard. Labels keep their original ids (test labels of
CUB are 100..199), so nothing is renumbered silently.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from fl_embed.samplers import source_lookup

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class PaperSet:
    """One benchmark of section 4.

    Attributes:
      tfds_name: name of the TFDS builder.
      label_key: feature holding the class id (0-based, in the data set's own class order).
      num_classes: classes in the whole data set.
      num_train_classes: the first classes, used for training; the rest test.
      num_images: images in the whole data set (paper, section 4).
      tfds_splits: TFDS splits to read for our train / test split.
      ratio: the paper's C/m for the class-ratio sampler (section 3.5).
      archives: file names TFDS looks for in `manual_dir`, and where to get them.
    """

    tfds_name: str
    label_key: str
    num_classes: int
    num_train_classes: int
    num_images: int
    tfds_splits: dict
    ratio: float
    archives: str

    def class_range(self, split: str) -> tuple[int, int]:
        """[first, last) class ids of `split`."""
        return (
            (0, self.num_train_classes)
            if split == "train"
            else (self.num_train_classes, self.num_classes)
        )


PAPER_SETS = {
    "cub200": PaperSet(
        tfds_name="caltech_birds2011",
        label_key="label",
        num_classes=200,
        num_train_classes=100,
        num_images=11_788,
        tfds_splits={"train": "train+test", "test": "train+test"},
        ratio=0.25,
        archives="CUB_200_2011.tgz and segmentations.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/",
    ),
    "cars196": PaperSet(
        tfds_name="cars196",
        label_key="label",
        num_classes=196,
        num_train_classes=98,
        num_images=16_185,
        tfds_splits={"train": "train+test", "test": "train+test"},
        ratio=0.25,
        archives=(
            "cars_train.tgz, cars_test.tgz, cars_test_annos_withlabels.mat and car_devkit.tgz from "
            "https://ai.stanford.edu/~jkrause/cars/car_dataset.html (mirrors exist, e.g. on Kaggle)"
        ),
    ),
    "sop": PaperSet(
        tfds_name="stanford_online_products",
        label_key="class_id",
        num_classes=22_634,
        num_train_classes=11_318,
        num_images=120_053,
        tfds_splits={"train": "train", "test": "test"},
        ratio=0.75,
        archives="Stanford_Online_Products.zip from https://cvgl.stanford.edu/projects/lifted_struct/",
    ),
}


class DataSetNotFoundError(FileNotFoundError):
    """A paper data set is not prepared in data_dir and could not be prepared; says how to get it."""


def get_spec(name: str) -> PaperSet:
    """The `PaperSet` of `name`.

    Raises:
      ValueError: unknown name.
    """
    if name not in PAPER_SETS:
        raise ValueError(
            f"Unknown data set {name!r}; use one of {sorted(PAPER_SETS)} or 'glyphs'."
        )
    return PAPER_SETS[name]


def check_split(split: str) -> None:
    """Raises ValueError unless split is 'train' or 'test' (the paper's class-disjoint halves)."""
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split {split!r}; use 'train' (first half of the classes) or 'test' (second half)."
        )


def how_to_get(spec: PaperSet, data_dir: str | None) -> str:
    """Instructions for preparing `spec` in `data_dir`."""
    where = data_dir or "~/tensorflow_datasets"
    return (
        f"TFDS data set {spec.tfds_name!r} is not prepared in {where}. Either pass download=True "
        f"(needs network), or download {spec.archives}, put the files unchanged in a folder and pass "
        f"download=True, manual_dir=<that folder>; or run "
        f"`tfds build {spec.tfds_name} --data_dir={where} --manual_dir=<that folder>`."
    )


def prepare(
    spec: PaperSet, data_dir: str | None, download: bool, manual_dir: str | None
) -> tfds.core.DatasetBuilder:
    """The TFDS builder of `spec`, prepared if asked to.

    Args:
      spec: the data set.
      data_dir: TFDS data directory; None for the TFDS default.
      download: run `download_and_prepare` (downloading, or reading archives from manual_dir).
      manual_dir: folder with archives downloaded by hand (implies download=True).

    Returns:
      The builder.

    Raises:
      DataSetNotFoundError: preparing failed (message says why and how to fix it).
    """
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if download or manual_dir:
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as err:  # noqa: BLE001 - any TFDS/network failure becomes one clear message
            raise DataSetNotFoundError(
                f"Preparing {spec.tfds_name} failed ({type(err).__name__}: {str(err).splitlines()[0][:300]}). "
                + how_to_get(spec, data_dir)
            ) from None
    return builder


def size_mismatch(spec: PaperSet, split_sizes: dict) -> str | None:
    """Compares prepared TFDS split sizes with the paper's image count.

    Args:
      spec: the data set.
      split_sizes: {TFDS split name: number of examples} as prepared; empty if unknown.

    Returns:
      A warning text if the total differs from `spec.num_images`, else None.
    """
    total = sum(split_sizes.values())
    if not total or total == spec.num_images:
        return None
    return (
        f"{spec.tfds_name} holds {total} images, the paper's data set {spec.num_images}; "
        "the class split may not match the paper's."
    )


def _warn_on_size(builder, spec: PaperSet) -> None:
    """Logs a warning when the prepared data set is not the size the paper used."""
    try:
        sizes = {
            name: info.num_examples for name, info in dict(builder.info.splits).items()
        }
    except (TypeError, AttributeError):  # split sizes unknown (e.g. mocked TFDS)
        return
    warning = size_mismatch(spec, sizes)
    if warning:
        logging.warning(warning)


def _read(
    builder, spec: PaperSet, tfds_split: str, data_dir: str | None, decoders=None
) -> tf.data.Dataset:
    """`builder.as_dataset` with a missing-data error turned into `DataSetNotFoundError`."""
    try:
        return builder.as_dataset(
            split=tfds_split, decoders=decoders, shuffle_files=False
        )
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as err:
        logging.info("TFDS could not read %s: %s", spec.tfds_name, err)
        raise DataSetNotFoundError(how_to_get(spec, data_dir)) from None


def class_filter(spec: PaperSet, split: str):
    """Predicate on a label Tensor: True for the classes of `split`."""
    low, high = spec.class_range(split)
    return lambda label: tf.logical_and(label >= low, label < high)


def examples(
    name: str,
    split: str,
    data_dir: str | None = None,
    download: bool = False,
    manual_dir: str | None = None,
    decode_images: bool = True,
) -> tf.data.Dataset:
    """(image, label) pairs of the paper's class-disjoint split, before any preprocessing.

    Args:
      name: 'cub200', 'cars196' or 'sop'.
      split: 'train' (first half of the classes) or 'test' (the rest).
      data_dir: TFDS data directory.
      download: run TFDS `download_and_prepare` first.
      manual_dir: folder of archives downloaded by hand, passed to TFDS as `manual_dir`.
      decode_images: False keeps images as encoded bytes (scalar tf.string).

    Returns:
      Dataset of (image uint8 [H, W, 3] or tf.string [], label int64 []), in TFDS order.

    Raises:
      ValueError: unknown name or split.
      DataSetNotFoundError: the data is not in data_dir and could not be prepared.
    """
    spec = get_spec(name)
    check_split(split)
    builder = prepare(spec, data_dir, download, manual_dir)
    decoders = None if decode_images else {"image": tfds.decode.SkipDecoding()}
    try:
        ds = _read(builder, spec, spec.tfds_splits[split], data_dir, decoders)
    except NotImplementedError:
        # ArrayRecord preparations have no tf.data reader in TFDS, only random access.
        return _examples_from_source(name, split, data_dir, decode_images)
    _warn_on_size(builder, spec)
    keep = class_filter(spec, split)
    ds = ds.map(
        lambda ex: (ex["image"], tf.cast(ex[spec.label_key], tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.filter(lambda image, label: keep(label))


def _examples_from_source(
    name: str, split: str, data_dir: str | None, decode_images: bool
) -> tf.data.Dataset:
    """`examples` read through the random-access data source, for ArrayRecord preparations."""
    spec = get_spec(name)
    source, positions, _ = random_access(name, split, data_dir)
    record_spec = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64))
    read = source_lookup(
        source, record_spec, select=lambda r: (r["image"], r[spec.label_key])
    )
    ds = tf.data.Dataset.from_tensor_slices(positions).map(
        read, num_parallel_calls=tf.data.AUTOTUNE
    )
    if decode_images:
        ds = ds.map(
            lambda image, label: (
                tf.io.decode_image(image, channels=3, expand_animations=False),
                label,
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds


def random_access(
    name: str,
    split: str,
    data_dir: str | None = None,
    download: bool = False,
    manual_dir: str | None = None,
):
    """Random-access view of a split for the class-ratio sampler; images stay encoded on disk.

    Needs the data prepared in TFDS's ArrayRecord format (`tfds build ... --file_format=array_record`);
    a TFRecord-only preparation raises `NotImplementedError` so the caller can fall back.

    Args:
      name, split, data_dir, download, manual_dir: as in `examples`.

    Returns:
      (source, positions, labels): `source[positions[i]]` is the i-th example of the split, a
      dict with an encoded "image" and the label feature; `labels` int64 [n] are their classes.

    Raises:
      ValueError: unknown name or split.
      DataSetNotFoundError: the data is not in data_dir and could not be prepared.
      NotImplementedError: the prepared files do not support random access.
    """
    spec = get_spec(name)
    check_split(split)
    builder = prepare(spec, data_dir, download, manual_dir)
    decoders = {"image": tfds.decode.SkipDecoding()}
    try:
        source = builder.as_data_source(
            split=spec.tfds_splits[split], decoders=decoders
        )
    except (AssertionError, FileNotFoundError) as err:
        logging.info("TFDS could not read %s: %s", spec.tfds_name, err)
        raise DataSetNotFoundError(how_to_get(spec, data_dir)) from None
    except Exception as err:  # noqa: BLE001 - TFDS raises several types for non-random-access formats
        raise NotImplementedError(
            f"{spec.tfds_name} in {data_dir} has no random access: {err}"
        ) from None
    all_labels = _source_labels(source, spec.label_key)
    low, high = spec.class_range(split)
    positions = np.flatnonzero((all_labels >= low) & (all_labels < high)).astype(
        np.int64
    )
    return source, positions, all_labels[positions]


def _source_labels(source, label_key: str, chunk: int = 4096) -> np.ndarray:
    """Labels of every record of a random-access source, read in chunks."""
    labels = []
    for start in range(0, len(source), chunk):
        records = [source[i] for i in range(start, min(start + chunk, len(source)))]
        labels.extend(int(r[label_key]) for r in records)
    return np.asarray(labels, dtype=np.int64)
