"""Glyph data set: characters rendered in real fonts, split by class (issue 5).

`load_arrays` needs only numpy; `load` (tf.data through the TFDS builder) imports TensorFlow and
TensorFlow Datasets when called; rendering (`data_prep.glyphs.render`) needs Pillow.
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
    actual = storage.sha256_of(storage.SHIPPED_FILE)
    if actual != storage.SHIPPED_SHA256:
        raise storage.ChecksumError(
            f"glyph data file {storage.SHIPPED_FILE!r} has sha256 {actual}, expected {storage.SHIPPED_SHA256}"
        )
    import tensorflow_datasets as tfds

    from data_prep.glyphs import augment as augmentation
    from data_prep.glyphs import builder

    glyphs = builder.Glyphs(data_dir=data_dir)
    glyphs.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    dataset = glyphs.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    if augment:
        dataset = augmentation.augment_dataset(dataset, seed)
    return dataset


DEFAULT_RATIO = 0.25


def class_ratio_batches(
    batch_size: int = 128,
    ratio: float = DEFAULT_RATIO,
    seed: int | None = None,
    augment: bool = True,
    num_batches: int | None = None,
    sub_batches: int = 1,
    input_context=None,
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

    Returns:
        tf.data.Dataset of (images uint8 [m, 32, 32, 1], labels int64 [m]); with an
        `input_context`, this pipeline's per-replica batches of m / replicas.

    Raises:
        ValueError: bad batch_size / ratio (see `fl_embed.samplers.classes_per_batch`), or a
            batch that does not split across the replicas.
    """
    import tensorflow as tf

    from data_prep.glyphs import augment as augmentation
    from fl_embed.samplers import ClassRatioSampler, class_ratio_dataset

    images, labels = load_arrays("train")
    sampler = ClassRatioSampler(
        labels, batch_size=batch_size, ratio=ratio, seed=seed, sub_batches=sub_batches
    )
    images, labels = tf.constant(images), tf.constant(labels)

    def lookup(index):
        return tf.gather(images, index), tf.gather(labels, index)

    def augment_example(example, example_seed):
        return augmentation.augment(example[0], example_seed), example[1]

    return class_ratio_dataset(
        sampler,
        lookup,
        map_fn=augment_example if augment else None,
        num_batches=num_batches,
        map_seed=seed,
        random_map=augment,
        input_context=input_context,
    )
