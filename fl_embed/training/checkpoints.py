"""Checkpoints of a training run: save every N steps, restore the latest on a rerun."""

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
    path = manager.latest_checkpoint
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
