"""The trainer (experiments/train.py) under --strategy=mirrored.

In this process MirroredStrategy finds one CPU, so this checks the wiring (strategy scope,
distributed batches, replicated step, checkpoint, export); the arithmetic across 2 replicas is
tested in test_distributed.py.
"""

import json
import os

import tensorflow as tf

from tests.experiments.conftest import TINY_FLAGS, train_in_process


def test_trainer_runs_a_mirrored_global_clustering_run(tmp_path):
    out = str(tmp_path / "run")
    code, log, _ = train_in_process(
        *TINY_FLAGS,
        "--strategy=mirrored",
        "--cluster_loss_mode=global",
        f"--output_dir={out}",
        f"--data_dir={tmp_path / 'tfds'}",
    )
    assert code == 0, log[-3000:]
    assert "1 replica(s), mirrored strategy" in log
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["step"] == 2
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith(
        "ckpt-2"
    )
    assert os.path.isdir(os.path.join(out, "export"))
