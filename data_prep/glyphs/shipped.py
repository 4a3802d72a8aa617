"""A data set shipped in the repository as one .npz (glyphs, Hangul): its arrays, its tf.data
copy prepared by a TFDS builder, and its training batches; one implementation for every such set.

Only numpy is imported here: TensorFlow and TensorFlow Datasets are imported when `load` or
`class_ratio_batches` is called.
"""

import importlib
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from data_prep.glyphs import storage


class ShippedSet(NamedTuple):
    """What tells one shipped set from another.

    Attributes:
        num_classes: classes of the whole set; the train split is the first half.
        file: the .npz and its recorded checksum.
        builder: "module:Class" of its TFDS builder (imported when first needed).
        default_ratio: C/m of its training batches.
        augment_ranges: `augment.augment`'s max_* arguments ({} for the defaults).
    """

    num_classes: int
    file: storage.ShippedFile
    builder: str
    default_ratio: float
    augment_ranges: Mapping[str, float]

    def load_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """One split of the shipped data set as numpy arrays, checksum verified.

        Args:
            split: "train" (first half of the classes) or "test" (second half).

        Returns:
            images uint8 [n, 32, 32, 1] (ink high) and labels int64 [n] (global class indices).

        Raises:
            ValueError: for an unknown split.
            storage.ChecksumError: if the shipped file differs from the recorded checksum.
        """
        storage.split_classes(self.num_classes, split)
        arrays = storage.read_npz(
            self.file.path, self.file.sha256, self.file.regenerate
        )
        return storage.select_split(arrays, split)

    def load(
        self,
        split: str,
        data_dir: str | None = None,
        augment: bool = False,
        seed: int | None = None,
    ):
        """One split of the shipped data set as a tf.data.Dataset, prepared by its TFDS builder.

        The first call prepares the TFDS copy under data_dir from the shipped file (seconds, no
        network); later calls read it. The shipped file's checksum is verified on every call.

        Args:
            split: "train" or "test".
            data_dir: TFDS data directory; None for TFDS's default (~/tensorflow_datasets).
            augment: apply `augment.augment` (rotation, scale, shift, stroke width) with the
                set's `augment_ranges` to each image.
            seed: seed of the augmentation draws; None for nondeterministic draws.

        Returns:
            tf.data.Dataset of (image uint8 [32, 32, 1], label int64), in a fixed order.

        Raises:
            ValueError: for an unknown split.
            storage.ChecksumError: if the shipped file differs from the recorded checksum.
            PermissionError: the TFDS copy is not prepared yet and data_dir is not writable.
        """
        storage.split_classes(self.num_classes, split)
        storage.verify(self.file.path, self.file.sha256)
        import tensorflow_datasets as tfds

        from data_prep.glyphs import augment as augmentation

        module, name = self.builder.split(":")
        prepared = getattr(importlib.import_module(module), name)(data_dir=data_dir)
        try:
            prepared.download_and_prepare(
                download_config=tfds.download.DownloadConfig(try_download_gcs=False)
            )
        except PermissionError as err:
            raise PermissionError(
                f"cannot prepare the {name} set's TFDS copy in data_dir "
                f"{prepared.data_dir!r}: {err.strerror} ({err.filename}); pass a writable "
                "data_dir (once prepared, it is only read)."
            ) from None
        dataset = prepared.as_dataset(
            split=split, as_supervised=True, shuffle_files=False
        )
        if augment:
            dataset = augmentation.augment_dataset(dataset, seed, **self.augment_ranges)
        return dataset

    def class_ratio_batches(
        self,
        batch_size: int = 128,
        ratio: float | None = None,
        seed: int | None = None,
        augment: bool = True,
        num_batches: int | None = None,
        sub_batches: int = 1,
        input_context=None,
        classes=None,
    ):
        """Training batches of section 3.5 from the train split: m examples, exactly C classes.

        The train split is held in memory; `fl_embed.samplers.ClassRatioSampler` picks the
        indices and `augment.augment` runs on each example after sampling.

        Args:
            batch_size: m (paper: 128).
            ratio: C/m; None for the set's `default_ratio`.
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
            ValueError: bad batch_size / ratio (see `fl_embed.samplers.classes_per_batch`), or
                a batch that does not split across the replicas.
        """
        import tensorflow as tf

        from data_prep.glyphs import augment as augmentation
        from fl_embed.samplers import (
            ClassRatioSampler,
            class_ratio_dataset,
            positions_of_classes,
        )

        images, labels = self.load_arrays("train")
        if classes is not None:
            kept = positions_of_classes(labels, classes)
            images, labels = images[kept], labels[kept]
        sampler = ClassRatioSampler(
            labels,
            batch_size=batch_size,
            ratio=self.default_ratio if ratio is None else ratio,
            seed=seed,
            sub_batches=sub_batches,
        )
        images, labels = tf.constant(images), tf.constant(labels)

        def lookup(index):
            return tf.gather(images, index), tf.gather(labels, index)

        def augment_example(example, example_seed):
            ranges = self.augment_ranges
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
