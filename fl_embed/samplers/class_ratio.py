"""Class-ratio batch sampler of section 3.5: m examples from exactly C = round(ratio * m) classes.

The paper samples "m examples and labels at random" but keeps the number of distinct classes C in a
batch within range, because a batch of one class (everything merges into one cluster) or of m
distinct classes (every point its own cluster) makes the clustering loss trivial. It uses
C/m = 0.25 for CUB-200-2011 and Cars196 and C/m = 0.75 for Stanford Online Products.

Design (streams at SOP scale, 120k images / 22k classes): the sampler only ever holds the labels.
One label-only pass indexes the data set (`labels_of`), `ClassRatioSampler` turns the labels into
batches of example indices, and a lookup maps each index to its example inside `tf.data`
(`source_lookup` reads from a random-access source such as `tfds.data_source`, so images stay on
disk; `tensor_lookup` keeps a small data set's elements in memory).

Sampling rules:
  * Classes are visited in shuffled cycles: every class is used once before any class is used
    again, so every class appears within the first ceil(K / C) batches of a run (K classes) and
    class frequencies are uniform.
  * Each chosen class fills a slot of m // C or m // C + 1 examples (the m % C larger slots are
    assigned at random, so every class gets the same expected share).
  * Within a class, examples are drawn without replacement from a shuffled queue; when the queue
    runs out a new shuffled pass of that class starts, and examples still in the batch are moved
    to the end of the new pass so a batch never holds the same example twice.
  * Classes with fewer than ceil(m / C) examples cannot fill the larger slot without repeating an
    example. They are dropped with a logged warning (``drop_small_classes=True``, the default) or
    rejected with a ValueError (``drop_small_classes=False``). Too few remaining classes -> error.

Batches split across replicas (`tf.distribute`, issue 7): with ``sub_batches=R`` a batch is R
consecutive sub-batches of m/R examples, each from exactly C/R of the batch's C classes (no class
in two sub-batches), so a replica that scores its own sub-batch (local clustering loss) still gets
the guarantee at its own scale; the whole batch keeps exactly C classes. `class_ratio_dataset`
with a `tf.distribute.InputContext` hands each input pipeline the rows of its own replicas.
"""

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging


