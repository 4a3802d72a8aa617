"""The structured facility-location clustering loss (paper eq. 6) and its subgradient (eqs. 11-13).

A drop-in for the authors' `tf.contrib.losses.metric_learning.cluster_loss`. The
loss-augmented inference it needs is Algorithm 1 (`greedy.py`) then Algorithm 2 (`pam.py`);
`compiled.py` decides how it runs (XLA, slot counts), `numpy_inference.py` is the plain numpy
fallback.
"""

from typing import NamedTuple, Unpack

import keras
import tensorflow as tf

from fl_embed.distances import pairwise_distances
from fl_embed.losses import compiled, validation
from fl_embed.losses import margins as margins_lib
from fl_embed.losses.base import MetricLossWrapper
from fl_embed.losses.compiled import (
    InferenceKwargs,
    InferenceOptions,
    inference_options,
    inference_slots,  # noqa: F401 (public here too)
)
from fl_embed.losses.facility_location import cluster_assignment, oracle_score

INFERENCE_BACKENDS = compiled.BACKENDS


class ClusterLossTerms(NamedTuple):
    """Everything the loss computes for one batch; only `loss` carries a gradient."""

    loss: tf.Tensor  # float32 scalar, eq. 6
    score_pred: tf.Tensor  # F(X, S) at the loss-augmented S
    score_oracle: tf.Tensor  # F~(X, y*), eq. 5
    margin: tf.Tensor  # Delta(g(S), y*), eq. 8
    nmi: tf.Tensor  # NMI(g(S), y*), the batch's clustering quality
    medoids: tf.Tensor  # int32 [K], S in slot order


class _Solution(NamedTuple):
    terms: ClusterLossTerms  # the loss without its gradient; medoids padded to m ([K] numpy)
    partner: tf.Tensor  # int32 [m], j*(i): the medoid of i's cluster under g(S)
    oracle_partner: tf.Tensor  # int32 [m], the oracle medoid of i's class (eq. 5)


def _pair_distance_sum(embeddings: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.norm(embeddings - tf.gather(embeddings, partner), axis=1))


