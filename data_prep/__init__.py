"""Data pipelines: the paper's benchmarks (CUB-200-2011, Cars196, Stanford Online Products), glyphs
and Hangul.

`load(name, split)` gives preprocessed (image, label) examples; `class_ratio_batches(name)` gives
the training batches of section 3.5 (m examples from exactly C classes).
"""

import importlib
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from data_prep import paper_sets, preprocess
from data_prep.paper_sets import PAPER_SETS, DataSetNotFoundError
from fl_embed.samplers import (
    ClassRatioSampler,
    class_ratio_dataset,
    labels_of,
    positions_of_classes,
    source_lookup,
    tensor_lookup,
)

# Data sets shipped in the repository, each a package `data_prep.<name>` with `load` and
# `class_ratio_batches`.
SHIPPED_SETS = ("glyphs", "hangul")
NAMES = (*PAPER_SETS, *SHIPPED_SETS)

__all__ = [
    "NAMES",
    "PAPER_SETS",
    "DataSetNotFoundError",
    "check_dirs",
    "class_ratio_batches",
    "floor_metrics",
    "load",
    "train_classes",
    "validation_split",
]


def _check_name(name: str) -> None:
    """Raises ValueError for a name that is not one of `NAMES`."""
    if name not in NAMES:
        raise ValueError(f"Unknown data set {name!r}; use one of {list(NAMES)}.")


def train_classes(name: str) -> np.ndarray:
    """Class ids of the train split, increasing (every set trains on its first classes).

    Raises:
      ValueError: unknown name.
    """
    _check_name(name)
    if name in SHIPPED_SETS:
        from data_prep.glyphs import storage

        shipped = importlib.import_module(f"data_prep.{name}")
        return storage.split_classes(shipped.NUM_CLASSES, "train").astype(np.int64)
    return np.arange(*paper_sets.get_spec(name).class_range("train"), dtype=np.int64)


def validation_split(name: str, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The train classes split class-disjointly for tuning: (fit classes, validation classes).

    The last `fraction` of the train classes validate and the rest train, so a setting is chosen
    on classes its run never trained on and the test classes are never read ("A Metric Learning
    Reality Check", Musgrave et al. 2020, section 3).

    Args:
      name: a data set of `NAMES`.
      fraction: share of the train classes held out, in (0, 1); at least 2 classes each side.

    Returns:
      (fit class ids, validation class ids), int64, increasing.

    Raises:
      ValueError: unknown name, or a fraction leaving fewer than 2 classes on a side.
    """
    classes = train_classes(name)
    held_out = round(fraction * classes.size)
    if not 0.0 < fraction < 1.0 or held_out < 2 or classes.size - held_out < 2:
        raise ValueError(
            f"validation fraction {fraction} of {name}'s {classes.size} train classes leaves "
            f"{held_out} to validate and {classes.size - held_out} to train; each needs at least 2."
        )
    return classes[:-held_out], classes[-held_out:]


def _keep_classes(ds: tf.data.Dataset, classes) -> tf.data.Dataset:
    """The (image, label) examples of `ds` whose label is one of `classes`."""
    wanted = tf.constant(np.asarray(classes, dtype=np.int64))
    return ds.filter(lambda image, label: tf.reduce_any(tf.equal(label, wanted)))


def _check_classes_in_split(name: str, split: str, classes) -> None:
    """Raises ValueError unless `classes` are train classes and `split` is 'train'."""
    if classes is None:
        return
    if split != "train":
        raise ValueError(
            f"classes= picks train classes for tuning; the {split!r} split has none of them."
        )
    positions_of_classes(train_classes(name), classes)


def check_dirs(data_dir: str | None, manual_dir: str | None = None) -> None:
    """Raises before TFDS would fail deep inside (or try a download) on a bad directory.

    Raises:
      NotADirectoryError: data_dir is an existing file.
      FileNotFoundError: manual_dir is given but is not a directory.
    """
    if (
        data_dir is not None
        and os.path.exists(data_dir)
        and not os.path.isdir(data_dir)
    ):
        raise NotADirectoryError(f"data_dir {data_dir!r} is a file, not a directory.")
    if manual_dir is not None and not os.path.isdir(manual_dir):
        raise FileNotFoundError(
            f"manual_dir {manual_dir!r} is not a directory; put the downloaded archives in a "
            "folder and pass that."
        )


def _load_shipped(
    name: str, split: str, data_dir: str | None, training: bool, seed: int | None
) -> tf.data.Dataset:
    """Delegates to `data_prep.<name>.load` (glyphs, hangul), imported only when asked for."""
    shipped = importlib.import_module(f"data_prep.{name}")
    return shipped.load(split, data_dir=data_dir, augment=training, seed=seed)


def _with_seeds(ds: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
    """Pairs every element with a stateless seed Tensor [2] drawn from `seed`."""
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    return tf.data.Dataset.zip(ds, seeds)


def _decode_crop(
    image_bytes: tf.Tensor, training: bool, seed, scaling: str
) -> tf.Tensor:
    """Decodes an encoded image to RGB and applies section 3.5's preprocessing."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return preprocess.preprocess(image, training, seed, scaling)


def _indexed_train_split(
    name: str, data_dir: str | None, download: bool, manual_dir: str | None
) -> tuple[np.ndarray, Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]]:
    """Labels of the train split and an index -> (encoded image, label) lookup.

    Reads from TFDS's random-access data source when the data is ArrayRecord (images stay on
    disk); otherwise keeps the encoded images in memory.

    Returns:
      (labels int64 [n], lookup(index) -> (tf.string [], int64 [])).
    """
    spec = paper_sets.get_spec(name)
    try:
        source, positions, labels = paper_sets.random_access(
            name, "train", data_dir, download, manual_dir
        )
    except NotImplementedError as err:
        logging.info(
            "No random access (%s); holding the encoded %s images in memory.", err, name
        )
        encoded = paper_sets.examples(name, "train", data_dir, decode_images=False)
        return labels_of(encoded), tensor_lookup(encoded)
    record_spec = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64))
    read = source_lookup(
        source, record_spec, select=lambda r: (r["image"], r[spec.label_key])
    )
    position_table = tf.constant(positions)
    return labels, lambda index: read(tf.gather(position_table, index))


