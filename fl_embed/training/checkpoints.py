"""Checkpoints of a training run: save every N steps, restore the latest on a rerun.

Under a multi-worker strategy only the chief keeps checkpoints (`RunCheckpoints`); every worker
restores from the chief's directory, which therefore must be on a filesystem all workers see.

Nothing non-finite is ever written: `RunCheckpoints.save` calls `check_finite` first (a NaN or Inf
weight, or loss, stops the run with `NonFiniteError` and the previous checkpoint stays the latest).
The `checkpoint` index file is only a cache of the `ckpt-*` files: when it is missing, damaged or
names files that are gone, `latest_checkpoint` finds the newest intact checkpoint from the files
themselves and the chief rewrites the index, so a rerun never restarts from step 1 over them.
"""

import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import text_format

CHECKPOINT_NAME = "ckpt"
INDEX_FILE = "checkpoint"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be restored into the model being trained."""


class NonFiniteError(RuntimeError):
    """Weights or the loss are NaN or Inf: training diverged, and nothing was saved."""


def trackable_variables(*trackables: Any) -> list:
    """The variables of Keras models / optimizers, `tf.Module`s and plain variables, in order."""
    found = []
    for item in trackables:
        if isinstance(item, Mapping):
            found += trackable_variables(*item.values())
        elif isinstance(item, tf.Variable) or not hasattr(item, "variables"):
            found.append(item)
        else:
            found += list(item.variables)
    return found


def variable_name(variable: Any) -> str:
    return str(getattr(variable, "path", None) or getattr(variable, "name", variable))


def check_finite(variables: Iterable, step: int, loss: Any = None) -> None:
    """Raises `NonFiniteError` when the loss or any float variable holds a NaN or an Inf.

    Call it before writing weights anywhere (checkpoint, export) and, in a training loop, on
    the loss of each step: a diverged run then stops at once with a message naming the step
    and the culprit, instead of saving weights that map every input to the same vector.

    Args:
      variables: tf.Variables / Keras variables (e.g. `model.variables + optimizer.variables`,
        or `trackable_variables(model, optimizer)`); integer ones are skipped.
      step: the training step, for the message.
      loss: optional scalar loss of that step (a number or a Tensor).

    Raises:
      NonFiniteError: "step N: the loss is nan" or "step N: variable 'dense/kernel' holds 3 NaN
        / Inf of 12 values (first non-finite variable of 40)".
    """
    if loss is not None:
        value = float(np.asarray(loss))
        if not math.isfinite(value):
            raise NonFiniteError(
                f"step {step}: the loss is {value}; training diverged (lower the learning "
                "rate?). Nothing was saved at this step."
            )
    variables, finite = finite_flags(variables)
    finite = finite.numpy()
    if finite.all():
        return
    first = int(np.argmin(finite))
    values = tf.convert_to_tensor(variables[first]).numpy()
    bad = int(np.count_nonzero(~np.isfinite(values)))
    raise NonFiniteError(
        f"step {step}: variable {variable_name(variables[first])!r} holds {bad} NaN / Inf of "
        f"{values.size} values (first non-finite variable of {len(variables)}); training "
        "diverged (lower the learning rate?). Nothing was saved at this step."
    )


def finite_flags(variables: Iterable) -> tuple[list, tf.Tensor]:
    """The float variables among `variables` and whether each holds only finite values.

    Integer variables (steps, counters) cannot be NaN and are left out. The flags are one
    reduction per variable, cheap enough to run inside every training step.

    Returns:
      (the float variables, bool Tensor [len(float variables)]).
    """
    floats = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
    if not floats:
        return floats, tf.ones([0], tf.bool)
    return floats, tf.stack(
        [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in floats]
    )


def checkpoint_number(path: str) -> int | None:
    """N of a checkpoint prefix `.../ckpt-N`, or None for another name."""
    match = re.fullmatch(rf"{CHECKPOINT_NAME}-(\d+)", os.path.basename(path))
    return int(match.group(1)) if match else None


def is_intact(prefix: str) -> bool:
    """Whether every tensor of checkpoint `prefix` can be read back (index and data files)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name, _ in tf.train.list_variables(prefix):
            reader.get_tensor(name)
    except (
        tf.errors.OpError,
        ValueError,
        IndexError,
    ):  # IndexError: a truncated data file
        return False
    return True


def _indexed_checkpoint(directory: str) -> tuple[str | None, str]:
    """(latest prefix named by the index file, '' or why the index cannot be used)."""
    if not tf.io.gfile.exists(os.path.join(directory, INDEX_FILE)):
        return None, "missing"
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (
        text_format.ParseError,
        UnicodeDecodeError,
        ValueError,
        tf.errors.OpError,
    ) as err:
        return None, f"damaged ({err.__class__.__name__})"
    if state is None or not state.model_checkpoint_path:
        return None, "empty"
    path = state.model_checkpoint_path
    if not os.path.isabs(path):
        path = os.path.join(directory, path)
    if not tf.io.gfile.exists(path + ".index"):
        return None, f"naming {os.path.basename(path)}, whose files are gone"
    return path, ""


