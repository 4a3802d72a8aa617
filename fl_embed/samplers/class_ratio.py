"""Class-ratio batch sampler of section 3.5: m examples from exactly C = round(ratio * m) classes.

The paper samples "m examples and labels at random" but keeps the number of distinct classes C in a
batch within range, because a batch of one class (everything merges into one cluster) or of m
distinct classes (every point its own cluster) makes the clustering loss trivial. It uses
C/m = 0.25 for CUB-200-2011 and Cars196 and C/m = 0.75 for Stanford Online Products.

Design (streams at SOP scale, 120k images / 22k classes): the sampler only ever holds the labels.
`ClassRatioSampler` (this module, numpy only) turns the labels into batches of example indices;
`fl_embed.samplers.tf_data` reads the labels in one pass, maps each index to its example inside
`tf.data` and hands each replica its rows.

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
the guarantee at its own scale; the whole batch keeps exactly C classes.
"""

import math
from collections.abc import Iterator

import numpy as np
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


def positions_of_classes(labels, classes) -> np.ndarray:
    """Positions of the examples whose class is one of `classes` (a class-disjoint subset).

    Tuning trains on some classes of a split and validates on the others; both halves are drawn
    from the same arrays by these positions.

    Args:
      labels: int array [n], the class of example i at position i.
      classes: int array-like [k] of distinct class ids, each present in `labels`.

    Returns:
      int64 [n_kept] positions in increasing order.

    Raises:
      ValueError: `classes` is empty, repeats an id, or names a class `labels` lacks.
    """
    labels = np.asarray(labels)
    classes = np.asarray(classes)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(
            f"classes must be a non-empty 1-D list of ids, got shape {classes.shape}."
        )
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"classes must be integer ids, got dtype {classes.dtype}.")
    if np.unique(classes).size != classes.size:
        raise ValueError("classes repeats a class id.")
    missing = np.setdiff1d(classes, labels)
    if missing.size:
        raise ValueError(
            f"{missing.size} of the {classes.size} classes asked for have no examples in this "
            f"split, e.g. {missing[:5].tolist()}."
        )
    return np.flatnonzero(np.isin(labels, classes)).astype(np.int64)


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
