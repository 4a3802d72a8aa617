"""Tests of fl_embed.training.checkpoints: saving, restoring and unreadable checkpoints."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.training import CheckpointError, checkpoint_manager, restore_latest


def _model(units=4):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def test_no_checkpoint_restores_nothing(tmp_path):
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=_model())
    assert restore_latest(checkpoint, manager) is None


def test_restores_weights_and_step(tmp_path):
    model, step = _model(), tf.Variable(7, dtype=tf.int64)
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=model, step=step)
    manager.save(checkpoint_number=7)
    other, other_step = _model(), tf.Variable(0, dtype=tf.int64)
    checkpoint, manager = checkpoint_manager(
        str(tmp_path), model=other, step=other_step
    )
    assert restore_latest(checkpoint, manager).endswith("ckpt-7")
    assert int(other_step.numpy()) == 7
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=_model(4))
    manager.save()
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=_model(5))
    with pytest.raises(CheckpointError, match="different model"):
        restore_latest(checkpoint, manager)


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=_model())
    manager.save()
    for path in glob.glob(str(tmp_path / "ckpt-1.*")):
        with open(path, "wb") as f:
            f.write(b"garbage")
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=_model())
    with pytest.raises(CheckpointError, match="damaged"):
        restore_latest(checkpoint, manager)