def checkpoints_on_disk(directory: str) -> list[str]:
    """Prefixes of every `ckpt-N` with an `.index` file in `directory`, oldest first."""
    prefixes = [
        p[: -len(".index")]
        for p in tf.io.gfile.glob(os.path.join(directory, f"{CHECKPOINT_NAME}-*.index"))
    ]
    numbered = [(checkpoint_number(p), p) for p in prefixes]
    return [p for n, p in sorted((n, p) for n, p in numbered if n is not None)]


def latest_checkpoint(directory: str) -> str | None:
    """The latest checkpoint of a run's checkpoint directory, recovered from the files if needed.

    Normally the one the `checkpoint` index file names. When the index is missing, damaged,
    or names deleted files, or a newer complete `ckpt-N` exists than the one it names (a save
    killed before updating it), the newest `ckpt-N` whose every tensor reads back is taken.

    Args:
      directory: the run's `checkpoints/`.

    Returns:
      The checkpoint prefix, or None when the directory holds no checkpoint at all.

    Raises:
      CheckpointError: `ckpt-N` files exist but none of them is intact.
    """
    indexed, problem = _indexed_checkpoint(directory)
    on_disk = checkpoints_on_disk(directory)
    newer = [
        p
        for p in on_disk
        if indexed is None or checkpoint_number(p) > (checkpoint_number(indexed) or -1)
    ]
    if indexed is not None and not newer:
        return indexed
    for prefix in reversed(newer):
        if is_intact(prefix):
            logging.warning(
                "Recovered checkpoint %s from the files: the index %s/%s is %s.",
                prefix,
                directory,
                INDEX_FILE,
                problem or f"older (it names {os.path.basename(indexed)})",
            )
            return prefix
        logging.warning("Skipping checkpoint %s: it does not read back.", prefix)
    if indexed is not None:
        return indexed
    if on_disk:
        raise CheckpointError(
            f"{directory} holds checkpoint files ({', '.join(os.path.basename(p) for p in on_disk)}) "
            f"but none reads back and the index {INDEX_FILE} is {problem}; refusing to start over "
            "them. Move them away to start afresh, or train into a new output directory."
        )
    return None


def repair_checkpoint_directory(directory: str) -> str | None:
    """Makes `directory` safe for a `tf.train.CheckpointManager`; returns the latest checkpoint.

    Removes the `ckpt-N_temp` leftovers of saves that were killed, and rewrites the index file
    from the intact `ckpt-N` files when it is missing, damaged or out of date (a manager built
    on a bad index would start again at step 1 and overwrite them). Only the chief calls this.

    Args:
      directory: the run's `checkpoints/` (need not exist).

    Returns:
      The latest checkpoint prefix, as `latest_checkpoint`.

    Raises:
      CheckpointError: as `latest_checkpoint`.
    """
    for leftover in tf.io.gfile.glob(
        os.path.join(directory, f"{CHECKPOINT_NAME}-*_temp")
    ):
        logging.warning("Removing %s, left over by a save that was killed.", leftover)
        tf.io.gfile.rmtree(leftover)
    latest = latest_checkpoint(directory)
    if latest is not None and _indexed_checkpoint(directory)[0] != latest:
        kept = [
            p
            for p in checkpoints_on_disk(directory)
            if checkpoint_number(p) < checkpoint_number(latest) and is_intact(p)
        ] + [latest]
        # With their times the manager counts these checkpoints in max_to_keep again.
        tf.compat.v1.train.update_checkpoint_state(
            directory,
            latest,
            all_model_checkpoint_paths=kept,
            all_model_checkpoint_timestamps=[
                tf.io.gfile.stat(p + ".index").mtime_nsec / 1e9 for p in kept
            ],
        )
    return latest


def checkpoint_manager(
    directory: str, max_to_keep: int = 3, **trackables
) -> tuple[tf.train.Checkpoint, tf.train.CheckpointManager]:
    """A `tf.train.Checkpoint` of `trackables` and the manager that saves it to `directory`.

    Args:
      directory: where the checkpoints go (the run's `checkpoints/`).
      max_to_keep: how many recent checkpoints to keep.
      **trackables: what to save, e.g. model=..., optimizer=..., step=tf.Variable(0).

    Returns:
      (checkpoint, manager); `manager.save(checkpoint_number=step)` writes one.

    Raises:
      CheckpointError: see `repair_checkpoint_directory`.
    """
    repair_checkpoint_directory(directory)
    checkpoint = tf.train.Checkpoint(**trackables)
    return checkpoint, tf.train.CheckpointManager(
        checkpoint, directory, max_to_keep=max_to_keep
    )


