"""Around the train step of a tf.distribute strategy (issue 7): making the strategy, checking
that a batch splits across its replicas, keeping replicas' batch-norm statistics equal, and the
chief-or-not helpers of multi-worker runs.

The step itself, and how each replica's loss is scaled so that the replicas together compute the
single-device loss, are in `fl_embed.training.step`.

Under MultiWorkerMirroredStrategy only the chief writes files (`is_chief`, `chief_write_path`);
the workers check that they agree on the restored step and on the trained weights
(`check_workers_agree`, `weights_digest`).
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from fl_embed.samplers import check_sub_batches

STRATEGIES = ("default", "mirrored", "multi_worker")
CLUSTER_LOSS_MODES = ("local", "global")


def make_strategy(
    name: str, devices: list[str] | None = None
) -> tf.distribute.Strategy:
    """The distribution strategy `name`.

    Args:
      name: "default" (no distribution), "mirrored" (the local devices of one machine) or
        "multi_worker" (MultiWorkerMirroredStrategy, cluster read from the TF_CONFIG environment
        variable).
      devices: for "mirrored", the devices to mirror over; None for TensorFlow's choice (every
        GPU, or the one CPU when there is none).

    Returns:
      The strategy; build the model and optimizer under its `scope()`.

    Raises:
      ValueError: unknown name, or "multi_worker" without a valid TF_CONFIG (see
        `check_tf_config`).
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_tf_config(text: str | None) -> dict:
    """The TF_CONFIG of a MultiWorkerMirroredStrategy worker, checked before TensorFlow reads it.

    Expected: {"cluster": {"worker": ["host:port", ...], optionally "chief": ["host:port"]},
    "task": {"type": "worker" or "chief", "index": i}}, the same on every worker but the task.

    Args:
      text: the TF_CONFIG environment variable (None if unset).

    Returns:
      The parsed config.

    Raises:
      ValueError: unset, not JSON, no workers in the cluster, or a task that is not one of the
        cluster's chief or worker entries; the message says which.
    """
    example = (
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    if not text:
        raise ValueError(
            f"--strategy=multi_worker reads the cluster from TF_CONFIG, which is not set; {example}."
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}); {example}.") from err
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker"):
        raise ValueError(
            f"--strategy=multi_worker reads the cluster from TF_CONFIG, which names no workers; "
            f"{example}."
        )
    task = config.get("task")
    task_type = task.get("type") if isinstance(task, dict) else None
    if task_type not in ("chief", "worker") or not cluster.get(task_type):
        raise ValueError(
            f"TF_CONFIG task {task!r} is not a chief or worker of the cluster {cluster}; {example}."
        )
    index = task.get("index", 0)
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task_type])
    ):
        raise ValueError(
            f"TF_CONFIG task index {index!r} is not one of the {len(cluster[task_type])} "
            f"{task_type} entries of the cluster."
        )
    return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the worker that writes a run's files: the only one outside multi_worker."""
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def chief_write_path(path: str, chief: bool) -> Iterator[str]:
    """`path` on the chief; on another worker a path in a temporary directory deleted on exit.

    Saving a SavedModel under MultiWorkerMirroredStrategy is done by every worker (it may read
    variables collectively), but only the chief's copy is kept (TensorFlow's pattern).
    """
    if chief:
        yield path
        return
    temp = tempfile.mkdtemp(prefix="fl_embed-worker-")
    try:
        yield os.path.join(temp, os.path.basename(path))
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def loss_sub_batches(mode: str, replicas: int) -> int:
    """How many separate batches a step's loss sees: R replicas in local mode, 1 in global."""
    return replicas if check_mode(mode) == "local" else 1


def check_batch_split(
    batch_size: int, num_classes: int, replicas: int, mode: str
) -> None:
    """Checks that a batch of m examples and C classes splits across `replicas` for `mode`.

    Every replica gets m/R examples; in local mode each sub-batch also holds exactly C/R classes
    (`fl_embed.samplers.ClassRatioSampler` with `sub_batches=R`).

    Raises:
      ValueError: m not divisible by R, or in local mode C not divisible by R or C/R < 2.
    """
    if batch_size % replicas:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly across {replicas} replicas; "
            f"choose a batch size that is a multiple of {replicas}."
        )
    check_sub_batches(batch_size, num_classes, loss_sub_batches(mode, replicas))


def check_workers_agree(
    strategy: tf.distribute.Strategy, value: int, what: str, hint: str = ""
) -> int:
    """Returns `value` if every replica of `strategy` holds the same, else raises.

    A collective, so every worker must call it. Workers that restored different checkpoints
    would draw different batches and run loops of different lengths (a hang at the end), so the
    trainer checks the restored step first, and the trained weights last.

    Args:
      strategy: the run's strategy.
      value: this worker's int64 value.
      what: what the value is, for the message.
      hint: how to fix a disagreement, for the message.

    Raises:
      ValueError: the replicas disagree; the message lists the values.
    """
    local = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant([value], tf.int64)
    )
    values = sorted(set(strategy.gather(local, axis=0).numpy().tolist()))
    if values != [value]:
        raise ValueError(f"The workers disagree on {what}: {values}.{hint}")
    return value


def check_mode(mode: str) -> str:
    """Returns `mode`, or raises ValueError naming `CLUSTER_LOSS_MODES`."""
    if mode not in CLUSTER_LOSS_MODES:
        raise ValueError(
            f"Unknown cluster loss mode {mode!r}; use one of {', '.join(CLUSTER_LOSS_MODES)}."
        )
    return mode


def average_across_replicas(variables: list[keras.Variable]) -> None:
    """Sets every floating-point variable to its mean over the replicas (in `strategy.run`).

    Keras 3 batch normalisation updates its moving statistics on each replica's own copy from
    that replica's sub-batch, so the copies drift apart (tf.keras averaged them when read, with
    ON_READ / MEAN variables). Averaging after every step keeps all replicas' weights identical,
    so the chief's checkpoint and export are every worker's model. The moving mean then tracks
    the global batch's mean, as on one device (the moving variance tracks the mean of the
    sub-batch variances); the statistics that normalise a training batch stay per replica
    (Keras's default, `BatchNormalization(synchronized=False)`).
    """
    context = tf.distribute.get_replica_context()
    variables = [v for v in variables if keras.backend.is_float_dtype(v.dtype)]
    if context is None or context.num_replicas_in_sync == 1 or not variables:
        return
    means = context.all_reduce(
        tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in variables]
    )
    for variable, mean in zip(variables, means):
        variable.assign(mean)


def weights_digest(model: keras.Model) -> int:
    """A 63-bit hash of every weight of `model`, bit for bit, to compare workers' copies.

    Synchronous replicas apply the same all-reduced update, so their weights must stay
    identical; `check_workers_agree(strategy, weights_digest(model), ...)` catches a divergence.
    """
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def check_weights_agree(strategy: tf.distribute.Strategy, model: keras.Model) -> int:
    """`weights_digest(model)` if every worker's copy of the weights is the same, else raises.

    A collective: it also keeps the workers together at the end of a run, since one that exits
    while the chief still evaluates is reported to the chief as a crashed task.

    Raises:
      ValueError: the workers' weights differ.
    """
    return check_workers_agree(strategy, weights_digest(model), "the trained weights")
