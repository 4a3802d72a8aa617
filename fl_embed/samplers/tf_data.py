"""The `tf.data` side of the class-ratio sampler (section 3.5): label-only indexing, index ->
example lookups, and the rows of every global batch each `tf.distribute` input pipeline keeps.

`labels_of` reads a data set's labels in one pass, `ClassRatioSampler`
(`fl_embed.samplers.class_ratio`) turns them into batches of example indices, and a lookup maps
each index to its example inside `tf.data` (`source_lookup` reads from a random-access source such
as `tfds.data_source`, so images stay on disk; `tensor_lookup` keeps a small data set's elements in
memory). `class_ratio_dataset` with a `tf.distribute.InputContext` hands each input pipeline the
rows of its own replicas.
"""

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from fl_embed.samplers.class_ratio import ClassRatioSampler


def labels_of(
    dataset: tf.data.Dataset, label_fn: Callable[..., tf.Tensor] | None = None
) -> np.ndarray:
    """Reads the labels of a finite `tf.data` pipeline in one pass, in element order.

    Put this before any image decoding (e.g. TFDS `decoders={"image": tfds.decode.SkipDecoding()}`)
    so the pass reads labels without decoding images.

    Args:
      dataset: finite dataset of (x, label) tuples, or any structure `label_fn` understands.
      label_fn: maps one element to its integer label; default takes element[1].

    Returns:
      int64 array [n].

    Raises:
      ValueError: an infinite dataset.
    """
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("labels_of needs a finite dataset; index it before .repeat().")
    label_fn = label_fn or (lambda *element: element[1])
    parts = list(
        dataset.map(label_fn, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(8192)
        .as_numpy_iterator()
    )
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros([0], np.int64)


def tensor_lookup(dataset: tf.data.Dataset) -> Callable[[tf.Tensor], Any]:
    """Index -> element lookup that keeps a small dataset's elements in memory.

    Use it for data sets that fit in memory (or for pipelines of file paths / encoded bytes, which
    are small); at SOP scale use `source_lookup` so images stay on disk.

    Args:
      dataset: finite dataset whose elements have fixed shapes (scalars such as encoded images or
        file paths, or fixed-size arrays).

    Returns:
      fn(index int64 scalar Tensor) -> element, usable in `tf.data.Dataset.map`.

    Raises:
      ValueError: elements of varying shape (decode after sampling instead).
    """
    if any(
        not s.shape.is_fully_defined() for s in tf.nest.flatten(dataset.element_spec)
    ):
        raise ValueError(
            "tensor_lookup needs elements of fixed shape; sample encoded images or file paths and decode "
            "after sampling, or use source_lookup."
        )
    store = tf.data.Dataset.get_single_element(dataset.batch(2**31 - 1))
    return lambda index: tf.nest.map_structure(lambda t: tf.gather(t, index), store)


def source_lookup(
    source: Sequence[Any],
    output_signature: Any,
    select: Callable[[Any], Any] | None = None,
) -> Callable[[tf.Tensor], Any]:
    """Index -> element lookup that reads from a random-access source (streams from disk).

    Args:
      source: anything with `__getitem__(int)`, e.g. `tfds.data_source(name, split, decoders=...)`.
      output_signature: nested `tf.TensorSpec` structure of `select(source[i])`.
      select: maps a source record to the wanted structure; default identity.

    Returns:
      fn(index int64 scalar Tensor) -> element, usable in `tf.data.Dataset.map`.
    """
    select = select or (lambda record: record)
    specs = tf.nest.flatten(output_signature)

    def fetch(index):
        values = tf.nest.flatten(select(source[int(index)]))
        return [
            np.asarray(v, dtype=s.dtype.as_numpy_dtype) for v, s in zip(values, specs)
        ]

    def lookup(index):
        values = tf.numpy_function(
            fetch, [index], [s.dtype for s in specs], stateful=False
        )
        values = [tf.ensure_shape(v, s.shape) for v, s in zip(values, specs)]
        return tf.nest.pack_sequence_as(output_signature, values)

    return lookup


def pipeline_rows(
    batch_size: int, input_context: tf.distribute.InputContext | None = None
) -> tuple[int, int, int]:
    """The rows of every global batch that one `tf.distribute` input pipeline produces.

    A strategy's `distribute_datasets_from_function` deals the batches of a pipeline to its
    replicas in turn, and global replica ids run pipeline by pipeline (worker by worker), so
    pipeline p owns the consecutive rows of its R/P replicas.

    Args:
      batch_size: m, the global batch.
      input_context: the pipeline's context; None for one pipeline feeding one replica.

    Returns:
      (first row, number of rows, rows per replica).

    Raises:
      ValueError: m not divisible by the number of replicas.
    """
    if input_context is None:
        return 0, batch_size, batch_size
    replicas = input_context.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly across {replicas} replicas; "
            f"choose a batch size that is a multiple of {replicas}."
        )
    rows = batch_size // input_context.num_input_pipelines
    return input_context.input_pipeline_id * rows, rows, batch_size // replicas