def _restricted(labels: np.ndarray, lookup, classes):
    """(labels, lookup) of the examples of `classes` only, looked up at their old positions."""
    positions = positions_of_classes(labels, classes)
    table = tf.constant(positions)
    return labels[positions], lambda index: lookup(tf.gather(table, index))


def load(
    name: str,
    split: str,
    data_dir: str | None = None,
    download: bool = False,
    manual_dir: str | None = None,
    training: bool | None = None,
    seed: int | None = None,
    scaling: str = "inception",
    shuffle_buffer: int = 2048,
    classes=None,
) -> tf.data.Dataset:
    """Preprocessed (image, label) examples of a paper data set or the glyph set.

    Paper sets: section 4's class-disjoint split, section 3.5's preprocessing (256x256 resize, then
    a random 227x227 crop + mirror when training, a center crop otherwise). Glyphs and Hangul are
    handed to `data_prep.glyphs.load` / `data_prep.hangul.load` unchanged (uint8 [32, 32, 1] images).

    Args:
      name: 'cub200', 'cars196', 'sop', 'glyphs' or 'hangul'.
      split: 'train' or 'test'.
      data_dir: TFDS data directory (default ~/tensorflow_datasets).
      download: run TFDS `download_and_prepare` first.
      manual_dir: folder of archives downloaded by hand (TFDS `manual_dir`; implies download).
      training: augment and shuffle; default True for 'train', False for 'test'.
      seed: seed of shuffling and augmentation; None for fresh randomness.
      scaling: pixel scaling of the backbone ('inception' -> [-1, 1], 'unit', 'raw').
      shuffle_buffer: examples in the shuffle buffer when training.
      classes: None for the whole split; else train class ids to keep (the split must be
        'train'), e.g. the validation classes of `validation_split`.

    Returns:
      Dataset of (image float32 [227, 227, 3], label int64 []) for paper sets, parallel-mapped
      and prefetched; test order is TFDS order.

    Raises:
      ValueError: unknown name, split or scaling.
      NotADirectoryError / FileNotFoundError: data_dir is a file, manual_dir is not a folder.
      DataSetNotFoundError: the data is not in data_dir and could not be prepared.
    """
    _check_name(name)
    paper_sets.check_split(split)
    _check_classes_in_split(name, split, classes)
    check_dirs(data_dir, manual_dir)
    training = split == "train" if training is None else bool(training)
    if name in SHIPPED_SETS:
        ds = _load_shipped(name, split, data_dir, training, seed)
        return ds if classes is None else _keep_classes(ds, classes)
    preprocess.check_scaling(scaling)
    # Shuffle encoded images (small), decode after: the buffer never holds decoded pictures.
    ds = paper_sets.examples(
        name, split, data_dir, download, manual_dir, decode_images=False
    )
    if classes is not None:
        ds = _keep_classes(ds, classes)
    if training:
        ds = _with_seeds(ds.shuffle(shuffle_buffer, seed=seed), seed)
        ds = ds.map(
            lambda example, s: (_decode_crop(example[0], True, s, scaling), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = ds.map(
            lambda image, label: (_decode_crop(image, False, None, scaling), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def class_ratio_batches(
    name: str,
    batch_size: int = 128,
    ratio: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
    manual_dir: str | None = None,
    scaling: str = "inception",
    num_batches: int | None = None,
    sub_batches: int = 1,
    input_context: tf.distribute.InputContext | None = None,
    augment: bool = True,
    classes=None,
) -> tf.data.Dataset:
    """Training batches of section 3.5: m examples from exactly C = round(ratio * m) train classes.

    Images are looked up by index after sampling: from TFDS's random-access data source when the
    data was prepared as ArrayRecord (streams from disk, any size), otherwise from the encoded
    images held in memory (fine for CUB and Cars; for SOP prepare with
    `--file_format=array_record`). Decoding, the random crop and mirror run after sampling.

    Args:
      name: 'cub200', 'cars196', 'sop', or 'glyphs' / 'hangul' (handed to
        `data_prep.<name>.class_ratio_batches`: augmented uint8 [m, 32, 32, 1] images, default
        ratio 0.25 / 0.75; the other arguments are unused).
      batch_size: m (paper: 128).
      ratio: C/m; default the paper's (0.25 for CUB/Cars, 0.75 for SOP).
      seed: seed of sampling and augmentation; the same seed repeats the batches.
      data_dir, download, manual_dir, scaling: as in `load`.
      num_batches: batches per iteration; None for an endless stream.
      sub_batches, input_context: batches split across replicas, see
        `fl_embed.samplers.ClassRatioSampler` and `class_ratio_dataset`.
      augment: random augmentation (paper sets: random crop and mirror, else the centre crop;
        glyphs: `data_prep.glyphs.augment`).
      classes: None for every train class; else the train class ids to sample from, e.g. the
        fit classes of `validation_split`.

    Returns:
      Dataset of (images float32 [m, 227, 227, 3], labels int64 [m]); with an `input_context`,
      this pipeline's per-replica batches of m / replicas.

    Raises:
      ValueError: unknown name, bad batch_size / ratio (see `classes_per_batch`), num_batches
        that is not None or >= 1.
      NotADirectoryError / FileNotFoundError: data_dir is a file, manual_dir is not a folder.
      DataSetNotFoundError: the data is not in data_dir and could not be prepared.
    """
    _check_name(name)
    check_dirs(data_dir, manual_dir)
    _check_classes_in_split(name, "train", classes)
    if name in SHIPPED_SETS:
        shipped = importlib.import_module(f"data_prep.{name}")
        ratio = shipped.DEFAULT_RATIO if ratio is None else ratio
        return shipped.class_ratio_batches(
            batch_size,
            ratio,
            seed,
            augment=augment,
            num_batches=num_batches,
            sub_batches=sub_batches,
            input_context=input_context,
            classes=classes,
        )
    spec = paper_sets.get_spec(name)
    preprocess.check_scaling(scaling)
    ratio = spec.ratio if ratio is None else ratio
    labels, lookup = _indexed_train_split(name, data_dir, download, manual_dir)
    if classes is not None:
        labels, lookup = _restricted(labels, lookup, classes)
    sampler = ClassRatioSampler(
        labels, batch_size=batch_size, ratio=ratio, seed=seed, sub_batches=sub_batches
    )

    def decode_and_crop(example, example_seed):
        return _decode_crop(example[0], augment, example_seed, scaling), example[1]

    return class_ratio_dataset(
        sampler,
        lookup,
        map_fn=decode_and_crop,
        num_batches=num_batches,
        map_seed=seed,
        random_map=True,
        input_context=input_context,
    )


def floor_metrics(
    name: str, split: str = "test", seed: int = 0, ks=None
) -> dict[str, float] | None:
    """Metrics of a data set's floor embedding (the shipped sets: raw pixels, ~30 s), None if it
    has none. `ks`: the Recall@K cut-offs, default the data set's.

    Raises:
      ValueError: unknown name.
    """
    _check_name(name)
    baseline = importlib.import_module("data_prep.glyphs.baseline")
    if name not in baseline.DATASETS:
        return None
    ks = baseline.DATASET_KS[name] if ks is None else ks
    return baseline.raw_pixel_baseline(split, seed, name, ks)
