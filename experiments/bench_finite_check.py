"""Cost of the trainer's finiteness check of the weights (issue 14), at m = 128 on the glyph model.

    python -m experiments.bench_finite_check [--steps=40 --rounds=3 --losses=clustering,triplet]

A divergence can leave the loss finite while a weight nobody differentiates (a batch norm moving
variance, an RMSprop slot) is already Inf; the trainer checks every weight and optimizer slot at
each log line (`check_finite`), so such a run stops within --log_every steps instead of at the
next checkpoint. The train step itself is unchanged. This prints, in the same process and
alternating in rounds: the median step, the median check, and what the check adds per step at
the default --log_every=50. A first version asserted inside every step instead; its row shows
why it was dropped (the assertion's reads of every variable after the update cost 15-30% of a
step on this model).
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import configs, run_dir
from fl_embed import models
from fl_embed.training import make_train_step
from fl_embed.training.checkpoints import (
    check_finite,
    finite_flags,
    trackable_variables,
)

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 40, "Timed steps per round.", lower_bound=1)
flags.DEFINE_integer("rounds", 3, "Rounds of step / check timings.", lower_bound=1)
flags.DEFINE_list("losses", ["clustering", "triplet"], "Losses to time.")
LOG_EVERY = configs.Config.log_every


def _in_step_check(step, variables):
    """The dropped design: the step followed, in the same graph, by an assertion on the flags."""

    @tf.function
    def checked(images, labels):
        terms = step(images, labels)
        _, finite = finite_flags(variables)
        tf.debugging.Assert(tf.reduce_all(finite), ["NaN or Inf in the weights"])
        return terms

    return checked


def median_ms(fn, calls) -> float:
    times = []
    for args in calls:
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv):
    del argv
    config = dataclasses.replace(configs.get_config("glyphs"), batch_size=128, seed=0)
    batches = list(run_dir.train_batches(config, start_step=0).take(FLAGS.steps))
    print(
        f"glyph model ({config.backbone}), m = 128, median of {FLAGS.steps} calls, "
        f"{FLAGS.rounds} rounds\n"
    )
    print(
        "| loss | round | step (ms) | check (ms) | added per step at log_every="
        f"{LOG_EVERY} | step with an in-step assertion (ms) |"
    )
    print("|---|---|---|---|---|---|")
    for name in FLAGS.losses:
        keras.utils.set_random_seed(0)
        model = run_dir.build_model(dataclasses.replace(config, loss=name))
        optimizer = keras.optimizers.RMSprop(config.learning_rate)
        step = make_train_step(
            model, optimizer, name, 1.0, models.preprocess_for(config.backbone)
        )
        variables = trackable_variables(model, optimizer)
        asserted = _in_step_check(step, variables)

        def run_step(images, labels, fn=step):
            float(fn(images, labels)["loss"])

        def run_check(variables=variables):
            check_finite(variables, 0)

        def run_asserted(images, labels, fn=asserted):
            float(fn(images, labels)["loss"])

        for images, labels in batches[:3]:  # warm-up: tracing
            run_step(images, labels)
            run_asserted(images, labels)
            run_check()
        for round_index in range(1, FLAGS.rounds + 1):
            step_ms = median_ms(run_step, batches)
            check_ms = median_ms(run_check, [()] * FLAGS.steps)
            asserted_ms = median_ms(run_asserted, batches)
            print(
                f"| {name} | {round_index} | {step_ms:.1f} | {check_ms:.2f} | "
                f"{check_ms / LOG_EVERY:.3f} ms ({100 * check_ms / LOG_EVERY / step_ms:.2f}%)"
                f" | {asserted_ms:.1f} |"
            )


if __name__ == "__main__":
    app.run(main)
