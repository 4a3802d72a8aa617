"""The tf.data side of the class-ratio sampler: lookups, label indexing, replica rows."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fl_embed.samplers import (
    ClassRatioSampler,
    class_ratio_dataset,
    labels_of,
    source_lookup,
    tensor_lookup,
)
from tests.samplers.test_class_ratio import cub_like_labels


def _indexed(labels):
    """(features = 10 * position, labels) dataset, so a feature names its example."""
    features = np.arange(len(labels), dtype=np.int64) * 10
    return tf.data.Dataset.from_tensor_slices((features, labels))


@pytest.mark.parametrize("replicas, pipelines", [(2, 1), (2, 2), (4, 2), (4, 4)])
def test_input_pipelines_give_each_replica_its_rows_of_every_global_batch(
    replicas, pipelines
):
    labels = cub_like_labels(num_classes=30, low=10, high=15)
    batch_size, num_batches, map_seed = 16, 3, 5
    sampler = ClassRatioSampler(labels, batch_size=batch_size, ratio=0.25, seed=4)

    def with_seed(example, seed):
        return example[0], example[1], seed

    outputs = [
        list(
            class_ratio_dataset(
                sampler,
                tensor_lookup(_indexed(labels)),
                map_fn=with_seed,
                num_batches=num_batches,
                map_seed=map_seed,
                random_map=True,
                input_context=tf.distribute.InputContext(pipelines, p, replicas),
            ).as_numpy_iterator()
        )
        for p in range(pipelines)
    ]
    # The seed stream a single pipeline gives example k of the run, whoever looks it up.
    seeds = np.array(
        list(
            tf.data.Dataset.random(seed=map_seed)
            .batch(2)
            .take(num_batches * batch_size)
            .as_numpy_iterator()
        )
    ).reshape(num_batches, batch_size, 2)
    share, per_pipeline = batch_size // replicas, replicas // pipelines
    assert all(len(out) == num_batches * per_pipeline for out in outputs)
    for b, index in enumerate(sampler.batches(num_batches)):
        for replica in range(replicas):
            pipeline, local = divmod(replica, per_pipeline)
            x, y, seed = outputs[pipeline][b * per_pipeline + local]
            rows = slice(replica * share, (replica + 1) * share)
            assert np.array_equal(x, index[rows] * 10)
            assert np.array_equal(y, labels[index[rows]])
            assert np.array_equal(seed, seeds[b, rows])


def test_replica_batches_of_a_split_sampler_hold_c_over_r_classes():
    labels = cub_like_labels(num_classes=30, low=10, high=15)
    sampler = ClassRatioSampler(
        labels, batch_size=32, ratio=0.25, seed=1, sub_batches=2
    )
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, 2)
        for x, y in class_ratio_dataset(
            sampler,
            tensor_lookup(_indexed(labels)),
            num_batches=5,
            input_context=context,
        ):
            assert x.shape == (16,)
            assert len(np.unique(y.numpy())) == 4


def test_batches_that_do_not_split_across_the_replicas_raise():
    labels = cub_like_labels(num_classes=30, low=10, high=15)
    lookup = tensor_lookup(_indexed(labels))
    sampler = ClassRatioSampler(labels, batch_size=18, ratio=0.25)
    with pytest.raises(ValueError, match="does not split evenly across 4 replicas"):
        class_ratio_dataset(
            sampler, lookup, input_context=tf.distribute.InputContext(1, 0, 4)
        )
    split = ClassRatioSampler(labels, batch_size=32, ratio=0.25, sub_batches=2)
    with pytest.raises(ValueError, match="one per replica"):
        class_ratio_dataset(
            split, lookup, input_context=tf.distribute.InputContext(1, 0, 4)
        )


def test_tf_data_batches_carry_the_examples_of_their_indices():
    labels = cub_like_labels(num_classes=30, low=10, high=15)
    features = np.arange(len(labels), dtype=np.int64) * 10
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    assert np.array_equal(labels_of(ds), labels)
    sampler = ClassRatioSampler(labels_of(ds), batch_size=20, ratio=0.25, seed=4)
    batches = list(
        class_ratio_dataset(
            sampler, tensor_lookup(ds), num_batches=6
        ).as_numpy_iterator()
    )
    reference = list(sampler.batches(6))
    assert len(batches) == 6
    for (x, y), index in zip(batches, reference):
        assert np.array_equal(x, index * 10) and np.array_equal(y, labels[index])
        assert len(np.unique(y)) == 5


def test_source_lookup_reads_a_random_access_source():
    labels = cub_like_labels(num_classes=20, low=8, high=10)
    source = [{"x": float(i), "label": int(l)} for i, l in enumerate(labels)]
    spec = (tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int64))
    lookup = source_lookup(source, spec, select=lambda r: (r["x"], r["label"]))
    sampler = ClassRatioSampler(labels, batch_size=16, ratio=0.25, seed=0)
    for (x, y), index in zip(
        class_ratio_dataset(sampler, lookup, num_batches=3), sampler.batches(3)
    ):
        assert np.array_equal(x.numpy(), index.astype(np.float32))
        assert np.array_equal(y.numpy(), labels[index])


def test_works_on_a_users_tfds_dataset():
    with tfds.testing.mock_data(num_examples=120):
        ds = tfds.load("mnist", split="train", as_supervised=True)
        labels = labels_of(ds)
        sampler = ClassRatioSampler(labels, batch_size=8, ratio=0.5, seed=0)
        images, batch_labels = next(
            iter(class_ratio_dataset(sampler, tensor_lookup(ds), num_batches=1))
        )
    assert images.shape == (8, 28, 28, 1)
    assert len(np.unique(batch_labels.numpy())) == 4


def test_labels_of_rejects_an_infinite_dataset():
    with pytest.raises(ValueError, match="finite"):
        labels_of(tf.data.Dataset.from_tensor_slices(([1.0], [1])).repeat())


def test_tensor_lookup_rejects_variable_shapes():
    ds = tf.data.Dataset.from_generator(
        lambda: iter([(np.zeros([2]), 0)]),
        output_signature=(
            tf.TensorSpec([None], tf.float64),
            tf.TensorSpec([], tf.int64),
        ),
    )
    with pytest.raises(ValueError, match="fixed shape"):
        tensor_lookup(ds)
