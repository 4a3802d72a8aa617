"""The structured facility-location clustering loss (paper eq. 6) and its subgradient (eqs. 11-13).

A drop-in for the authors' `tf.contrib.losses.metric_learning.cluster_loss`. The
loss-augmented inference it needs is Algorithm 1 (`greedy.py`) then Algorithm 2 (`pam.py`);
`compiled.py` decides how it runs (XLA, slot counts), `numpy_inference.py` is the plain numpy
fallback.
"""

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from fl_embed.distances import pairwise_distances
from fl_embed.losses import compiled
from fl_embed.losses import margins as margins_lib
from fl_embed.losses.base import MetricLossWrapper
from fl_embed.losses.compiled import (  # noqa: F401 (inference_slots: public here too)
    InferenceOptions,
    inference_options,
    inference_slots,
)
from fl_embed.losses.facility_location import cluster_assignment, oracle_score
from fl_embed.losses.validation import DegenerateBatchMonitor, check_labels_embeddings

INFERENCE_BACKENDS = compiled.BACKENDS


class ClusterLossTerms(NamedTuple):
    """Everything the loss computes for one batch; only `loss` carries a gradient."""

    loss: tf.Tensor  # float32 scalar, eq. 6
    score_pred: tf.Tensor  # F(X, S) at the loss-augmented S
    score_oracle: tf.Tensor  # F~(X, y*), eq. 5
    margin: tf.Tensor  # Delta(g(S), y*), eq. 8
    nmi: tf.Tensor  # NMI(g(S), y*), the batch's clustering quality
    medoids: tf.Tensor  # int32 [K], S in slot order


def _gamma(margin_multiplier) -> tf.Tensor:
    """gamma as a float32 scalar; a ValueError (or, for a tensor, a run-time error) if < 0."""
    if margin_multiplier is None or isinstance(
        margin_multiplier, (bool, np.bool_, str, bytes)
    ):
        raise ValueError(
            f"margin_multiplier must be a number >= 0, got {margin_multiplier!r}."
        )
    if isinstance(margin_multiplier, (int, float, np.number)):
        if not (np.isfinite(margin_multiplier) and margin_multiplier >= 0):
            raise ValueError(
                f"margin_multiplier must be finite and >= 0, got {margin_multiplier!r}."
            )
        return tf.constant(float(margin_multiplier), tf.float32)
    gamma = tf.cast(tf.convert_to_tensor(margin_multiplier), tf.float32)
    if gamma.shape.rank not in (None, 0):
        raise ValueError(
            f"margin_multiplier must be a scalar, got shape {gamma.shape}."
        )
    check = tf.debugging.assert_non_negative(
        gamma, message="cluster_loss: margin_multiplier must be >= 0"
    )
    with tf.control_dependencies([check]):
        return tf.identity(gamma)


def _pair_distance_sum(embeddings: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.norm(embeddings - tf.gather(embeddings, partner), axis=1))


