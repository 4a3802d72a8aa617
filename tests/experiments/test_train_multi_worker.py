"""experiments/train.py with --strategy=multi_worker: 2 worker processes on 127.0.0.1.

Real processes, no mocks: each worker gets a TF_CONFIG naming both, trains a few steps of the
small CNN on the glyph set, and exits. Checked: the workers agree on the weights (the digest each
one logs equals the digest of the chief's checkpoint, recomputed here), only the chief writes the
run directory, and a rerun resumes every worker from the chief's checkpoint.
"""

import contextlib
import glob
import json
import os
import re
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from experiments import run_dir
from fl_embed import export
from fl_embed.training.distributed import weights_digest
from tests.experiments.conftest import REPO, TINY_FLAGS

WORKERS = 2
TIMEOUT_S = 400


def _free_ports(count: int) -> list[int]:
    """Ports the OS has just handed out (held together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_workers(base, out, data_dir, *flags):
    """Runs the trainer on every worker of a fresh local cluster; returns (exit codes, logs)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(WORKERS)]}
    processes = []
    with contextlib.ExitStack() as stack:
        for index in range(WORKERS):
            temp = base / f"tmp{index}"
            temp.mkdir(exist_ok=True)
            task = {"type": "worker", "index": index}
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TMPDIR": str(temp),
                "CUDA_VISIBLE_DEVICES": "",
            }
            log = stack.enter_context(open(base / f"worker{index}.log", "w"))
            command = [sys.executable, "-m", "experiments.train", *TINY_FLAGS]
            command += ["--strategy=multi_worker", f"--output_dir={out}"]
            command += [f"--data_dir={data_dir}", *flags]
            processes.append(
                subprocess.Popen(
                    command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        try:
            codes = [p.wait(timeout=TIMEOUT_S) for p in processes]
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    return codes, [(base / f"worker{i}.log").read_text() for i in range(WORKERS)]


def _digests(log: str) -> list[int]:
    return [int(d, 16) for d in re.findall(r"Weights digest ([0-9a-f]{16})", log)]


def _checkpoint_digest(out: str) -> int:
    _, model, _ = run_dir.load_run(out)
    return weights_digest(model)


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory):
    """The run directory, and the logs and checkpoint digest of a 2-step run and its rerun to 3."""
    base = tmp_path_factory.mktemp("multi_worker")
    out, data_dir = str(base / "run"), str(base / "tfds")
    results = {"out": out}
    for name, flags in (("first", []), ("rerun", ["--train_steps=3"])):
        (base / name).mkdir()
        codes, logs = _run_workers(base / name, out, data_dir, *flags)
        assert codes == [0] * WORKERS, "\n\n".join(log[-3000:] for log in logs)
        results[name] = logs
        results[f"{name}_digest"] = _checkpoint_digest(out)
        results[f"{name}_worker_temp"] = str(base / name / "tmp1")
    return results


# The tests of `cluster_runs` are slow: 2.5 minutes of the default suite (two worker processes
# training); the same two-worker run is `python -m experiments.bench_distributed`'s
# MultiWorkerMirroredStrategy row.
@pytest.mark.slow
def test_two_workers_train_as_two_replicas_and_agree_on_the_weights(cluster_runs):
    for log in cluster_runs["first"]:
        assert "2 replica(s), multi_worker strategy" in log
        assert "step 2/2" in log
        # Every worker's weights hash to the chief's checkpoint, bit for bit.
        assert _digests(log) == [cluster_runs["first_digest"]]


@pytest.mark.slow
def test_only_the_chief_writes_the_run_directory(cluster_runs):
    out = cluster_runs["out"]
    chief, worker = cluster_runs["first"]
    assert "not the chief" in worker and "not the chief" not in chief
    assert "Exported the SavedModel" in chief
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith(
        "ckpt-3"
    )
    version = export.latest_export(os.path.join(out, "export"))
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    for name in ("run_config.json", "flags.txt", "metrics.json"):
        assert os.path.isfile(os.path.join(out, name))
    # One writer per TensorBoard folder and run (the rerun adds the chief's second file).
    for folder in ("train", "eval"):
        assert len(glob.glob(os.path.join(out, folder, "events.*"))) == 2
    # The other worker's checkpoints and export went to its own temp dir, deleted after use.
    temp = cluster_runs["first_worker_temp"]
    assert f"Assets written to: {temp}/fl_embed-worker-" in worker
    assert not [n for n in os.listdir(temp) if n.startswith("fl_embed-worker")]
    with open(os.path.join(out, "run_config.json")) as f:
        stored = json.load(f)
    assert stored["strategy"] == "multi_worker" and stored["replicas"] == WORKERS


@pytest.mark.slow
def test_a_rerun_resumes_every_worker_from_the_chiefs_checkpoint(cluster_runs):
    for log in cluster_runs["rerun"]:
        assert "Resuming run" in log
        assert re.search(r"Restored \S+/checkpoints/ckpt-2\b", log)
        assert "step 3/3" in log and "step 1/" not in log
        assert _digests(log) == [cluster_runs["rerun_digest"]]
    assert cluster_runs["rerun_digest"] != cluster_runs["first_digest"]
    with open(os.path.join(cluster_runs["out"], "metrics.json")) as f:
        assert json.load(f)["step"] == 3


def test_a_batch_that_does_not_split_into_local_sub_batches_is_refused(tmp_path):
    # m = 20 from C = 5 classes: 10 examples per replica, but 5 classes do not halve.
    codes, logs = _run_workers(
        tmp_path,
        str(tmp_path / "run"),
        str(tmp_path / "tfds"),
        "--batch_size=20",
        "--cluster_loss_mode=local",
    )
    assert codes == [1] * WORKERS
    for log in logs:
        assert "classes per batch C 5 does not divide into 2 sub-batches" in log
    assert not os.path.exists(tmp_path / "run")
