"""Tests of fl_embed.training.checkpoints: saving, restoring, unreadable checkpoints, chief-only writing."""

import glob
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.training import CheckpointError, checkpoint_manager, restore_latest
from fl_embed.training.checkpoints import (
    NonFiniteError,
    RunCheckpoints,
    check_finite,
    latest_checkpoint,
)


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


# Non-finite weights and damaged indexes (issue 14).


def _run(directory, units=4, max_to_keep=3):
    """RunCheckpoints of a fresh Dense model, optionally restored."""
    model, step = _model(units), tf.Variable(0, dtype=tf.int64)
    run = RunCheckpoints(directory, max_to_keep=max_to_keep, model=model, step=step)
    return run, model, step


def _save_steps(directory, steps):
    run, model, step = _run(directory)
    for number in steps:
        step.assign(number)
        for v in model.weights:
            v.assign(tf.fill(v.shape, float(number)))
        run.save(number)
    return model


def _file_bytes(directory):
    return {p.name: p.read_bytes() for p in directory.glob("ckpt-*")}


def test_check_finite_names_the_step_and_the_first_nonfinite_variable():
    model = _model()
    check_finite(model.variables, 3, loss=0.5)
    bias = model.weights[1]
    bias.assign([1.0, np.nan, np.inf, 0.0])
    with pytest.raises(
        NonFiniteError, match=r"step 7: variable '.*bias' holds 2 NaN / Inf of 4"
    ):
        check_finite(model.variables, 7)
    with pytest.raises(NonFiniteError, match="step 8: the loss is nan"):
        check_finite(_model().variables, 8, loss=tf.constant(float("nan")))


def test_save_refuses_nonfinite_weights_and_keeps_the_previous_checkpoint(tmp_path):
    run, model, _ = _run(str(tmp_path))
    run.save(1)
    model.weights[0].assign(tf.fill(model.weights[0].shape, np.inf))
    with pytest.raises(NonFiniteError, match="step 2: variable '.*kernel'"):
        run.save(2)
    with pytest.raises(NonFiniteError, match="step 3: the loss is inf"):
        RunCheckpoints(str(tmp_path), model=_model()).save(3, loss=float("inf"))
    assert not list(tmp_path.glob("ckpt-2*")) and not list(tmp_path.glob("ckpt-3*"))
    assert latest_checkpoint(str(tmp_path)).endswith("ckpt-1")


def test_nonfinite_checkpoint_written_before_the_check_is_a_clear_error(tmp_path):
    model = _model()
    model.weights[0].assign(tf.fill(model.weights[0].shape, np.nan))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path), 3).save(
        1
    )
    run, _, _ = _run(str(tmp_path))
    with pytest.raises(
        CheckpointError, match=r"holds NaN / Inf values .*Delete .*ckpt-1\.\*"
    ):
        run.restore_latest()


def _damage_index(directory, how):
    index = directory / "checkpoint"
    if how == "missing":
        index.unlink()
    elif how == "binary garbage":
        index.write_bytes(b"\x00\xff\xfe garbage")
    elif how == "text garbage":
        index.write_text("this is { not a proto")
    elif how == "empty":
        index.write_text("")
    elif how == "names deleted files":
        index.write_text('model_checkpoint_path: "ckpt-9"\n')
    elif how == "older than the files":
        index.write_text(
            'model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n'
        )


@pytest.mark.parametrize(
    "how",
    ["missing", "binary garbage", "text garbage", "empty", "names deleted files",
     "older than the files"],
)  # fmt: skip
def test_unusable_index_recovers_the_latest_checkpoint_without_overwriting(
    tmp_path, how
):
    saved = _save_steps(str(tmp_path), [1, 2, 3])
    _damage_index(tmp_path, how)
    before = _file_bytes(tmp_path)
    run, model, step = _run(str(tmp_path))
    assert run.restore_latest().endswith("ckpt-3")
    assert int(step.numpy()) == 3
    for a, b in zip(saved.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert _file_bytes(tmp_path) == before
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")
    step.assign(4)
    run.save(4)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == [
        "ckpt-2.index", "ckpt-3.index", "ckpt-4.index"
    ]  # fmt: skip
    checkpoint, manager = checkpoint_manager(str(tmp_path), model=_model())
    assert restore_latest(checkpoint, manager).endswith("ckpt-4")


def test_missing_index_skips_a_newest_checkpoint_that_does_not_read_back(tmp_path):
    _save_steps(str(tmp_path), [1, 2, 3])
    (tmp_path / "checkpoint").unlink()
    (data,) = tmp_path.glob("ckpt-3.data-*")
    data.write_bytes(data.read_bytes()[:10])
    run, _, step = _run(str(tmp_path))
    assert run.restore_latest().endswith("ckpt-2") and int(step.numpy()) == 2


def test_checkpoint_files_that_all_fail_to_read_are_refused_not_restarted(tmp_path):
    _save_steps(str(tmp_path), [1, 2])
    (tmp_path / "checkpoint").unlink()
    for data in tmp_path.glob("ckpt-*.data-*"):
        data.write_bytes(b"")
    before = _file_bytes(tmp_path)
    with pytest.raises(
        CheckpointError, match="none reads back.*refusing to start over"
    ):
        _run(str(tmp_path))
    assert _file_bytes(tmp_path) == before


def test_leftovers_of_killed_saves_are_removed(tmp_path):
    _save_steps(str(tmp_path), [1])
    leftover = tmp_path / "ckpt-2_temp"
    leftover.mkdir()
    (leftover / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    run, _, _ = _run(str(tmp_path))
    assert not leftover.exists()
    assert run.restore_latest().endswith("ckpt-1")
