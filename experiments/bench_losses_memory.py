"""Time and peak memory of the baseline losses at large batches, old [m, m, m] mining vs new.

    python -m experiments.bench_losses_memory                       # m in {256, 512, 1024, 2048}
    python -m experiments.bench_losses_memory --sizes=256,512 --old_max_m=512

Every configuration (implementation, loss, m) runs in its own child process, one forward +
backward call to warm up then `--repeats` timed ones; the parent reads the child's peak
resident memory (max RSS, from `os.wait4`). "above import" subtracts the peak of a child that
imports TensorFlow and runs the same loss at m = 8, so it is the memory the batch itself costs.
The old triplet mining (the [m, m, m] masks of ca81875, kept below as
`_semihard_negatives_m_cubed`) is skipped above `--old_max_m`: at m = 2048 its masks alone
need ~35 GB, more than this machine has.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["256", "512", "1024", "2048"], "Batch sizes m.")
flags.DEFINE_list("losses", ["triplet", "lifted", "npairs"], "Losses to run.")
flags.DEFINE_integer("dim", 64, "Embedding size d.", lower_bound=1)
flags.DEFINE_integer("classes", 64, "Classes per batch.", lower_bound=1)
flags.DEFINE_integer("repeats", 2, "Timed calls (median reported).", lower_bound=1)
flags.DEFINE_integer(
    "old_max_m", 1024, "Skip the old O(m^3) triplet mining above this m.", lower_bound=0
)
flags.DEFINE_string("child", None, "Internal: run one configuration impl:loss:m.")

_BASELINE_M = 8


def _semihard_negatives_m_cubed(sq_dists, negative):
    """The old mining (ca81875): an [m, m, m] mask, argmin over k; kept here only to compare."""
    import tensorflow as tf

    d_ik = sq_dists[:, None, :]
    d_ij = sq_dists[:, :, None]
    semihard = tf.logical_and(negative[:, None, :], d_ik > d_ij)
    inf = tf.constant(float("inf"), sq_dists.dtype)
    nearest_semihard = tf.argmin(
        tf.where(semihard, d_ik, inf), axis=2, output_type=tf.int32
    )
    farthest = tf.argmax(
        tf.where(negative, sq_dists, -inf), axis=1, output_type=tf.int32
    )
    farthest = tf.broadcast_to(farthest[:, None], tf.shape(sq_dists))
    return tf.where(tf.reduce_any(semihard, axis=2), nearest_semihard, farthest)


def _run_child(spec: str) -> None:
    import tensorflow as tf

    from fl_embed.losses import (
        lifted_struct_loss,
        npairs_loss,
        triplet,
        triplet_semihard_loss,
    )

    impl, loss_name, m = spec.split(":")
    m = int(m)
    if impl == "old":
        # The loss looks its mining up as a module global, so this swaps in the old one.
        triplet.semihard_negatives = _semihard_negatives_m_cubed
    loss_fn = {
        "triplet": triplet_semihard_loss,
        "lifted": lifted_struct_loss,
        "npairs": npairs_loss,
    }[loss_name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(m, FLAGS.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = tf.constant(np.arange(m) % FLAGS.classes, tf.int32)
    embeddings = tf.Variable(x)
    times = []
    for _ in range(FLAGS.repeats + 1):
        start = time.perf_counter()
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, embeddings)
        grad = tape.gradient(loss, embeddings)
        float(loss.numpy()) + float(tf.reduce_sum(grad).numpy())
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": float(np.median(times[1:])), "loss": float(loss)}))


def _measure(impl: str, loss_name: str, m: int) -> dict:
    """Runs one configuration in a child; returns its time, loss and peak RSS in bytes."""
    cmd = [
        sys.executable,
        "-m",
        "experiments.bench_losses_memory",
        f"--child={impl}:{loss_name}:{m}",
        f"--dim={FLAGS.dim}",
        f"--classes={FLAGS.classes}",
        f"--repeats={FLAGS.repeats}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"failed": f"exit {proc.returncode}", "rss": usage.ru_maxrss * 1024}
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["rss"] = usage.ru_maxrss * 1024  # Linux reports kilobytes
    return result


def main(argv) -> None:
    del argv
    if FLAGS.child:
        _run_child(FLAGS.child)
        return
    sizes = [int(s) for s in FLAGS.sizes]
    rows = []
    for loss_name in FLAGS.losses:
        impls = ["old", "new"] if loss_name == "triplet" else ["new"]
        baseline = _measure("new", loss_name, _BASELINE_M)["rss"]
        for m in sizes:
            row = {"loss": loss_name, "m": m}
            for impl in impls:
                if impl == "old" and m > FLAGS.old_max_m:
                    row[impl] = None
                    continue
                row[impl] = _measure(impl, loss_name, m)
                row[impl]["above"] = row[impl]["rss"] - baseline
            rows.append(row)
    gib = 2.0**30
    print(
        f"\nd = {FLAGS.dim}, {FLAGS.classes} classes a batch, forward + backward, eager, "
        f"median of {FLAGS.repeats}; peak RSS of one child process per row.\n"
    )
    print(
        "| loss | m | old time | old peak RSS (above import) "
        "| new time | new peak RSS (above import) | same loss |"
    )
    print("|---|---:|---:|---:|---:|---:|:---:|")

    def cell(r):
        if r is None:
            return "skipped (needs > RAM)", "skipped"
        if "failed" in r:
            return r["failed"], f"{r['rss'] / gib:.2f} GB"
        return (
            f"{r['seconds']:.3f} s",
            f"{r['rss'] / gib:.2f} GB ({r['above'] / gib:.2f} GB)",
        )

    for row in rows:
        old, new = row.get("old", "n/a"), row["new"]
        old_t, old_m = ("-", "-") if old == "n/a" else cell(old)
        new_t, new_m = cell(new)
        same = "-"
        if isinstance(old, dict) and "loss" in old and "loss" in new:
            same = "yes" if old["loss"] == new["loss"] else "NO"
        print(
            f"| {row['loss']} | {row['m']} | {old_t} | {old_m} | {new_t} | {new_m} | {same} |"
        )


if __name__ == "__main__":
    app.run(main)
