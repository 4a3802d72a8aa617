"""Tests of fl_embed.training.run_config: refusing an output directory of another run."""

import json
import os

import pytest

from fl_embed.training import RunConfigMismatchError, check_run_config, read_run_config

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
