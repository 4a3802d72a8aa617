"""The clustering loss at large batches: time per call, old against new, and the same medoids.

    python -m experiments.bench_cluster_scale                  # m / C = 512 / 384, 1024 / 256
    python -m experiments.bench_cluster_scale --large          # also 4096 / 1024 (minutes old)
    python -m experiments.bench_cluster_scale --old_tree=''    # the new implementation only

Each row times one call of `cluster_loss` forward + backward in a `tf.function(jit_compile=True)`
step, as a trainer runs it (the median of --repeats calls after the first, which compiles), on
random unit embeddings (d = --dim) with labels i mod C. The old implementation is imported from
--old_tree, a checkout of an earlier commit (e.g. `git worktree add /tmp/speed_old 173e87f`),
and each (implementation, size) runs in its own process with that tree first on PYTHONPATH, one
after the other. "same medoids" compares the S of the loss-augmented inference of both.
"""

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags() -> None:
    """The benchmark's flags (defined only when run as a program)."""
    from absl import flags

    flags.DEFINE_list("sizes", ["512:384", "1024:256"], "Batch sizes and classes, m:C.")
    flags.DEFINE_bool("large", False, "Add the m = 4096, C = 1024 row.")
    flags.DEFINE_integer(
        "repeats", 3, "Timed calls per row after the first.", lower_bound=1
    )
    flags.DEFINE_integer(
        "large_repeats", 1, "Timed calls of the m = 4096 row.", lower_bound=1
    )
    flags.DEFINE_integer("dim", 64, "Embedding size d.", lower_bound=1)
    flags.DEFINE_float("margin_multiplier", 1.0, "gamma.", lower_bound=0.0)
    flags.DEFINE_string(
        "old_tree", "/tmp/speed_old", "Checkout of the old implementation ('' = skip)."
    )
    flags.DEFINE_string(
        "worker", "", "Internal: m:C:repeats, run one row and print JSON."
    )
    flags.register_validator(
        "sizes",
        lambda v: all(
            len(s.split(":")) == 2 and all(p.isdigit() for p in s.split(":")) for s in v
        ),
        message="--sizes takes m:C pairs, e.g. --sizes=512:384,1024:256.",
    )


def time_row(m: int, num_classes: int, repeats: int, dim: int, gamma: float) -> dict:
    """Compile time, median seconds per forward + backward call, and the medoids S."""
    import numpy as np
    import tensorflow as tf

    from fl_embed.losses.cluster import cluster_loss_terms

    rng = np.random.default_rng(0)
    x = rng.normal(size=(m, dim)).astype(np.float32)
    x = tf.constant(x / np.linalg.norm(x, axis=1, keepdims=True))
    labels = tf.constant(np.arange(m) % num_classes, tf.int32)

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            terms = cluster_loss_terms(labels, x, gamma)
        return terms.loss, tape.gradient(terms.loss, x), terms.medoids

    start = time.perf_counter()
    _, _, medoids = [t.numpy() for t in step(x)]
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        [t.numpy() for t in step(x)]
        times.append(time.perf_counter() - start)
    call = statistics.median(times)
    return {
        "compile_s": first - call,
        "call_s": call,
        "medoids": medoids.tolist(),
    }


def run_row(tree: str, m: int, num_classes: int, repeats: int, flags_) -> dict:
    """`time_row` in a fresh process importing `fl_embed` from `tree`."""
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        f"--worker={m}:{num_classes}:{repeats}",
        f"--dim={flags_.dim}",
        f"--margin_multiplier={flags_.margin_multiplier}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"row m={m} in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv) -> None:
    del argv
    from absl import flags, logging

    flags_ = flags.FLAGS
    if flags_.worker:
        m, num_classes, repeats = map(int, flags_.worker.split(":"))
        row = time_row(m, num_classes, repeats, flags_.dim, flags_.margin_multiplier)
        print(json.dumps(row))
        return
    sizes = [tuple(map(int, s.split(":"))) for s in flags_.sizes]
    if flags_.large:
        sizes.append((4096, 1024))
    if flags_.old_tree and not os.path.isdir(os.path.join(flags_.old_tree, "fl_embed")):
        raise SystemExit(f"error: --old_tree={flags_.old_tree!r} has no fl_embed/.")
    print(
        "| m | C | old s/call | new s/call | old / new | old compile s | new compile s "
        "| same medoids |"
    )
    print("|---" * 8 + "|")
    for m, num_classes in sizes:
        repeats = flags_.large_repeats if m >= 4096 else flags_.repeats
        new = run_row(ROOT, m, num_classes, repeats, flags_)
        logging.info("m=%d new: %.3f s", m, new["call_s"])
        old_s, ratio, old_c, same = "-", "-", "-", "-"
        if flags_.old_tree:
            old = run_row(flags_.old_tree, m, num_classes, repeats, flags_)
            old_s, old_c = f"{old['call_s']:.3f}", f"{old['compile_s']:.1f}"
            ratio = f"{old['call_s'] / new['call_s']:.1f}x"
            same = "yes" if old["medoids"] == new["medoids"] else "NO"
        print(
            f"| {m} | {num_classes} | {old_s} | {new['call_s']:.3f} | {ratio} | {old_c} "
            f"| {new['compile_s']:.1f} | {same} |",
            flush=True,
        )


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
