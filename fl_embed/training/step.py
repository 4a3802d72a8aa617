"""The one training step of every strategy, and the loss each replica computes in it.

`make_train_step` runs the step through `strategy.run`, as TensorFlow's distributed examples do;
the default strategy is one device, where the step is exactly embed, loss, gradient, update.
With several replicas every replica gets its share of the batch (issue 7). The clustering loss
(eq. 6) is a function of the whole batch, so by default (`global`) each replica all-gathers the
embeddings and labels, runs the loss-augmented inference once on the global batch, and
back-propagates only through its own rows. In `local` mode each replica scores its own sub-batch,
which is cheaper but shrinks the clustering problem as replicas are added.

Both modes follow TensorFlow's convention for custom loops: the terms a replica returns are scaled
so that summing them over replicas (`strategy.reduce(SUM, ...)`, and the SUM all-reduce the Keras
optimizers apply to gradients) gives the value and the gradient of the single-device loss on the
concatenated batch (`global`) or the mean of the sub-batch losses (`local`).
"""

import inspect
from collections.abc import Callable

import keras
import tensorflow as tf

from fl_embed.losses.registry import get_loss, loss_terms
from fl_embed.training.distributed import average_across_replicas, check_mode


def loss_kwargs(
    name: str,
    margin_multiplier,
    cluster_inference: str | None = None,
    knobs: dict | None = None,
) -> dict:
    """The step's arguments that the loss `name` takes: gamma, the inference backend, its knobs.

    The step decays gamma (eq. 6) for every loss; only a loss whose function has a
    `margin_multiplier` (or `inference`, or a knob's) argument receives it, so the baselines get
    neither gamma nor the backend, and each loss only its own knobs.

    Args:
      name: a key of `fl_embed.losses.registry.LOSSES`.
      margin_multiplier: gamma (float or scalar Variable).
      cluster_inference: backend of the loss-augmented inference ("xla", "graph", "numpy"; see
        `fl_embed.losses.cluster_loss`); None for the loss's own default.
      knobs: {knob: value} of the registry's knobs (e.g. triplet `margin`, N-pairs
        `reg_lambda`); None for the losses' defaults. Gamma is `margin_multiplier`'s.

    Returns:
      Keyword arguments for `fl_embed.losses.registry.loss_terms(name, ...)`.

    Raises:
      ValueError: unknown loss name, naming the choices.
    """
    offered = {
        **{k: v for k, v in (knobs or {}).items() if k != "margin_multiplier"},
        "margin_multiplier": margin_multiplier,
    }
    if cluster_inference is not None:
        offered["inference"] = cluster_inference
    accepted = inspect.signature(get_loss(name).fn).parameters
    return {key: value for key, value in offered.items() if key in accepted}


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
    cluster_inference: str | None = None,
    knobs: dict | None = None,
) -> dict[str, tf.Tensor]:
    """The loss terms of one replica's share of a batch, inside `strategy.run`.

    With one replica these are `fl_embed.losses.registry.loss_terms` of the batch. In `global`
    mode every replica computes the loss L of the concatenated batch (replica order), but only
    its own rows of the embeddings carry a gradient, so the gradient it gets is its rows' share of
    dL and the shares sum to the single-device gradient with no collective in the backward pass.
    Every returned term is L's term divided by the number of replicas in value (the gradient of
    "loss" is not divided), so a SUM reduction reports the single-device value. In `local` mode
    each term (and its gradient) is that of the replica's sub-batch divided by the number of
    replicas. The baselines are treated the same way; in `global` mode their negatives come from
    the whole global batch.

    Args:
      name: a key of `fl_embed.losses.registry.LOSSES`.
      labels: int Tensor [m_r], this replica's labels.
      embeddings: float Tensor [m_r, d], this replica's embeddings (L2-normalised where the loss
        asks for it).
      margin_multiplier: gamma of the clustering loss (float or scalar Variable).
      mode: "global" or "local".
      cluster_inference: backend of the clustering loss's inference, see `loss_kwargs`.
      knobs: the loss's knobs, see `loss_kwargs`.

    Returns:
      {"loss": scalar, ...}: the registry's terms, each scaled as described above.

    Raises:
      ValueError: unknown loss name or mode.
    """
    check_mode(mode)
    kwargs = loss_kwargs(name, margin_multiplier, cluster_inference, knobs)
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    if replicas == 1:
        return loss_terms(name, labels, embeddings, **kwargs)
    scale = tf.constant(1.0 / replicas, embeddings.dtype)
    if mode == "local":
        terms = loss_terms(name, labels, embeddings, **kwargs)
        return {
            key: value * tf.cast(scale, value.dtype) for key, value in terms.items()
        }
    # A step's inputs enter as function arguments without a device, and MultiWorkerMirrored
    # gathers to the device of its input ("destinations can not be empty" otherwise); the
    # identity is made under the replica's device scope.
    all_labels = context.all_gather(tf.identity(labels), axis=0)
    all_embeddings = context.all_gather(tf.stop_gradient(embeddings), axis=0)
    # Rows are gathered in replica order; the sizes locate this replica's rows even when the
    # last batch is split unevenly.
    sizes = context.all_gather(tf.shape(embeddings)[:1], axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    global_embeddings = _with_own_rows_live(embeddings, all_embeddings, start)
    terms = loss_terms(name, all_labels, global_embeddings, **kwargs)
    scaled = {
        key: tf.stop_gradient(value) * tf.cast(scale, value.dtype)
        for key, value in terms.items()
    }
    scaled["loss"] = _scale_value(terms["loss"], scale)
    return scaled


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_name: str,
    margin_multiplier,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cluster_inference: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
    mode: str = "global",
    knobs: dict | None = None,
) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
    """A compiled step: embed a batch, compute the loss, apply one optimizer update.

    Build the model and optimizer under `strategy.scope()`. With several replicas, feed the step
    per-replica batches, e.g. from `strategy.distribute_datasets_from_function` with an input
    pipeline that gives each replica its share of the global batch
    (`fl_embed.samplers.class_ratio_dataset`); the optimizer sums the replicas' gradients, which
    `replica_loss_terms` scales for that.

    Args:
      model: images -> embeddings.
      optimizer: applies the gradients (RMSprop in the paper).
      loss_name: a key of `fl_embed.losses.registry.LOSSES`.
      margin_multiplier: gamma (a tf.Variable the caller decays, or a float).
      preprocess: applied to the images first (e.g. pixels in [0, 255] -> the backbone's
        scaling); None for none.
      cluster_inference: backend of the clustering loss's inference, see `loss_kwargs`.
      strategy: the `tf.distribute` strategy; None for the current one (by default one device).
      mode: "global" or "local", see `replica_loss_terms`.
      knobs: the loss's knobs (e.g. {"margin": 0.2}), see `loss_kwargs`.

    Returns:
      step(images, labels) -> the loss terms (scalar Tensors), summed over the replicas (the
      single-device values in global mode).

    Raises:
      ValueError: unknown loss name or mode.
    """
    get_loss(loss_name)
    check_mode(mode)
    strategy = strategy or tf.distribute.get_strategy()
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
                knobs,
            )
        gradients = tape.gradient(terms["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        average_across_replicas(model.non_trainable_variables)
        return terms

    def step(images, labels):
        terms = strategy.run(replica_step, args=(images, labels))
        return {
            key: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in terms.items()
        }

    return tf.function(step)
