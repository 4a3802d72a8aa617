"""Losses across replicas of a tf.distribute strategy (issue 7).

Every replica of a step gets its share of the batch. The clustering loss (eq. 6) is a function of
the whole batch, so by default (`global`) each replica all-gathers the embeddings and labels, runs
the loss-augmented inference once on the global batch, and back-propagates only through its own
rows. In `local` mode each replica scores its own sub-batch, which is cheaper but shrinks the
clustering problem as replicas are added.

Both modes follow TensorFlow's convention for custom loops: the terms a replica returns are scaled
so that summing them over replicas (`strategy.reduce(SUM, ...)`, and the SUM all-reduce the Keras
optimizers apply to gradients) gives the value and the gradient of the single-device loss on the
concatenated batch (`global`) or the mean of the sub-batch losses (`local`).
"""

import json
import os
from collections.abc import Callable

import keras
import tensorflow as tf

from fl_embed.training.step import (
    DEFAULT_CLUSTER_INFERENCE,
    check_loss_name,
    loss_terms,
)

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
      ValueError: unknown name, or "multi_worker" without a TF_CONFIG naming a cluster.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if not config.get("cluster", {}).get("worker"):
        raise ValueError(
            "--strategy=multi_worker reads the cluster from TF_CONFIG, which names no workers."
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _check_mode(mode: str) -> str:
    if mode not in CLUSTER_LOSS_MODES:
        raise ValueError(
            f"Unknown cluster loss mode {mode!r}; use one of {', '.join(CLUSTER_LOSS_MODES)}."
        )
    return mode


def _with_own_rows_live(
    local: tf.Tensor, gathered: tf.Tensor, start: tf.Tensor
) -> tf.Tensor:
    """`gathered` (no gradient) with rows [start, start + len(local)) replaced by `local`."""
    end = start + tf.shape(local)[0]
    return tf.concat([gathered[:start], local, gathered[end:]], axis=0)


def _scale_value(x: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """`x` with its value multiplied by `scale` and its gradient left as it is."""
    return x + tf.stop_gradient(x * (scale - 1.0))


def replica_loss_terms(
    name: str,
    labels: tf.Tensor,
    embeddings: tf.Tensor,
    margin_multiplier,
    mode: str = "global",
    cluster_inference: str = DEFAULT_CLUSTER_INFERENCE,
) -> dict[str, tf.Tensor]:
    """`loss_terms` of one replica's share of a batch, to be called inside `strategy.run`.

    In `global` mode every replica computes the loss L of the concatenated batch (replica order),
    but only its own rows of the embeddings carry a gradient, so the gradient it gets is its
    rows' share of dL and the shares sum to the single-device gradient with no collective in the
    backward pass. Every returned term is L's term divided by the number of replicas in value
    (the gradient of "loss" is not divided), so a SUM reduction reports the single-device value.
    In `local` mode each term (and its gradient) is that of the replica's sub-batch divided by the
    number of replicas. The baselines are treated the same way; in `global` mode their negatives
    come from the whole global batch.

    Args:
      name: one of `fl_embed.training.LOSSES`.
      labels: int Tensor [m_r], this replica's labels.
      embeddings: float Tensor [m_r, d], this replica's embeddings (L2-normalised where the loss
        asks for it).
      margin_multiplier: gamma of the clustering loss (float or scalar Variable).
      mode: "global" or "local".
      cluster_inference: backend of the clustering loss's inference, see `loss_terms`.

    Returns:
      The `loss_terms` dict, each scalar scaled as described above.

    Raises:
      ValueError: unknown loss name or mode.
    """
    _check_mode(mode)
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    scale = tf.constant(1.0 / replicas, embeddings.dtype)
    if mode == "local" or replicas == 1:
        terms = loss_terms(
            name, labels, embeddings, margin_multiplier, cluster_inference
        )
        return {
            key: value * tf.cast(scale, value.dtype) for key, value in terms.items()
        }
    all_labels = context.all_gather(labels, axis=0)
    all_embeddings = context.all_gather(tf.stop_gradient(embeddings), axis=0)
    # Rows are gathered in replica order; the sizes locate this replica's rows even when the
    # last batch is split unevenly.
    sizes = context.all_gather(tf.shape(embeddings)[:1], axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    global_embeddings = _with_own_rows_live(embeddings, all_embeddings, start)
    terms = loss_terms(
        name, all_labels, global_embeddings, margin_multiplier, cluster_inference
    )
    scaled = {
        key: tf.stop_gradient(value) * tf.cast(scale, value.dtype)
        for key, value in terms.items()
    }
    scaled["loss"] = _scale_value(terms["loss"], scale)
    return scaled


def make_replicated_train_step(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_name: str,
    margin_multiplier,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cluster_inference: str = DEFAULT_CLUSTER_INFERENCE,
    mode: str = "global",
) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
    """`fl_embed.training.make_train_step` for every replica of `strategy`.

    Build the model and optimizer under `strategy.scope()` and feed the step batches of
    `strategy.experimental_distribute_dataset`, which gives each replica its share of a batch.
    The optimizer sums the replicas' gradients, which `replica_loss_terms` scales for that.

    Args:
      strategy: from `make_strategy`.
      model, optimizer, loss_name, margin_multiplier, preprocess, cluster_inference: as for
        `make_train_step`.
      mode: "global" or "local", see `replica_loss_terms`.

    Returns:
      step(per-replica images, per-replica labels) -> `loss_terms` dict of scalar Tensors, each
      summed over replicas (the single-device values in global mode).
    """
    check_loss_name(loss_name)
    _check_mode(mode)
    if not optimizer.built:
        # Slot variables created inside the first replicated call fail to initialise (TF 2.21:
        # "You must feed a value for placeholder tensor"), so they are made here.
        with strategy.scope():
            optimizer.build(model.trainable_variables)

    def replica_step(images, labels):
        if preprocess is not None:
            images = preprocess(images)
        with tf.GradientTape() as tape:
            embeddings = model(images, training=True)
            terms = replica_loss_terms(
                loss_name,
                labels,
                embeddings,
                margin_multiplier,
                mode,
                cluster_inference,
            )
        gradients = tape.gradient(terms["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return terms

    def step(images, labels):
        terms = strategy.run(replica_step, args=(images, labels))
        return {
            key: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in terms.items()
        }

    return tf.function(step)
