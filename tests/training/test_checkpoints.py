"""Tests of fl_embed.training.checkpoints: saving, restoring, unreadable checkpoints, chief-only writing."""

import glob
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.training import CheckpointError, checkpoint_manager, restore_latest
from fl_embed.training.checkpoints import RunCheckpoints


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


def test_chief_checkpoints_restore_into_a_fresh_run(tmp_path):
    model, step = _model(), tf.Variable(0, dtype=tf.int64)
    chief = RunCheckpoints(str(tmp_path), max_to_keep=2, model=model, step=step)
    assert chief.restore_latest() is None
    for number in (1, 2, 3):
        step.assign(number)
        assert chief.save(number).endswith(f"ckpt-{number}")
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == [
        "ckpt-2.index",
        "ckpt-3.index",
    ]
    other, other_step = _model(), tf.Variable(0, dtype=tf.int64)
    resumed = RunCheckpoints(str(tmp_path), model=other, step=other_step)
    assert resumed.restore_latest().endswith("ckpt-3")
    assert int(other_step.numpy()) == 3
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_other_workers_save_to_a_deleted_temporary_directory_and_restore_the_chiefs(
    tmp_path, monkeypatch
):
    temp = tmp_path / "worker_tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    run = tmp_path / "checkpoints"
    chief_model = _model()
    step = tf.Variable(5, dtype=tf.int64)
    RunCheckpoints(str(run), model=chief_model, step=step).save(5)
    worker_model, worker_step = _model(), tf.Variable(0, dtype=tf.int64)
    worker = RunCheckpoints(str(run), chief=False, model=worker_model, step=worker_step)
    assert worker.restore_latest().endswith("ckpt-5")
    assert int(worker_step.numpy()) == 5
    for a, b in zip(chief_model.weights, worker_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    worker_step.assign(6)
    assert worker.save(6) is None
    assert list(temp.iterdir()) == []
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-5")
    assert not list(run.glob("ckpt-6*"))


def test_worker_restoring_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    RunCheckpoints(str(tmp_path), model=_model(4)).save(1)
    worker = RunCheckpoints(str(tmp_path), chief=False, model=_model(5))
    with pytest.raises(CheckpointError, match="different model"):
        worker.restore_latest()