def _pair_distance_sum_grad(embeddings: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    """d/dX of sum_i ||x_i - x_{p(i)}||: unit vectors, zero for pairs at zero distance (eq. 12)."""
    diff = embeddings - tf.gather(embeddings, partner)
    norm = tf.norm(diff, axis=1, keepdims=True)
    unit = tf.where(norm > 0.0, diff / tf.where(norm > 0.0, norm, 1.0), 0.0)
    return unit - tf.math.unsorted_segment_sum(unit, partner, tf.shape(embeddings)[0])


def _hinge(embeddings, partner, oracle_partner, gamma, margin):
    """[F(X, S) + gamma Delta - F~(X, y*)]_+ with S and the oracle medoids fixed, eqs. 6, 11-13.

    Returns (loss, F(X, S), F~(X, y*)); the custom gradient is the subgradient.
    """
    stopped = tf.stop_gradient(embeddings)
    score_pred = -_pair_distance_sum(stopped, partner)
    score_oracle = -_pair_distance_sum(stopped, oracle_partner)

    @tf.custom_gradient
    def hinge(x):
        value = tf.nn.relu(score_pred + gamma * margin - score_oracle)

        def grad(upstream):
            # eq. 11: zero when the hinge is inactive; eq. 12 for F, eq. 13 for F~.
            active = tf.cast(value > 0.0, x.dtype)
            grad_pred = -_pair_distance_sum_grad(x, partner)
            grad_oracle = -_pair_distance_sum_grad(x, oracle_partner)
            return upstream * active * (grad_pred - grad_oracle)

        return value, grad

    return hinge(embeddings), score_pred, score_oracle


class _Solution(NamedTuple):
    medoids: tf.Tensor  # int32 [m], S padded with m ([K] with numpy)
    partner: tf.Tensor  # int32 [m], j*(i): the medoid of i's cluster under g(S)
    oracle_partner: tf.Tensor  # int32 [m], the oracle medoid of i's class (eq. 5)
    margin: tf.Tensor
    nmi: tf.Tensor


def _solve(embeddings, labels, gamma, options: InferenceOptions, fraction) -> _Solution:
    """The loss-augmented S, g(S), the oracle medoids and the margin (no gradient), in
    n = num_slots(m, fraction) slots."""
    labels = margins_lib.dense_labels(labels)
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
    return _Solution(medoids, tf.gather(medoids, asg), oracle_partner, margin, nmi)


def _terms(embeddings, labels, gamma, options: InferenceOptions, fraction=None):
    """`ClusterLossTerms` (medoids padded to m): eq. 6 at the solution of `_solve`.

    The compiled solver takes no gradient (its input is stopped): differentiating through
    XLA's slot-count switch would compile a backward program for every slot count.
    """
    sol = compiled.in_fewest_slots(
        _solve, tf.stop_gradient(embeddings), labels, gamma, options, fraction
    )
    loss, score_pred, score_oracle = _hinge(
        embeddings, sol.partner, sol.oracle_partner, gamma, sol.margin
    )
    return ClusterLossTerms(
        loss, score_pred, score_oracle, sol.margin, sol.nmi, sol.medoids
    )


def cluster_loss_terms(
    labels,
    embeddings,
    margin_multiplier,
    enable_pam_finetuning: bool = True,
    margin_type: str = "nmi",
    pam_iterations: int = 5,
    inference: str = "xla",
) -> ClusterLossTerms:
    """The clustering loss together with the quantities it is made of (for logging).

    Same arguments as `cluster_loss`.
    """
    options = inference_options(
        enable_pam_finetuning, margin_type, pam_iterations, inference
    )
    gamma = _gamma(margin_multiplier)
    labels, embeddings = check_labels_embeddings(labels, embeddings, "cluster_loss")
    if compiled.compiles_eagerly(options):
        # One XLA function for the whole loss saves the eager dispatch of its small ops.
        terms = compiled.in_fewest_slots(_terms, embeddings, labels, gamma, options)
    else:
        terms = _terms(embeddings, labels, gamma, options)
    return terms._replace(medoids=_used_slots(terms.medoids, labels))


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
    return cluster_loss_terms(
        labels,
        embeddings,
        margin_multiplier,
        enable_pam_finetuning,
        margin_type,
        pam_iterations,
        inference,
    ).loss


def loss_augmented_inference(
    labels,
    embeddings,
    margin_multiplier,
    enable_pam_finetuning: bool = True,
    margin_type: str = "nmi",
    pam_iterations: int = 5,
    inference: str = "xla",
) -> tf.Tensor:
    """The medoids S of (*) in eq. 6: Algorithm 1, then Algorithm 2 if enabled; no loss.

    Same arguments as `cluster_loss`.

    Returns:
      int32 Tensor [K], indices into the batch, in slot order (slot k = cluster k of g(S)).
    """
    options = inference_options(
        enable_pam_finetuning, margin_type, pam_iterations, inference
    )
    gamma = _gamma(margin_multiplier)
    labels, embeddings = check_labels_embeddings(
        labels, embeddings, "loss_augmented_inference"
    )
    medoids = compiled.in_fewest_slots(
        compiled.inference, embeddings, labels, gamma, options
    )
    return _used_slots(medoids, labels)


def _used_slots(medoids, labels) -> tf.Tensor:
    """The K medoids of S without its unused slots (index m), which all come after them."""
    if (
        tf.executing_eagerly()
    ):  # a slice of known length: ~1 ms less than a mask eagerly
        return medoids[: np.unique(labels.numpy()).size]
    # K from the labels, not from the medoids: a slice whose size XLA must know when it compiles
    # would otherwise depend on the data and recompile the program on every call.
    first = tf.equal(margins_lib.dense_labels(labels), tf.range(tf.shape(labels)[0]))
    return medoids[: tf.reduce_sum(tf.cast(first, tf.int32))]


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
        _gamma(margin_multiplier)
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
        self.degenerate_batches = DegenerateBatchMonitor(name)

    def call(self, y_true, y_pred):
        # Unshuffled data (one class per batch) trains nothing: say so once.
        self.degenerate_batches.observe(y_true)
        return super().call(y_true, y_pred)
