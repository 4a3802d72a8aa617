"""Benchmark of the clustering loss: median wall time per call against the numpy reference.

    python -m experiments.bench_loss            # m in {32, 128, 512}, d = 64, C/m in {0.25, 0.75}
    python -m experiments.bench_loss --sizes=128 --repeats=20

Rows: the XLA-compiled TensorFlow inference (forward, and forward + backward in one
`tf.function(jit_compile=True)` step, as a trainer runs it) and the plain numpy Algorithms 1-2
(`inference="numpy"`, A(S) recomputed for every candidate as the paper writes them), on the same
inputs in the same run. Compilation time (once per batch size and slot count n; the jit-compiled
step compiles every n its batch size may need) is reported separately; a second table gives the
jit-compiled step's own compile time and a call of it with shuffled labels (the labels are an
input of the step, as in a trainer): compile time again if it recompiled for every label vector.
n is the number of slots the inference runs in (`fl_embed.losses.cluster.inference_slots`).
"""

import statistics
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from fl_embed.losses import cluster_loss
from fl_embed.losses.cluster import inference_slots
from fl_embed.losses.numpy_inference import loss_augmented_inference_np

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["32", "128", "512"], "Batch sizes m.")
flags.DEFINE_list("ratios", ["0.25", "0.75"], "Classes per batch C/m.")
flags.DEFINE_integer("dim", 64, "Embedding size d.", lower_bound=1)
flags.DEFINE_integer(
    "repeats", 10, "Timed calls per row (median reported).", lower_bound=1
)
flags.DEFINE_integer(
    "numpy_max_m", 128, "Skip the slow numpy reference above this m.", lower_bound=0
)
flags.DEFINE_float("margin_multiplier", 1.0, "gamma.", lower_bound=0.0)


def _all(values, kind, ok) -> bool:
    try:
        return bool(values) and all(ok(kind(v)) for v in values)
    except ValueError:
        return False


flags.register_validator(
    "sizes",
    lambda v: _all(v, int, lambda m: m >= 1),
    message="--sizes takes positive integers, e.g. --sizes=32,128,512.",
)
flags.register_validator(
    "ratios",
    lambda v: _all(v, float, lambda r: 0.0 < r <= 1.0),
    message="--ratios takes numbers in (0, 1], e.g. --ratios=0.25,0.75.",
)


def _median_seconds(fn, inputs) -> float:
    times = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _inputs(m: int, dim: int, count: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = rng.normal(size=(m, dim)).astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


def bench_row(m: int, ratio: float) -> dict:
    num_classes = max(1, round(ratio * m))
    rng = np.random.default_rng(1)
    labels = tf.constant(np.arange(m) % num_classes, tf.int32)
    gamma = FLAGS.margin_multiplier
    inputs = _inputs(m, FLAGS.dim, FLAGS.repeats)

    def forward(x):
        return cluster_loss(labels, x, gamma).numpy()

    # The labels are an input of the step, as in a trainer: a step that recompiled for every
    # label vector would show in the "new labels" column.
    @tf.function(jit_compile=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = cluster_loss(y, x, gamma)
        return loss, tape.gradient(loss, x)

    def forward_backward(x, y=labels):
        return [t.numpy() for t in step(tf.constant(x), y)]

    start = time.perf_counter()
    forward(inputs[0])
    compile_eager_s = time.perf_counter() - start
    start = time.perf_counter()
    forward_backward(inputs[0])
    compile_step_s = time.perf_counter() - start
    shuffled = [tf.constant(rng.permutation(labels.numpy())) for _ in range(3)]
    row = {
        "m": m,
        "C": num_classes,
        "n": inference_slots(m, num_classes),
        "compile_eager_s": compile_eager_s,
        "compile_step_s": compile_step_s,
        "fwd_ms": 1e3 * _median_seconds(forward, inputs),
        "fwd_bwd_ms": 1e3 * _median_seconds(forward_backward, inputs),
        "new_labels_ms": 1e3
        * _median_seconds(lambda y: forward_backward(inputs[0], y), shuffled),
        "numpy_ms": float("nan"),
    }
    if m <= FLAGS.numpy_max_m:
        from fl_embed.distances import pairwise_distances

        dists = [pairwise_distances(tf.constant(x)).numpy() for x in inputs[:3]]
        y = labels.numpy()
        row["numpy_ms"] = 1e3 * _median_seconds(
            lambda d: loss_augmented_inference_np(d, y, gamma), dists
        )
    return row


def main(argv):
    del argv
    rows = [bench_row(int(m), float(r)) for m in FLAGS.sizes for r in FLAGS.ratios]
    header = (
        "| m | C | slots n | compile s | forward ms | fwd+bwd ms | numpy ref ms "
        "| numpy / forward |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for r in rows:
        numpy_ms, ratio = "-", "-"
        if np.isfinite(r["numpy_ms"]):
            numpy_ms = f"{r['numpy_ms']:.0f}"
            ratio = f"{r['numpy_ms'] / r['fwd_ms']:.1f}x"
        print(
            f"| {r['m']} | {r['C']} | {r['n']} "
            f"| {r['compile_eager_s'] + r['compile_step_s']:.1f} | {r['fwd_ms']:.1f} "
            f"| {r['fwd_bwd_ms']:.1f} | {numpy_ms} | {ratio} |"
        )
    print("\n| jit step (fwd+bwd) | compile s | a call with new labels, ms |")
    print("|---|---|---|")
    for r in rows:
        print(
            f"| m = {r['m']}, C = {r['C']} | {r['compile_step_s']:.1f} "
            f"| {r['new_labels_ms']:.1f} |"
        )
    logging.info(
        "numpy reference skipped above m=%d (--numpy_max_m).", FLAGS.numpy_max_m
    )


if __name__ == "__main__":
    app.run(main)
