"""Speed and memory of one training step of each paper-size embedder, at m = 128 and 227x227.

    python -m experiments.bench_backbones [--steps=3 --batch_size=128]

For each backbone: the median wall time of a whole training step (forward, clustering loss,
backward, RMSprop update) on random images, the peak resident memory of a process that only builds
the embedder and runs those steps, and the trainable parameters. Each row runs in its own process,
one after the other, so the peaks do not mix. `inception_v2, fine-tuning` is the paper configs'
setting: batch norm frozen, as it is when pretrained weights are loaded (the TF-slim checkpoint
itself cannot be downloaded here; the step does not depend on the values).
"""

import json
import resource
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "m (paper: 128).", lower_bound=2)
flags.DEFINE_integer(
    "steps", 3, "Timed steps per row, after one warm-up.", lower_bound=1
)
flags.DEFINE_string("row", None, "Internal: run one row here, print it as JSON.")

# title: (backbone, freeze_batch_norm)
ROWS = {
    "bn_inception": ("bn_inception", False),
    "inception_v2": ("inception_v2", False),
    "inception_v2, fine-tuning": ("inception_v2", True),
    "inception_v3": ("inception_v3", False),
}
CLASSES_PER_BATCH_RATIO = 0.25  # CUB and Cars196
WARMUP = (
    1  # untimed steps (tracing); ~15 s a step on an idle 2-core CPU, so one is enough
)


def run_row(title: str) -> dict:
    """Builds one embedder and times its training steps; returns the row's figures."""
    import keras
    import tensorflow as tf

    from fl_embed import models
    from fl_embed.training import make_train_step

    backbone, freeze = ROWS[title]
    keras.utils.set_random_seed(0)
    model = models.build_embedder(backbone, freeze_batch_norm=freeze)
    optimizer = keras.optimizers.RMSprop(1e-4)
    step = make_train_step(
        model, optimizer, "clustering", 1.0, models.preprocess_for(backbone)
    )
    m = FLAGS.batch_size
    classes = max(1, int(m * CLASSES_PER_BATCH_RATIO))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (m, *model.input_shape[1:])), tf.float32)
    labels = tf.constant(np.arange(m) % classes, tf.int32)
    times = []
    for i in range(WARMUP + FLAGS.steps):
        start = time.perf_counter()
        float(step(images, labels)["loss"])
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return {
        "step_s": float(np.median(times)),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "trainable_m": sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        / 1e6,
    }


def main(argv):
    del argv
    if FLAGS.row is not None:
        print(json.dumps(run_row(FLAGS.row)))
        return
    print(
        f"m = {FLAGS.batch_size}, 227x227, clustering loss, RMSprop; median of {FLAGS.steps} "
        f"steps after {WARMUP} warm-up\n"
    )
    print("| backbone | step (s) | peak memory (GiB) | trainable parameters (M) |")
    print("|---|---|---|---|")
    for title in ROWS:
        child = subprocess.run(
            [
                sys.executable, "-m", "experiments.bench_backbones", f"--row={title}",
                f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}",
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"| {title} | {row['step_s']:.1f} | {row['peak_rss_gb']:.2f} | "
            f"{row['trainable_m']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
