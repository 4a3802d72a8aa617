"""The one list of losses: name -> function, Keras class, its own knobs and whether the paper
L2-normalises the embeddings it takes (section 4).

Everything that offers a choice of loss (trainer flags, the train step, the comparison, the
benchmarks) reads `LOSSES`; adding a loss is one entry here plus its module.
"""

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from fl_embed.losses.cluster import ClusteringLoss, cluster_loss, cluster_loss_terms
from fl_embed.losses.lifted import LiftedStructLoss, lifted_struct_loss
from fl_embed.losses.npairs import NPairsLoss, npairs_loss
from fl_embed.losses.triplet import TripletSemiHardLoss, triplet_semihard_loss


class LossSpec(NamedTuple):
    """How to build and call one loss."""

    fn: Callable  # fn(labels, embeddings, **knobs) -> float32 scalar
    keras_class: type  # the `keras.losses.Loss` wrapper of `fn`
    l2_normalize: bool  # section 4: the paper's input for this loss
    knobs: tuple[
        str, ...
    ]  # keyword arguments of `fn` a user tunes (defaults: `fn`'s own)
    title: str  # the name in tables
    # (labels, embeddings, **kwargs) -> {"loss": ..., other scalars worth logging}; None: the loss
    terms: Callable | None = None


def _cluster_terms(labels, embeddings, **kwargs) -> dict[str, tf.Tensor]:
    # The logged scalars only: unsliced S keeps the labels an input under XLA.
    terms = cluster_loss_terms(labels, embeddings, pad_medoids=True, **kwargs)
    return {
        "loss": terms.loss,
        "score_pred": terms.score_pred,
        "score_oracle": terms.score_oracle,
        "margin": terms.margin,
        "batch_nmi": terms.nmi,
    }


LOSSES: dict[str, LossSpec] = {
    "triplet": LossSpec(
        triplet_semihard_loss,
        TripletSemiHardLoss,
        True,
        ("margin",),
        "Triplet semihard",
    ),
    "lifted": LossSpec(
        lifted_struct_loss, LiftedStructLoss, False, ("margin",), "Lifted struct"
    ),
    "npairs": LossSpec(npairs_loss, NPairsLoss, False, ("reg_lambda",), "Npairs"),
    "clustering": LossSpec(
        cluster_loss,
        ClusteringLoss,
        True,
        ("margin_multiplier",),
        "Clustering (ours)",
        _cluster_terms,
    ),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)


def get_loss(name: str) -> LossSpec:
    """The `LossSpec` of `name`; ValueError naming the choices otherwise."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; use one of {', '.join(LOSSES)}.")
    return LOSSES[name]


@tf.autograph.experimental.do_not_convert
def loss_terms(name: str, labels, embeddings, **kwargs) -> dict[str, tf.Tensor]:
    """The loss `name` of a batch and the scalars worth logging with it.

    Args:
      name: a key of `LOSSES`.
      labels: int Tensor [m].
      embeddings: float Tensor [m, d].
      **kwargs: keyword arguments of the loss function (e.g. `margin_multiplier`, `inference`
        for the clustering loss).

    Returns:
      {"loss": scalar}; the clustering loss adds "score_pred", "score_oracle" (eqs. 4, 5),
      "margin" (eq. 8) and "batch_nmi".
    """
    spec = get_loss(name)
    if spec.terms is not None:
        return spec.terms(labels, embeddings, **kwargs)
    return {"loss": spec.fn(labels, embeddings, **kwargs)}
