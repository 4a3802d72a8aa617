"""Throughput of the training input pipeline (paper section 3.5), in images per second.

    python -m experiments.bench_input                          # mock data, CUB feature spec
    python -m experiments.bench_input --name=sop --data_dir=~/tensorflow_datasets   # real data

Two pipelines, each timed after one warm-up batch: `shuffle` (data_prep.load: shuffled examples,
256 -> random 227 crop + mirror, batched) and `class_ratio` (data_prep.class_ratio_batches: m
examples of exactly C classes, looked up by index, decoded, cropped). Without --data_dir the data
is mocked with the real TFDS builder's feature spec (JPEG images of about --image_size). A GPU
training Inception at m = 128 wants a few hundred images/s; compare with that.
"""

import contextlib
import time

import tensorflow as tf
from absl import app, flags, logging

import data_prep
from data_prep.testing import mock_paper_data

FLAGS = flags.FLAGS
flags.DEFINE_enum("name", "cub200", ["cub200", "cars196", "sop"], "Paper data set.")
flags.DEFINE_string(
    "data_dir", None, "TFDS data dir with the prepared data set; unset: mock data."
)
flags.DEFINE_list(
    "pipelines", ["shuffle", "class_ratio"], "Pipelines to time: shuffle, class_ratio."
)
flags.DEFINE_integer("batch_size", 128, "m, examples per batch (paper: 128).")
flags.DEFINE_integer(
    "batches", 8, "Timed batches per pipeline (after one warm-up batch)."
)
flags.DEFINE_integer("mock_examples", 512, "Examples per mocked TFDS split.")
flags.DEFINE_list(
    "image_size",
    ["375", "500"],
    "Height,width of mocked images (CUB averages about 375x500).",
)
flags.DEFINE_integer("seed", 0, "Seed of shuffling, sampling and augmentation.")
flags.register_validator(
    "batches", lambda b: b >= 1, message="--batches must be positive."
)
flags.register_validator(
    "pipelines",
    lambda ps: set(ps) <= {"shuffle", "class_ratio"},
    message="--pipelines takes shuffle and/or class_ratio.",
)


def training_pipeline(
    kind: str, name: str, data_dir: str | None, batch_size: int, seed: int
) -> tf.data.Dataset:
    """The training input of `kind`, batched, endless."""
    if kind == "shuffle":
        ds = data_prep.load(name, "train", data_dir=data_dir, training=True, seed=seed)
        return (
            ds.repeat()
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
    return data_prep.class_ratio_batches(
        name, batch_size=batch_size, seed=seed, data_dir=data_dir
    )


def images_per_second(ds: tf.data.Dataset, batches: int, batch_size: int) -> float:
    """Pulls one warm-up batch, then times `batches` batches."""
    iterator = iter(ds)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    size = tuple(int(s) for s in FLAGS.image_size)
    mocked = FLAGS.data_dir is None
    context = (
        mock_paper_data(FLAGS.mock_examples, per_class=4, image_size=size)
        if mocked
        else contextlib.nullcontext()
    )
    source = f"mock {size[0]}x{size[1]} JPEG" if mocked else FLAGS.data_dir
    logging.info(
        "Timing %s on %s, %d cores.",
        FLAGS.name,
        source,
        len(tf.config.list_physical_devices("CPU")),
    )
    rows = []
    with context:
        for kind in FLAGS.pipelines:
            ds = training_pipeline(
                kind, FLAGS.name, FLAGS.data_dir, FLAGS.batch_size, FLAGS.seed
            )
            rows.append((kind, images_per_second(ds, FLAGS.batches, FLAGS.batch_size)))
    print("| data set | data | pipeline | m | images/s |\n|---|---|---|---|---|")
    for kind, rate in rows:
        print(f"| {FLAGS.name} | {source} | {kind} | {FLAGS.batch_size} | {rate:.0f} |")


if __name__ == "__main__":
    app.run(main)
