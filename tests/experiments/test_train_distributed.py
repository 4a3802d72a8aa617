"""The trainer (experiments/train.py) under --strategy=mirrored.

In this process MirroredStrategy finds one CPU, so this checks the wiring (strategy scope,
distributed batches, replicated step, checkpoint, export, the stored distribution settings); the
arithmetic across 2 replicas is tested in test_distributed.py, several workers in
test_multi_worker.py.
"""

import json
import os

import pytest
import tensorflow as tf

from tests.experiments.conftest import TINY_FLAGS, train_in_process, train_tiny


@pytest.fixture(scope="module")
def glyph_data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory, glyph_data_dir):
    out = str(tmp_path_factory.mktemp("mirrored") / "run")
    code, log, _ = train_tiny(
        out, glyph_data_dir, "--strategy=mirrored", "--cluster_loss_mode=global"
    )
    assert code == 0, log[-3000:]
    return out, log


def test_trainer_runs_a_mirrored_global_clustering_run(mirrored_run):
    out, log = mirrored_run
    assert "1 replica(s), mirrored strategy" in log
    assert "Weights digest" in log
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["step"] == 2
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith(
        "ckpt-2"
    )
    assert os.path.isdir(os.path.join(out, "export"))


def test_the_run_config_and_flagfile_store_the_distribution(mirrored_run):
    out, _ = mirrored_run
    with open(os.path.join(out, "run_config.json")) as f:
        stored = json.load(f)
    assert stored["strategy"] == "mirrored"
    assert stored["replicas"] == 1
    assert stored["cluster_loss_mode"] == "global"
    assert stored["loss_sub_batches"] == 1
    with open(os.path.join(out, "flags.txt")) as f:
        flagfile = f.read().splitlines()
    assert "--strategy=mirrored" in flagfile
    assert "--cluster_loss_mode=global" in flagfile


def test_resuming_with_another_cluster_loss_mode_is_refused(
    mirrored_run, glyph_data_dir
):
    out, _ = mirrored_run
    code, log, _ = train_tiny(
        out, glyph_data_dir, "--strategy=mirrored", "--cluster_loss_mode=local"
    )
    assert code == 1
    assert "cluster_loss_mode: 'global' (stored) vs 'local' (now)" in log
    assert "--flagfile=" in log


def test_resuming_on_another_strategy_continues_the_run(mirrored_run, glyph_data_dir):
    out, _ = mirrored_run
    code, log, _ = train_tiny(
        out, glyph_data_dir, "--train_steps=3", "--strategy=default"
    )
    assert code == 0, log[-3000:]
    assert "Restored" in log and "ckpt-2" in log
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith(
        "ckpt-3"
    )


def test_multi_worker_without_tf_config_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, log, _ = train_in_process(
        *TINY_FLAGS, "--strategy=multi_worker", f"--output_dir={tmp_path / 'run'}"
    )
    assert code == 1
    assert "TF_CONFIG, which is not set" in log
    assert not (tmp_path / "run").exists()