def class_ratio_dataset(
    sampler: ClassRatioSampler,
    lookup: Callable[[tf.Tensor], Any],
    map_fn: Callable[..., Any] | None = None,
    num_batches: int | None = None,
    map_seed: int | None = None,
    random_map: bool = False,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """`tf.data` pipeline of class-ratio batches: sample indices, look up, map, batch, prefetch.

    With an `input_context` (from `strategy.distribute_datasets_from_function`) every pipeline
    runs the same sampler with the same seed, so all of them agree on every global batch, and
    keeps only its replicas' rows before looking anything up: each worker reads and augments its
    own share, and the replicas' sub-batches concatenated in replica order are the batch a single
    pipeline makes (the per-example augmentation seeds are drawn for the global batch too).

    Args:
      sampler: decides which example indices form each batch.
      lookup: index -> element (`tensor_lookup`, `source_lookup`, or your own tf function).
      map_fn: optional per-example function applied after lookup (decode, crop, scale), run in
        parallel; its output must have a fixed shape so examples can be batched.
      num_batches: batches per iteration of the dataset; None for an endless stream. Each new
        iteration restarts from the sampler's seed.
      map_seed: with `random_map`, seed of the per-example seeds (None: fresh randomness; give a
        seed when several pipelines must agree).
      random_map: call `map_fn(element, seed)` with a per-example stateless seed int64 [2], for
        random augmentation that repeats under a fixed `map_seed`.
      input_context: the `tf.distribute.InputContext` of this pipeline; None for the whole batch.

    Returns:
      Dataset of batches with leading dimension m, or with an `input_context` m / R (R replicas),
      R / P of them per global batch (P pipelines) in replica order; element order inside a
      batch is deterministic.

    Raises:
      ValueError: m not divisible by the replicas, a sampler split into sub-batches that are
        not one per replica, or num_batches < 1.
    """
    if num_batches is not None and (
        not isinstance(num_batches, numbers.Integral)
        or isinstance(num_batches, bool)
        or num_batches < 1
    ):
        raise ValueError(
            f"num_batches must be None (an endless stream) or an integer >= 1, got "
            f"{num_batches!r}."
        )
    m = sampler.batch_size
    first, rows, per_replica = pipeline_rows(m, input_context)
    if input_context is not None and sampler.sub_batches not in (
        1,
        input_context.num_replicas_in_sync,
    ):
        raise ValueError(
            f"The sampler splits each batch into {sampler.sub_batches} sub-batches, but "
            f"{input_context.num_replicas_in_sync} replicas share it; use sub_batches=1 or one "
            "per replica."
        )
    indices = tf.data.Dataset.from_generator(
        lambda: sampler.batches(num_batches),
        output_signature=tf.TensorSpec([m], tf.int64),
    )
    if random_map:
        seeds = (
            tf.data.Dataset.random(seed=map_seed)
            .batch(2, drop_remainder=True)
            .batch(m, drop_remainder=True)
        )
        batches = tf.data.Dataset.zip(indices, seeds)
    else:
        batches = indices

    def own_rows(*batch):
        sliced = tuple(x[first : first + rows] for x in batch)
        return sliced if random_map else sliced[0]

    if rows != m:
        batches = batches.map(own_rows)
    if random_map:
        examples = batches.unbatch().map(
            lambda index, seed: (lookup(index), seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        examples = batches.unbatch().map(
            lookup, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    if map_fn is not None:
        examples = examples.map(
            map_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return examples.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
