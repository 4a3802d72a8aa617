"""Share of a training step spent in each loss, at m = 128 on the glyph model.

    python -m experiments.bench_train_step [--steps=30 --batch_size=128]

For each loss: the median time of a whole training step (forward, loss, backward, RMSprop
update), the time of the first one (tracing and compilation), and of the loss alone (its value and gradient with respect to the embeddings, on the
same batches' embeddings). The paper says the clustering loss's inference adds little to a step
(section 3.5); the share column shows how much it adds here. Batches are real class-ratio glyph
batches held in memory, so input time is left out.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import configs, run_dir
from fl_embed import models
from fl_embed.losses.cluster import INFERENCE_BACKENDS
from fl_embed.losses.registry import LOSS_NAMES, loss_terms
from fl_embed.training import loss_kwargs, make_train_step

FLAGS = flags.FLAGS
flags.DEFINE_integer(
    "batch_size", 128, "m, examples per batch (paper: 128).", lower_bound=2
)
flags.DEFINE_integer(
    "steps", 30, "Timed steps per loss (after warm-up).", lower_bound=1
)
flags.DEFINE_integer(
    "warmup", 3, "Untimed steps per loss (tracing, compilation).", lower_bound=1
)
flags.DEFINE_enum(
    "cluster_inference",
    configs.Config.cluster_inference,
    INFERENCE_BACKENDS,
    "Backend of the clustering loss's inference.",
)


def median_seconds(fn, batches, warmup: int) -> tuple[float, float]:
    """(median wall time of fn(*batch) over `batches` after `warmup` untimed calls, the wall
    time of the first call: tracing and compilation)."""
    first = time.perf_counter()
    for i, batch in enumerate(batches[:warmup]):
        tf.nest.map_structure(lambda t: t.numpy(), fn(*batch))
        if i == 0:
            first = time.perf_counter() - first
    times = []
    for batch in batches[warmup:]:
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*batch))
        times.append(time.perf_counter() - start)
    return float(np.median(times)), first


def loss_and_gradient(name: str, gamma: float, inference: str):
    """Compiled (labels, embeddings) -> (loss, d loss / d embeddings)."""

    @tf.function
    def fn(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            kwargs = loss_kwargs(name, gamma, inference)
            loss = loss_terms(name, labels, embeddings, **kwargs)["loss"]
        return loss, tape.gradient(loss, embeddings)

    return fn


def bench_loss(name: str, batches: list, config: configs.Config) -> tuple:
    """((median step s, first step s), (median loss s, its first call s)) of one loss on the
    glyph model."""
    keras.utils.set_random_seed(0)
    model = run_dir.build_model(dataclasses.replace(config, loss=name))
    optimizer = keras.optimizers.RMSprop(config.learning_rate)
    scale = models.preprocess_for(config.backbone)
    step = make_train_step(model, optimizer, name, 1.0, scale, FLAGS.cluster_inference)
    step_time = median_seconds(step, batches, FLAGS.warmup)
    embedded = [
        (labels, model(scale(images), training=False)) for images, labels in batches
    ]
    loss_fn = loss_and_gradient(name, 1.0, FLAGS.cluster_inference)
    return step_time, median_seconds(loss_fn, embedded, FLAGS.warmup)


def main(argv):
    del argv
    config = dataclasses.replace(
        configs.get_config("glyphs"), batch_size=FLAGS.batch_size, seed=0
    )
    stream = run_dir.train_batches(config, start_step=0)
    batches = list(stream.take(FLAGS.warmup + FLAGS.steps))
    print(
        f"glyph model ({config.backbone}), m = {FLAGS.batch_size}, median of {FLAGS.steps} "
        f"steps, clustering inference: {FLAGS.cluster_inference}\n"
    )
    print(
        "| loss | step (ms) | loss + its gradient (ms) | share of the step "
        "| first step (s) | first loss + gradient (s) |"
    )
    print("|---|---|---|---|---|---|")
    for name in LOSS_NAMES:
        (step_time, step_first), (loss_time, loss_first) = bench_loss(
            name, batches, config
        )
        share = 100.0 * loss_time / step_time
        print(
            f"| {name} | {1e3 * step_time:.1f} | {1e3 * loss_time:.1f} | {share:.0f}% "
            f"| {step_first:.1f} | {loss_first:.1f} |"
        )


if __name__ == "__main__":
    app.run(main)
