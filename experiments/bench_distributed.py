"""Training steps per second with 1 and 2 replicas on the glyph model (issue 7).

    python -m experiments.bench_distributed [--steps=20 --batch_size=128 --nomulti_worker]

Rows: one device (the trainer's default strategy), MirroredStrategy over 1 and 2 logical CPU
devices of this process, and MultiWorkerMirroredStrategy over 2 worker processes on 127.0.0.1
(this script started again as each worker), for the clustering loss in global and local mode.
Each configuration runs its `--steps` batches once untimed (tracing, filling an in-memory cache
of the batches, so augmentation is left out), then `--repeats` timed passes, taken in turns with
the other configurations of the same process; the median is shown. The logical
devices share this machine's cores, so the figures show the cost of the distribution (all-gather,
redundant inference, all-reduce) rather than a speed-up from more hardware.
"""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import configs, run_dir
from fl_embed import models
from fl_embed.losses.registry import LOSS_NAMES
from fl_embed.training import make_train_step
from fl_embed.training.distributed import (
    CLUSTER_LOSS_MODES,
    is_chief,
    loss_sub_batches,
    make_strategy,
)

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Global batch m (paper: 128).", lower_bound=2)
flags.DEFINE_integer(
    "steps", 20, "Timed steps per configuration (after an untimed pass).", lower_bound=1
)
flags.DEFINE_integer(
    "repeats", 3, "Timed passes over the steps; the median is shown.", lower_bound=1
)
flags.DEFINE_enum("loss", "clustering", LOSS_NAMES, "Loss.")
flags.DEFINE_list("modes", ["global", "local"], "Cluster loss modes to time.")
flags.DEFINE_boolean(
    "multi_worker", True, "Also time 2 local worker processes (MultiWorkerMirrored)."
)
flags.DEFINE_string(
    "worker_result",
    None,
    "Internal: run as one worker of the multi_worker row (TF_CONFIG set) and write its "
    "steps/s to this JSON file.",
)
flags.register_validator(
    "modes",
    lambda modes: bool(modes) and set(modes) <= set(CLUSTER_LOSS_MODES),
    message=f"--modes must be a non-empty list of {', '.join(CLUSTER_LOSS_MODES)}.",
)
LOGICAL_CPUS = 2


def glyph_config() -> configs.Config:
    return dataclasses.replace(
        configs.get_config("glyphs"),
        batch_size=FLAGS.batch_size,
        loss=FLAGS.loss,
        seed=0,
    )


def timed_pass(strategy: tf.distribute.Strategy | None, mode: str):
    """A function timing one pass of the trainer's step over cached batches (None: one device).

    The first, untimed pass (tracing, filling the cache) runs here.

    Returns:
      fn() -> seconds for `--steps` steps.
    """
    config = glyph_config()
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = run_dir.build_model(config)
        optimizer = keras.optimizers.RMSprop(config.learning_rate)
        optimizer.build(model.trainable_variables)
    scale = models.preprocess_for(config.backbone)
    # What the trainer runs: the one step, and batches split across the replicas.
    step = make_train_step(
        model, optimizer, config.loss, 1.0, scale, strategy=strategy, mode=mode
    )
    sub_batches = loss_sub_batches(mode, strategy.num_replicas_in_sync)
    batches = strategy.distribute_datasets_from_function(
        lambda context: (
            run_dir.train_batches(
                config, 0, sub_batches=sub_batches, input_context=context
            )
            .take(FLAGS.steps)
            .cache()
        )
    )

    def one_pass() -> float:
        start = time.perf_counter()
        for images, labels in batches:
            float(step(images, labels)["loss"])
        return time.perf_counter() - start

    one_pass()
    return one_pass


def steps_per_second(passes: dict) -> dict:
    """{name: steps/s}, the median of `--repeats` passes each, taken in turns.

    Taking turns spreads the load of other jobs on a shared machine over every configuration.
    """
    seconds = {name: [] for name in passes}
    for _ in range(FLAGS.repeats):
        for name, one_pass in passes.items():
            seconds[name].append(one_pass())
    return {name: FLAGS.steps / float(np.median(t)) for name, t in seconds.items()}


def run_worker() -> None:
    """One worker of the multi_worker row: time every mode, the chief writes the result."""
    strategy = make_strategy("multi_worker")
    rates = steps_per_second({mode: timed_pass(strategy, mode) for mode in FLAGS.modes})
    if is_chief(strategy):
        with open(FLAGS.worker_result, "w") as f:
            json.dump(rates, f)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def multi_worker_steps_per_second(workers: int = 2) -> dict[str, float]:
    """{mode: steps/s} of `workers` processes of this script on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(workers)]}
    with tempfile.TemporaryDirectory() as temp:
        result = os.path.join(temp, "result.json")
        processes = []
        for index in range(workers):
            task = {"type": "worker", "index": index}
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
            command = [sys.executable, "-m", "experiments.bench_distributed"]
            command += [
                f"--worker_result={result}",
                f"--batch_size={FLAGS.batch_size}",
                f"--steps={FLAGS.steps}",
                f"--repeats={FLAGS.repeats}",
                f"--loss={FLAGS.loss}",
                f"--modes={','.join(FLAGS.modes)}",
            ]
            processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        errors = [p.communicate()[1] for p in processes]
        if any(p.returncode for p in processes):
            raise RuntimeError(
                "A multi_worker benchmark worker failed:\n"
                + "\n".join(e[-2000:] for e in errors)
            )
        with open(result) as f:
            return json.load(f)


def main(argv):
    del argv
    if FLAGS.worker_result:
        run_worker()
        return
    # Before TensorFlow's runtime starts: this process's CPU as 2 devices for MirroredStrategy.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS
    )
    one = tf.distribute.MirroredStrategy(["/cpu:0"])
    two = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(LOGICAL_CPUS)])
    configurations = {("default (one device)", 1, "-"): timed_pass(None, "global")}
    configurations[("mirrored", 1, "-")] = timed_pass(one, "global")
    for mode in FLAGS.modes:
        configurations[("mirrored (2 logical CPUs)", 2, mode)] = timed_pass(two, mode)
    rows = [(*key, rate) for key, rate in steps_per_second(configurations).items()]
    if FLAGS.multi_worker:
        for mode, rate in multi_worker_steps_per_second().items():
            rows.append(("multi_worker (2 processes)", 2, mode, rate))
    reference = rows[0][3]
    print(
        f"\nglyph model, {FLAGS.loss} loss, global batch m = {FLAGS.batch_size}, "
        f"median of {FLAGS.repeats} passes of {FLAGS.steps} steps, {os.cpu_count()} CPU cores\n"
    )
    print("| strategy | replicas | mode | steps/s | ms/step | vs one device |")
    print("|---|---|---|---|---|---|")
    for name, replicas, mode, rate in rows:
        print(
            f"| {name} | {replicas} | {mode} | {rate:.2f} | {1e3 / rate:.0f} | "
            f"{rate / reference:.2f}x |"
        )


if __name__ == "__main__":
    app.run(main)
