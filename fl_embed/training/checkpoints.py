"""Checkpoints of a training run: save every N steps, restore the latest on a rerun.

Under a multi-worker strategy only the chief keeps checkpoints (`RunCheckpoints`); every worker
restores from the chief's directory, which therefore must be on a filesystem all workers see.
"""

import shutil
import tempfile

import tensorflow as tf
from absl import logging


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be restored into the model being trained."""


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
    """
    checkpoint = tf.train.Checkpoint(**trackables)
    return checkpoint, tf.train.CheckpointManager(
        checkpoint, directory, max_to_keep=max_to_keep
    )


def restore_latest(
    checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager
) -> str | None:
    """Restores the latest checkpoint of `manager` into `checkpoint`, if there is one.

    Every saved value must find its variable (a checkpoint of another model is an error, not a
    partial restore). Build the optimizer's variables before calling this.

    Args:
      checkpoint: the objects to restore into.
      manager: where to look.

    Returns:
      The restored checkpoint path, or None if the directory holds no checkpoint.

    Raises:
      CheckpointError: the checkpoint files are unreadable or do not match the objects.
    """
    return _restore(checkpoint, manager.latest_checkpoint)


def _restore(checkpoint: tf.train.Checkpoint, path: str | None) -> str | None:
    """`restore_latest` of a given checkpoint path (None: nothing to restore)."""
    if path is None:
        return None
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
        self._manager = (
            tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)
            if chief
            else None
        )

    def restore_latest(self) -> str | None:
        """Restores the chief's latest checkpoint, as `restore_latest`.

        Returns:
          The restored path, or None when the chief's directory holds no checkpoint.

        Raises:
          CheckpointError: the checkpoint is unreadable or does not match the objects.
        """
        return _restore(self.checkpoint, tf.train.latest_checkpoint(self.directory))

    def save(self, number: int) -> str | None:
        """Saves checkpoint `number` (call on every worker).

        Returns:
          The chief's checkpoint path; None on the other workers (their copy is deleted).
        """
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
