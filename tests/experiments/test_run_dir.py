"""Tests of experiments/run_dir.py: refusing an output directory of another run."""

import dataclasses
import json
import os

import pytest

from experiments.run_dir import (
    RunConfigMismatchError,
    check_run_config,
    prepare,
    read_run_config,
)

SETTINGS = {
    "dataset": "glyphs",
    "loss": "clustering",
    "learning_rate": 1e-3,
    "train_steps": 10,
    "ks": (1, 2),
}


def test_fresh_directory_stores_the_settings(tmp_path):
    out = str(tmp_path / "run")
    assert check_run_config(out, SETTINGS) is False
    with open(os.path.join(out, "run_config.json")) as f:
        assert json.load(f) == {**SETTINGS, "ks": [1, 2]}


def test_same_settings_resume(tmp_path):
    check_run_config(str(tmp_path), SETTINGS)
    assert check_run_config(str(tmp_path), dict(SETTINGS)) is True


def test_longer_training_is_a_resume_not_a_mismatch(tmp_path):
    check_run_config(str(tmp_path), SETTINGS)
    assert check_run_config(str(tmp_path), {**SETTINGS, "train_steps": 20}) is True
    assert read_run_config(str(tmp_path))["train_steps"] == 10


def test_different_settings_are_refused_with_the_difference_and_a_hint(tmp_path):
    check_run_config(str(tmp_path), SETTINGS)
    with pytest.raises(RunConfigMismatchError) as err:
        check_run_config(
            str(tmp_path), {**SETTINGS, "loss": "triplet"}, resume_hint=" (HINT)"
        )
    message = str(err.value)
    assert "loss: 'clustering' (stored) vs 'triplet' (now)" in message
    assert "(HINT)" in message and "another output directory" in message
    assert "learning_rate" not in message


def test_unreadable_settings_file_is_refused(tmp_path):
    (tmp_path / "run_config.json").write_text("{not json")
    with pytest.raises(RunConfigMismatchError, match="unreadable"):
        check_run_config(str(tmp_path), SETTINGS)


def test_a_worker_that_is_not_the_chief_never_writes(tmp_path):
    out = tmp_path / "run"
    assert check_run_config(str(out), SETTINGS, write=False) is False
    assert not out.exists()


def test_a_worker_that_is_not_the_chief_checks_the_stored_run(tmp_path):
    check_run_config(str(tmp_path), SETTINGS)
    assert check_run_config(str(tmp_path), dict(SETTINGS), write=False) is True
    with pytest.raises(RunConfigMismatchError, match="'clustering' \\(stored\\)"):
        check_run_config(str(tmp_path), {**SETTINGS, "loss": "npairs"}, write=False)


DISTRIBUTED = {
    **SETTINGS,
    "strategy": "mirrored",
    "replicas": 2,
    "cluster_loss_mode": "global",
    "loss_sub_batches": 1,
}


def test_more_replicas_or_another_strategy_resume_a_global_mode_run(tmp_path):
    check_run_config(str(tmp_path), DISTRIBUTED)
    moved = {**DISTRIBUTED, "strategy": "multi_worker", "replicas": 4}
    assert check_run_config(str(tmp_path), moved) is True
    assert read_run_config(str(tmp_path))["strategy"] == "mirrored"


@pytest.mark.parametrize(
    "change, difference",
    [
        (
            {"cluster_loss_mode": "local", "loss_sub_batches": 2},
            "cluster_loss_mode: 'global' (stored) vs 'local' (now)",
        ),
        ({"cluster_loss_mode": "local"}, "cluster_loss_mode"),
    ],
)
def test_another_cluster_loss_mode_is_refused(tmp_path, change, difference):
    check_run_config(str(tmp_path), DISTRIBUTED)
    with pytest.raises(RunConfigMismatchError) as err:
        check_run_config(str(tmp_path), {**DISTRIBUTED, **change})
    assert difference in str(err.value)
    assert "strategy" not in str(err.value)


def test_another_replica_count_in_local_mode_is_refused(tmp_path):
    local = {**DISTRIBUTED, "cluster_loss_mode": "local", "loss_sub_batches": 2}
    check_run_config(str(tmp_path), local)
    with pytest.raises(
        RunConfigMismatchError, match="loss_sub_batches: 2 \\(stored\\) vs 4 \\(now\\)"
    ):
        check_run_config(str(tmp_path), {**local, "replicas": 4, "loss_sub_batches": 4})


def test_a_run_stored_before_the_distribution_settings_counts_as_global(tmp_path):
    check_run_config(str(tmp_path), SETTINGS)
    one_device = {
        **SETTINGS,
        "strategy": "default",
        "replicas": 1,
        "cluster_loss_mode": "global",
        "loss_sub_batches": 1,
    }
    assert check_run_config(str(tmp_path), one_device) is True
    with pytest.raises(RunConfigMismatchError, match="'global' \\(stored\\)"):
        check_run_config(str(tmp_path), {**one_device, "cluster_loss_mode": "local"})


def _glyph_config():
    from experiments import configs

    return configs.get_config("glyphs")


@pytest.mark.parametrize("output_dir", ["", "   "])
def test_an_empty_output_dir_is_refused(output_dir):
    with pytest.raises(ValueError, match="--output_dir is empty"):
        prepare(output_dir, _glyph_config(), 1, [])


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a run")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        prepare(str(path), _glyph_config(), 1, [])


def test_an_output_dir_that_cannot_be_created_or_written_is_refused(
    tmp_path, monkeypatch
):
    # Root ignores permission bits, so the failures a read-only parent or a read-only run give
    # are made by the calls that would meet them.
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(ValueError, match="not writable: Permission denied"):
        prepare(str(tmp_path / "new" / "run"), _glyph_config(), 1, [])
    monkeypatch.undo()
    import tempfile

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(ValueError, match="not writable: Permission denied"):
        prepare(str(tmp_path), _glyph_config(), 1, [])


def test_a_kill_before_the_run_config_leaves_a_fresh_directory(tmp_path, monkeypatch):
    # flags.txt is written first: a run killed before run_config.json exists starts afresh.
    import experiments.run_dir as run_dir_module

    calls = []
    real = run_dir_module.atomic_write_text

    def killed_after_flags(path, text):
        real(path, text)
        calls.append(os.path.basename(path))
        raise KeyboardInterrupt

    monkeypatch.setattr(run_dir_module, "atomic_write_text", killed_after_flags)
    with pytest.raises(KeyboardInterrupt):
        prepare(str(tmp_path), _glyph_config(), 1, [])
    monkeypatch.undo()
    assert calls == ["flags.txt"] and read_run_config(str(tmp_path)) is None
    assert prepare(str(tmp_path), _glyph_config(), 1, []) is False  # a fresh start
    assert prepare(str(tmp_path), _glyph_config(), 1, []) is True  # then a resume


def test_the_resume_hint_names_flags_txt_only_when_it_exists(tmp_path):
    config = _glyph_config()
    prepare(str(tmp_path), config, 1, [])
    other = dataclasses.replace(config, learning_rate=0.5)
    with pytest.raises(RunConfigMismatchError, match="--flagfile=.*flags.txt"):
        prepare(str(tmp_path), other, 1, [])
    os.remove(tmp_path / "flags.txt")
    with pytest.raises(RunConfigMismatchError, match="has no flags.txt, so pass them"):
        prepare(str(tmp_path), other, 1, [])