def restore_latest(
    checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager
) -> str | None:
    """Restores the latest checkpoint of `manager` into `checkpoint`, if there is one.

    Every saved value must find its variable (a checkpoint of another model is an error, not a
    partial restore). Build the optimizer's variables before calling this. The latest checkpoint
    is `latest_checkpoint`'s: recovered from the files when the index is unusable.

    Args:
      checkpoint: the objects to restore into.
      manager: where to look.

    Returns:
      The restored checkpoint path, or None if the directory holds no checkpoint.

    Raises:
      CheckpointError: the checkpoint files are unreadable, hold NaN / Inf values (a run
        that diverged before these checks existed) or do not match the objects.
    """
    return _restore(checkpoint, latest_checkpoint(manager.directory))


def first_nonfinite_tensor(prefix: str) -> str | None:
    """The name of the first float tensor of checkpoint `prefix` holding a NaN or Inf, or None."""
    reader = tf.train.load_checkpoint(prefix)
    for name, _ in tf.train.list_variables(prefix):
        value = reader.get_tensor(name)
        if (
            isinstance(value, np.ndarray)
            and np.issubdtype(value.dtype, np.floating)
            and not np.all(np.isfinite(value))
        ):
            return name
    return None


def _restore(checkpoint: tf.train.Checkpoint, path: str | None) -> str | None:
    """`restore_latest` of a given checkpoint path (None: nothing to restore)."""
    if path is None:
        return None
    try:
        bad = first_nonfinite_tensor(path)
    except (tf.errors.OpError, ValueError, IndexError):
        bad = None  # unreadable: the restore below says so
    if bad is not None:
        raise CheckpointError(
            f"Checkpoint {path} holds NaN / Inf values (first: {bad!r}): the run diverged before "
            f"it was saved. Delete {path}.* to resume from the checkpoint before it, and lower "
            "the learning rate; or train into a new output directory."
        )
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as err:
        raise CheckpointError(
            f"Cannot restore checkpoint {path}: {err.__class__.__name__}: {err}. It is damaged or was "
            "written by a different model; delete it to fall back to an earlier one, or train into "
            "a new output directory."
        ) from err
    logging.info("Restored %s", path)
    return path


class RunCheckpoints:
    """Checkpoints of a run trained by one or several workers: the chief writes, every worker restores.

    Every worker must take part in a save (under MultiWorkerMirroredStrategy reading a variable
    can be a collective), so a worker that is not the chief saves into a temporary directory of
    its own and deletes it at once, TensorFlow's pattern for multi-worker saving
    (`tensorflow/python/keras/distribute/distributed_file_utils.py`). Saves are the
    `tf.train.CheckpointManager`'s: files appear under their final names only when complete.
    Every save first checks every variable for NaN / Inf (`check_finite`); the chief repairs
    the directory (`repair_checkpoint_directory`) before its manager reads the index.

    Args:
      directory: the run's checkpoint directory (`checkpoints/`), read by every worker.
      chief: whether this worker writes `directory` (see `distributed.is_chief`).
      max_to_keep: how many recent checkpoints the chief keeps.
      **trackables: what to save, e.g. model=..., optimizer=..., step=tf.Variable(0).
    """

    def __init__(
        self, directory: str, chief: bool = True, max_to_keep: int = 3, **trackables
    ):
        self.directory = directory
        self.chief = chief
        self.max_to_keep = max_to_keep
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.variables = trackable_variables(trackables)
        self._manager = None
        if chief:
            repair_checkpoint_directory(directory)
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, directory, max_to_keep
            )

    def restore_latest(self) -> str | None:
        """Restores the chief's latest checkpoint, as `restore_latest`.

        Returns:
          The restored path, or None when the chief's directory holds no checkpoint.

        Raises:
          CheckpointError: the checkpoint is unreadable, non-finite or does not match the objects.
        """
        return _restore(self.checkpoint, latest_checkpoint(self.directory))

    def save(self, number: int, loss: Any = None) -> str | None:
        """Saves checkpoint `number` (call on every worker) unless a weight or the loss is non-finite.

        Args:
          number: the step, the checkpoint's N.
          loss: optional loss of that step, checked too.

        Returns:
          The chief's checkpoint path; None on the other workers (their copy is deleted).

        Raises:
          NonFiniteError: a NaN / Inf weight, optimizer slot or loss (see `check_finite`);
            nothing is written and the previous checkpoint stays the latest.
        """
        check_finite(self.variables, number, loss)
        if self.chief:
            return self._manager.save(checkpoint_number=number)
        temp = tempfile.mkdtemp(prefix="fl_embed-worker-checkpoint-")
        try:
            tf.train.CheckpointManager(self.checkpoint, temp, 1).save(
                checkpoint_number=number
            )
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return None
