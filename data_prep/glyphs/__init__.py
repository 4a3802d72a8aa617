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
