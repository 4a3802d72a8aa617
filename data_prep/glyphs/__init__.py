"""Glyph data set: characters rendered in real fonts, split by class (issue 5).

`load_arrays` needs only numpy; `load` (tf.data through the TFDS builder) imports TensorFlow and
TensorFlow Datasets when called; rendering (`data_prep.glyphs.render`) needs Pillow. The Hangul
set (`data_prep.hangul`) is served through `shipped_dataset` and `array_batches` too.
"""

import numpy as np

from data_prep.glyphs import storage

IMAGE_SIZE = 32
NUM_CLASSES = 164
SPLITS = storage.SPLITS


def load_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of the shipped data set as numpy arrays, checksum verified.

    Args:
        split: "train" (first half of the classes) or "test" (second half).

    Returns:
        images uint8 [n, 32, 32, 1] (ink high) and labels int64 [n] (global class indices).

    Raises:
        ValueError: for an unknown split.
        storage.ChecksumError: if the shipped file differs from the recorded checksum.
    """
    storage.split_classes(NUM_CLASSES, split)
    return storage.select_split(storage.read_npz(), split)


def shipped_dataset(
    builder_class,
    shipped: storage.ShippedFile,
    split: str,
    data_dir: str | None,
    augment: bool,
    seed: int | None,
    **ranges: float,
):
    """One split of a shipped .npz as a tf.data.Dataset, prepared by its TFDS builder.

    Args:
        builder_class: the TFDS builder serving the file (`builder.Glyphs`, `Hangul`).
        shipped: the file; its checksum is verified first.
        split, data_dir, augment, seed: as in `load`.
        **ranges: `augment.augment`'s max_* arguments.

    Returns:
        tf.data.Dataset of (image uint8 [32, 32, 1], label int64), in a fixed order.

    Raises:
        storage.ChecksumError: if the file differs from the recorded checksum.
    """
    storage.verify(shipped.path, shipped.sha256)
    import tensorflow_datasets as tfds

    from data_prep.glyphs import augment as augmentation

    prepared = builder_class(data_dir=data_dir)
    prepared.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    dataset = prepared.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    if augment:
        dataset = augmentation.augment_dataset(dataset, seed, **ranges)
    return dataset


def load(
    split: str,
    data_dir: str | None = None,
    augment: bool = False,
    seed: int | None = None,
):
    """One split of the shipped data set as a tf.data.Dataset, prepared by the TFDS builder.

    The first call prepares the TFDS copy under data_dir from the shipped file (a few seconds, no
    network); later calls read it. The shipped file's checksum is verified on every call.

    Args:
        split: "train" or "test".
        data_dir: TFDS data directory; None for TFDS's default (~/tensorflow_datasets).
        augment: apply `augment.augment` (rotation, scale, shift, stroke width) to each image.
        seed: seed of the augmentation draws; None for nondeterministic draws.

    Returns:
        tf.data.Dataset of (image uint8 [32, 32, 1], label int64), in a fixed order.

    Raises:
        ValueError: for an unknown split.
        storage.ChecksumError: if the shipped file differs from the recorded checksum.
    """
    storage.split_classes(NUM_CLASSES, split)
    from data_prep.glyphs import builder

    return shipped_dataset(
        builder.Glyphs, storage.SHIPPED, split, data_dir, augment, seed
    )


DEFAULT_RATIO = 0.25


def array_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    ratio: float,
    seed: int | None,
    augment: bool,
    num_batches: int | None,
    sub_batches: int,
    input_context,
    **ranges: float,
):
    """Class-ratio batches (section 3.5) of a split held in memory, augmented after sampling.

    Args:
        images: uint8 [n, H, W, 1]; labels: int64 [n].
        batch_size, ratio, seed, augment, num_batches, sub_batches, input_context: as in
            `class_ratio_batches`.
        **ranges: `augment.augment`'s max_* arguments.

    Returns:
        tf.data.Dataset of (images uint8 [m, H, W, 1], labels int64 [m]).
    """
    import tensorflow as tf

    from data_prep.glyphs import augment as augmentation
    from fl_embed.samplers import ClassRatioSampler, class_ratio_dataset

    sampler = ClassRatioSampler(
        labels, batch_size=batch_size, ratio=ratio, seed=seed, sub_batches=sub_batches
    )
    images, labels = tf.constant(images), tf.constant(labels)

    def lookup(index):
        return tf.gather(images, index), tf.gather(labels, index)

    def augment_example(example, example_seed):
        return augmentation.augment(example[0], example_seed, **ranges), example[1]

    return class_ratio_dataset(
        sampler,
        lookup,
        map_fn=augment_example if augment else None,
        num_batches=num_batches,
        map_seed=seed,
        random_map=augment,
        input_context=input_context,
    )


def class_ratio_batches(
    batch_size: int = 128,
    ratio: float = DEFAULT_RATIO,
    seed: int | None = None,
    augment: bool = True,
    num_batches: int | None = None,
    sub_batches: int = 1,
    input_context=None,
    classes=None,
):
    """Training batches of section 3.5 from the glyph train split: m examples, exactly C classes.

    The train split (8,200 small images) is held in memory; `fl_embed.samplers.ClassRatioSampler`
    picks the indices and `augment.augment` runs on each example after sampling.

    Args:
        batch_size: m (paper: 128).
        ratio: C/m, default 0.25 as for CUB-200-2011 (32 of the 82 train classes per batch).
        seed: seed of sampling and augmentation; the same seed repeats the batches.
        augment: apply the random rotation / scale / shift / stroke augmentation.
        num_batches: batches per iteration; None for an endless stream.
        sub_batches, input_context: batches split across replicas, see
            `fl_embed.samplers.ClassRatioSampler` and `class_ratio_dataset`.
        classes: None for every train class; else the train class ids to sample from.

    Returns:
        tf.data.Dataset of (images uint8 [m, 32, 32, 1], labels int64 [m]); with an
        `input_context`, this pipeline's per-replica batches of m / replicas.

    Raises:
        ValueError: bad batch_size / ratio (see `fl_embed.samplers.classes_per_batch`), or a
            batch that does not split across the replicas.
    """
    images, labels = load_arrays("train")
    if classes is not None:
        from fl_embed.samplers import positions_of_classes

        kept = positions_of_classes(labels, classes)
        images, labels = images[kept], labels[kept]
    return array_batches(
        images,
        labels,
        batch_size,
        ratio,
        seed,
        augment,
        num_batches,
        sub_batches,
        input_context,
    )
