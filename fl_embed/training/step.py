"""One training step for each loss of the paper's comparison (section 4).

`make_train_step` returns a plain function of one batch, so a distribution strategy can run it
per replica (`strategy.run(step, args=(images, labels))`, issue 7).
"""

from collections.abc import Callable

import keras
import tensorflow as tf

from fl_embed import losses

LOSSES = ("clustering", "triplet", "lifted", "npairs")
# Section 4: L2-normalised embeddings for triplet and the clustering loss, not for lifted struct
# and N-pairs (as their papers do).
L2_NORMALIZE = {"clustering": True, "triplet": True, "lifted": False, "npairs": False}
# The inference XLA-compiled on its own inside the plain tf.function step: ~3 ms of a glyph step
# at m = 128 against ~20 ms as a plain graph (experiments/bench_train_step.py).
DEFAULT_CLUSTER_INFERENCE = "xla"


def check_loss_name(name: str) -> str:
    """Returns `name`, or raises ValueError naming the choices."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; use one of {', '.join(LOSSES)}.")
    return name


def loss_terms(
    name: str,
    labels: tf.Tensor,
    embeddings: tf.Tensor,
    margin_multiplier,
    cluster_inference: str = DEFAULT_CLUSTER_INFERENCE,
) -> dict[str, tf.Tensor]:
    """The loss `name` of a batch and the scalars worth logging with it.

    Args:
      name: one of `LOSSES`.
      labels: int Tensor [m].
      embeddings: float Tensor [m, d].
      margin_multiplier: gamma of the clustering loss (float or scalar Variable); unused by the
        baselines.
      cluster_inference: backend of the clustering loss's loss-augmented inference
        ("xla", "graph", "numpy"; see `fl_embed.losses.cluster_loss`).

    Returns:
      {"loss": scalar} and, for the clustering loss, "score_pred", "score_oracle" (eqs. 4, 5),
      "margin" (eq. 8) and "batch_nmi".

    Raises:
      ValueError: unknown name.
    """
    check_loss_name(name)
    if name == "triplet":
        return {"loss": losses.triplet_semihard_loss(labels, embeddings)}
    if name == "lifted":
        return {"loss": losses.lifted_struct_loss(labels, embeddings)}
    if name == "npairs":
        return {"loss": losses.npairs_loss(labels, embeddings)}
    terms = losses.cluster_loss_terms(
        labels, embeddings, margin_multiplier, inference=cluster_inference
    )
    return {
        "loss": terms.loss,
        "score_pred": terms.score_pred,
        "score_oracle": terms.score_oracle,
        "margin": terms.margin,
        "batch_nmi": terms.nmi,
    }


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_name: str,
    margin_multiplier,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cluster_inference: str = DEFAULT_CLUSTER_INFERENCE,
) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
    """A compiled step: embed a batch, compute the loss, apply one optimizer update.

    Args:
      model: images -> embeddings.
      optimizer: applies the gradients (RMSprop in the paper).
      loss_name: one of `LOSSES`.
      margin_multiplier: gamma (a tf.Variable the caller decays, or a float).
      preprocess: applied to the images first (e.g. uint8 -> scaled float); None for none.
      cluster_inference: backend of the clustering loss's inference, see `loss_terms`.

    Returns:
      step(images, labels) -> `loss_terms` dict of scalar Tensors.
    """
    check_loss_name(loss_name)

    def step(images, labels):
        if preprocess is not None:
            images = preprocess(images)
        with tf.GradientTape() as tape:
            embeddings = model(images, training=True)
            terms = loss_terms(
                loss_name, labels, embeddings, margin_multiplier, cluster_inference
            )
        gradients = tape.gradient(terms["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return terms

    return tf.function(step)