def classes_per_batch(
    batch_size: int, ratio: float | None = None, num_classes: int | None = None
) -> int:
    """Number of distinct classes C in a batch of m = batch_size examples (section 3.5).

    Exactly one of `ratio` (C = round(ratio * m)) or `num_classes` (C given directly) is used.

    Args:
      batch_size: m, examples per batch, >= 2.
      ratio: C/m in (0, 1]; the paper uses 0.25 (CUB, Cars) and 0.75 (SOP).
      num_classes: C given directly instead of a ratio.

    Returns:
      C, an int with 2 <= C <= m - 1.

    Raises:
      ValueError: bad batch size, ratio outside (0, 1], both or neither of ratio/num_classes,
        batch size smaller than C, or a degenerate batch (C == 1: all one class; C == m: all
        distinct classes), each naming the fix.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 2
    ):
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}.")
    if (ratio is None) == (num_classes is None):
        raise ValueError(
            "Give exactly one of ratio (C/m) or num_classes (C) per batch."
        )
    if ratio is not None:
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(
                f"ratio (C/m) must be in (0, 1], got {ratio!r}; the paper uses 0.25 for CUB/Cars and 0.75 for SOP."
            )
        num_classes = math.floor(float(ratio) * batch_size + 0.5)
    if num_classes > batch_size:
        raise ValueError(
            f"batch_size {batch_size} is smaller than the {num_classes} classes per batch; "
            f"raise batch_size to at least {num_classes + 1} or use fewer classes per batch."
        )
    if num_classes <= 1:
        raise ValueError(
            f"{num_classes} class(es) per batch of {batch_size}: a batch of one class makes the clustering "
            f"loss trivial (section 3.5); raise ratio to at least {2 / batch_size:.4g}."
        )
    if num_classes == batch_size:
        raise ValueError(
            f"{num_classes} classes per batch of {batch_size}: a batch of all-distinct classes makes the "
            f"clustering loss trivial (section 3.5); lower ratio below {(batch_size - 0.5) / batch_size:.4g}."
        )
    return num_classes


def check_sub_batches(batch_size: int, num_classes: int, sub_batches: int) -> int:
    """Returns `sub_batches` R if a batch of m examples and C classes splits into R sub-batches.

    Each sub-batch holds m/R examples of exactly C/R classes, so both must divide by R and a
    sub-batch must not be degenerate (C/R >= 2, see `classes_per_batch`).

    Raises:
      ValueError: R < 1, m or C not divisible by R, or C/R < 2; the message names the fix.
    """
    if (
        isinstance(sub_batches, bool)
        or not isinstance(sub_batches, (int, np.integer))
        or sub_batches < 1
    ):
        raise ValueError(f"sub_batches must be an integer >= 1, got {sub_batches!r}.")
    for count, what in (
        (batch_size, "batch_size"),
        (num_classes, "classes per batch C"),
    ):
        if count % sub_batches:
            raise ValueError(
                f"{what} {count} does not divide into {sub_batches} sub-batches (one per "
                f"replica); choose a {what} that is a multiple of {sub_batches}."
            )
    try:
        classes_per_batch(
            batch_size // sub_batches, num_classes=num_classes // sub_batches
        )
    except ValueError as err:
        raise ValueError(
            f"{num_classes} classes per batch of {batch_size} split into {sub_batches} "
            f"sub-batches: {err}"
        ) from err
    return int(sub_batches)


def slot_sizes(batch_size: int, num_classes: int) -> np.ndarray:
    """Examples per class slot: m % C slots of m // C + 1, the rest m // C.

    Args:
      batch_size: m.
      num_classes: C, 1 <= C <= m.

    Returns:
      int64 array [C] summing to m, larger slots first.
    """
    base, extra = divmod(batch_size, num_classes)
    return np.array([base + 1] * extra + [base] * (num_classes - extra), dtype=np.int64)


def _take_fresh(
    queue: list[int], exclude: set[int], count: int
) -> tuple[list[int], list[int]]:
    """Takes `count` items from `queue` that are not in `exclude`; excluded items keep their order.

    Args:
      queue: the items to draw from, in order.
      exclude: items that must not be drawn now.
      count: how many to draw.

    Returns:
      (drawn items, the rest of the queue with the skipped excluded items moved to its end).
    """
    fresh = [x for x in queue if x not in exclude]
    skipped = [x for x in queue if x in exclude]
    return fresh[:count], fresh[count:] + skipped


class ClassRatioSampler:
    """Batches of example indices with exactly C distinct classes and m examples (section 3.5).

    See the module docstring for the sampling rules and how small classes are handled.

    Args:
      labels: int array [n], the class of example i at position i.
      batch_size: m, default 128 as in the paper.
      ratio: C/m in (0, 1] (default 0.25, the paper's CUB/Cars setting); ignored if
        `num_classes_per_batch` is given.
      num_classes_per_batch: C given directly instead of `ratio`.
      seed: seed of the numpy generator; the same seed gives the same batches.
      drop_small_classes: drop (True, logged) or reject (False) classes with fewer than
        ceil(m / C) examples.
      sub_batches: R; each batch is R consecutive groups of m/R examples from exactly C/R classes
        each (1: one group, the plain sampler).

    Raises:
      ValueError: the errors of `classes_per_batch`, labels that are not a 1-D integer array,
        small classes with `drop_small_classes=False`, fewer usable classes than C, or m or C not
        divisible by `sub_batches` (or C/R < 2, a trivial sub-batch).
    """

    def __init__(
        self,
        labels,
        batch_size: int = 128,
        ratio: float = 0.25,
        num_classes_per_batch: int | None = None,
        seed: int | None = None,
        drop_small_classes: bool = True,
        sub_batches: int = 1,
    ):
        self.num_classes_per_batch = classes_per_batch(
            batch_size,
            None if num_classes_per_batch is not None else ratio,
            num_classes_per_batch,
        )
        self.batch_size = int(batch_size)
        self.sub_batches = check_sub_batches(
            self.batch_size, self.num_classes_per_batch, sub_batches
        )
        self.seed = seed
        self._by_class = _index_by_class(labels)
        self._by_class = _filter_small_classes(
            self._by_class,
            math.ceil(self.batch_size / self.num_classes_per_batch),
            drop_small_classes,
        )
        if len(self._by_class) < self.num_classes_per_batch:
            raise ValueError(
                f"Only {len(self._by_class)} usable classes, fewer than the {self.num_classes_per_batch} classes "
                f"per batch; lower ratio or batch_size, or use a data set with more classes."
            )
        self.classes = np.array(sorted(self._by_class), dtype=np.int64)
        self.num_examples = int(sum(len(v) for v in self._by_class.values()))

    @property
    def batches_per_epoch(self) -> int:
        """Batches that draw about as many examples as the usable data set holds (at least one)."""
        return max(1, self.num_examples // self.batch_size)

    def batches(self, num_batches: int | None = None) -> Iterator[np.ndarray]:
        """Yields index batches, restarting from `seed` on every call.

        Args:
          num_batches: how many batches; None for an endless stream.

        Returns:
          An iterator of int64 arrays [m] of example indices (positions in `labels`).
        """
        rng = np.random.default_rng(self.seed)
        class_queue: list[int] = []
        example_queues: dict[int, list[int]] = {}
        groups = self.sub_batches
        classes_per_group = self.num_classes_per_batch // groups
        sizes = slot_sizes(self.batch_size // groups, classes_per_group)
        produced = 0
        while num_batches is None or produced < num_batches:
            chosen, class_queue = self._next_classes(rng, class_queue)
            batch = []
            for group in range(groups):
                members = []
                group_classes = chosen[group * classes_per_group :][:classes_per_group]
                for label, size in zip(group_classes, rng.permutation(sizes)):
                    drawn, example_queues[label] = self._draw(
                        rng, label, int(size), example_queues.get(label, [])
                    )
                    members.extend(drawn)
                batch.append(rng.permutation(np.array(members, dtype=np.int64)))
            yield np.concatenate(batch)
            produced += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches()

    def _next_classes(
        self, rng: np.random.Generator, queue: list[int]
    ) -> tuple[list[int], list[int]]:
        """Next C classes from the shuffled class cycle, starting a new cycle when needed."""
        count = self.num_classes_per_batch
        chosen, queue = queue[:count], queue[count:]
        if len(chosen) < count:
            more, queue = _take_fresh(
                rng.permutation(self.classes).tolist(), set(chosen), count - len(chosen)
            )
            chosen += more
        return chosen, queue

    def _draw(
        self, rng: np.random.Generator, label: int, size: int, queue: list[int]
    ) -> tuple[list[int], list[int]]:
        """`size` distinct examples of class `label` without replacement, refilling its queue."""
        drawn, queue = queue[:size], queue[size:]
        if len(drawn) < size:
            more, queue = _take_fresh(
                rng.permutation(self._by_class[label]).tolist(),
                set(drawn),
                size - len(drawn),
            )
            drawn += more
        return drawn, queue


def _index_by_class(labels) -> dict[int, np.ndarray]:
    """Maps each class to the positions of its examples.

    Args:
      labels: int array-like [n].

    Returns:
      {class id: int64 array of positions}.

    Raises:
      ValueError: labels not a non-empty 1-D integer array.
    """
    labels = np.asarray(labels)
    if (
        labels.ndim != 1
        or labels.size == 0
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise ValueError(
            f"labels must be a non-empty 1-D integer array, got shape {labels.shape} dtype {labels.dtype}."
        )
    order = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[order], return_index=True)
    return {
        int(c): part.astype(np.int64)
        for c, part in zip(classes, np.split(order, starts[1:]))
    }


def _filter_small_classes(
    by_class: dict[int, np.ndarray], needed: int, drop: bool
) -> dict[int, np.ndarray]:
    """Removes (or rejects) classes with fewer than `needed` examples.

    Args:
      by_class: {class id: positions}.
      needed: ceil(m / C), the largest slot a class may have to fill.
      drop: drop with a warning (True) or raise (False).

    Returns:
      The classes with at least `needed` examples.

    Raises:
      ValueError: small classes present and drop is False.
    """
    small = sorted(c for c, idx in by_class.items() if len(idx) < needed)
    if not small:
        return by_class
    message = (
        f"{len(small)} of {len(by_class)} classes have fewer than {needed} examples, the most a class may "
        f"give to one batch (e.g. classes {small[:5]})"
    )
    if not drop:
        raise ValueError(
            f"{message}; pass drop_small_classes=True to leave them out, or raise ratio so each class gives fewer."
        )
    logging.warning("%s; they are left out of training batches.", message)
    return {c: idx for c, idx in by_class.items() if len(idx) >= needed}


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
      ValueError: m not divisible by the replicas, or a sampler split into sub-batches that are
        not one per replica.
    """
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