def _pair_distance_sum_grad(embeddings: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    """d/dX of sum_i ||x_i - x_{p(i)}||: unit vectors, zero for pairs at zero distance (eq. 12)."""
    diff = embeddings - tf.gather(embeddings, partner)
    norm = tf.norm(diff, axis=1, keepdims=True)
    unit = tf.where(norm > 0.0, diff / tf.where(norm > 0.0, norm, 1.0), 0.0)
    return unit - tf.math.unsorted_segment_sum(unit, partner, tf.shape(embeddings)[0])


def _solve(embeddings, labels, gamma, options: InferenceOptions, fraction) -> _Solution:
    """Eq. 6 at the loss-augmented S, in n = num_slots(m, fraction) slots, without gradient.

    [F(X, S) + gamma Delta(g(S), y*) - F~(X, y*)]_+ with S from Algorithms 1-2, g(S) (eq. 7),
    the oracle medoids (eq. 5) and Delta (eq. 8). `labels`: ids in [0, K).
    """
    distances = pairwise_distances(embeddings)
    medoids = compiled.loss_augmented_medoids(
        distances, labels, gamma, options, fraction
    )
    asg = cluster_assignment(distances, medoids)  # g(S), eq. 7
    _, oracle_partner = oracle_score(distances, labels)  # eq. 5
    margin = 1.0 - margins_lib.score_of_ids(asg, labels, options.margin_type)  # eq. 8
    if options.margin_type == "nmi":
        nmi = 1.0 - margin
    else:
        nmi = margins_lib.score_of_ids(asg, labels, "nmi")
    partner = tf.gather(medoids, asg)
    score_pred = -_pair_distance_sum(embeddings, partner)
    score_oracle = -_pair_distance_sum(embeddings, oracle_partner)
    loss = tf.nn.relu(score_pred + gamma * margin - score_oracle)
    terms = ClusterLossTerms(loss, score_pred, score_oracle, margin, nmi, medoids)
    return _Solution(terms, partner, oracle_partner)


def _with_subgradient(embeddings: tf.Tensor, sol: _Solution) -> tf.Tensor:
    """`sol`'s loss as a function of the embeddings: the subgradient of eqs. 11-13, S and the
    oracle medoids held fixed.

    The compiled solver takes no gradient (its input is stopped): differentiating through
    XLA's slot-count switch would compile a backward program for every slot count.
    """

    @tf.custom_gradient
    def hinge(x):
        def grad(upstream):
            # eq. 11: zero when the hinge is inactive; eq. 12 for F, eq. 13 for F~.
            active = tf.cast(sol.terms.loss > 0.0, x.dtype)
            grad_pred = -_pair_distance_sum_grad(x, sol.partner)
            grad_oracle = -_pair_distance_sum_grad(x, sol.oracle_partner)
            return upstream * active * (grad_pred - grad_oracle)

        return sol.terms.loss, grad

    return hinge(embeddings)


def _padded_terms(labels, embeddings, margin_multiplier, options: InferenceOptions):
    """(`ClusterLossTerms` with S padded to m slots, the labels as ids in [0, K))."""
    gamma = compiled.checked_gamma(margin_multiplier, "cluster_loss")
    labels, embeddings = validation.check_labels_embeddings(
        labels, embeddings, "cluster_loss"
    )
    sol = compiled.in_fewest_slots(
        _solve, tf.stop_gradient(embeddings), labels, gamma, options
    )
    return sol.terms._replace(loss=_with_subgradient(embeddings, sol)), labels


@tf.autograph.experimental.do_not_convert
def cluster_loss(
    labels,
    embeddings,
    margin_multiplier,
    enable_pam_finetuning: bool = True,
    margin_type: str = "nmi",
    pam_iterations: int = 5,
    inference: str = "xla",
) -> tf.Tensor:
    """Structured facility-location clustering loss, eq. 6.

    Formula:
        loss = [ max_{|S| = K} { F(X, S) + gamma Delta(g(S), y*) } - F~(X, y*) ]_+
    with F the facility location function (eq. 4), F~ the oracle score (eq. 5), Delta = 1 - NMI
    (eqs. 8-10, or another margin_type), K the number of distinct labels in the batch, and the max
    approximated by Algorithm 1 (greedy) refined by Algorithm 2 (PAM, T = pam_iterations).
    The gradient is the subgradient of eqs. 11-13: S and the oracle medoids held fixed, zero where
    the hinge is inactive.

    Args:
      labels: int Tensor [m] or [m, 1], any integer class ids.
      embeddings: float Tensor [m, d], expected L2-normalised (the loss does not normalise).
        Computed in float32 whatever the dtype (mixed precision).
      margin_multiplier: gamma >= 0, a float or a scalar Tensor/Variable (decayed in training).
      enable_pam_finetuning: run Algorithm 2 after Algorithm 1.
      margin_type: "nmi" (paper), "ami", "ari", "vmeasure" or "const" (1 if the clusterings differ).
      pam_iterations: T, sweeps of Algorithm 2.
      inference: "xla" (default): the vectorised TensorFlow inference, XLA-compiled once per batch
        size, eagerly and inside any `tf.function`; "graph": the same ops, never compiled
        (several times slower); "numpy": plain numpy Algorithms 1-2 through tf.numpy_function.

    Returns:
      float32 scalar.

    Raises:
      ValueError: unknown margin_type or inference, negative margin_multiplier, bad shapes/dtypes.
      tf.errors.InvalidArgumentError: NaN/Inf embeddings or a batch-size mismatch at run time.
    """
    options = inference_options(
        enable_pam_finetuning, margin_type, pam_iterations, inference
    )
    # Not sliced to the K used slots: in a step XLA compiles as a whole, the slice's size would
    # make the labels a compile-time constant, and the step recompile for every label vector.
    return _padded_terms(labels, embeddings, margin_multiplier, options)[0].loss


@tf.autograph.experimental.do_not_convert
def cluster_loss_terms(
    labels,
    embeddings,
    margin_multiplier,
    pad_medoids: bool = False,
    **options: Unpack[InferenceKwargs],
) -> ClusterLossTerms:
    """The clustering loss together with the quantities it is made of (for logging).

    Same arguments as `cluster_loss`, its inference options by keyword, and `pad_medoids`: give
    `medoids` in all m slots, the K used ones first and m in the others. Under XLA the [K] slice
    makes the labels a compile-time constant (a program per label vector), so a step XLA
    compiles as a whole passes True (`registry.loss_terms` does).
    """
    options = inference_options(**options)
    terms, labels = _padded_terms(labels, embeddings, margin_multiplier, options)
    if pad_medoids:
        return terms
    return terms._replace(medoids=compiled.used_slots(terms.medoids, labels))


@keras.saving.register_keras_serializable(package="fl_embed")
class ClusteringLoss(MetricLossWrapper):
    """Keras wrapper of `cluster_loss`: y_true = integer labels, y_pred = L2-normalised embeddings.

    `margin_multiplier` may be a float or a `keras.Variable` that a callback decays during
    training (the config then stores its current value). A batch of one class (or of singleton
    classes) gives loss 0: the first one warns (`DegenerateBatchWarning`), and
    `degenerate_batches.degenerate` lists them all.
    """

    def __init__(
        self,
        margin_multiplier=1.0,
        enable_pam_finetuning: bool = True,
        margin_type: str = "nmi",
        pam_iterations: int = 5,
        inference: str = "xla",
        name: str = "clustering_loss",
        **kwargs,
    ):
        inference_options(enable_pam_finetuning, margin_type, pam_iterations, inference)
        compiled.checked_gamma(margin_multiplier, name)
        super().__init__(
            cluster_loss,
            name=name,
            margin_multiplier=margin_multiplier,
            enable_pam_finetuning=enable_pam_finetuning,
            margin_type=margin_type,
            pam_iterations=pam_iterations,
            inference=inference,
            **kwargs,
        )
        self.degenerate_batches = validation.DegenerateBatchMonitor(name)

    def call(self, y_true, y_pred):
        # Unshuffled data (one class per batch) trains nothing: say so once.
        self.degenerate_batches.observe(y_true)
        return super().call(y_true, y_pred)
