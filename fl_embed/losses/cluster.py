"""The structured facility-location clustering loss (paper eq. 6) and its subgradient (eqs. 11-13).

A drop-in for the authors' `tf.contrib.losses.metric_learning.cluster_loss`.
"""

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from fl_embed.distances import pairwise_distances
from fl_embed.losses import facility_location as fl
from fl_embed.losses import margins as margins_lib
from fl_embed.losses.base import MetricLossWrapper
from fl_embed.losses.facility_location_numpy import loss_augmented_inference_np
from fl_embed.losses.validation import DegenerateBatchMonitor, check_labels_embeddings

INFERENCE_BACKENDS = ("xla", "graph", "numpy")


class ClusterLossTerms(NamedTuple):
    """Everything the loss computes for one batch; only `loss` carries a gradient."""

    loss: tf.Tensor  # float32 scalar, eq. 6
    score_pred: tf.Tensor  # F(X, S) at the loss-augmented S
    score_oracle: tf.Tensor  # F~(X, y*), eq. 5
    margin: tf.Tensor  # Delta(g(S), y*), eq. 8
    nmi: (
        tf.Tensor
    )  # NMI(g(S), y*): the batch clustering quality the margin is built from
    medoids: tf.Tensor  # int32 [K], S in slot order


class _Solution(NamedTuple):
    medoids: tf.Tensor
    partner: tf.Tensor  # int32 [m], j*(i): the medoid of i's cluster under g(S)
    oracle_partner: tf.Tensor  # int32 [m], the oracle medoid of i's class
    margin: tf.Tensor
    nmi: tf.Tensor


def _check_options(
    margin_multiplier, margin_type, pam_iterations, inference
) -> tf.Tensor:
    margins_lib.check_margin_type(margin_type)
    if inference not in INFERENCE_BACKENDS:
        raise ValueError(
            f"Unknown inference {inference!r}; expected one of {', '.join(INFERENCE_BACKENDS)}."
        )
    if (
        isinstance(pam_iterations, bool)
        or not isinstance(pam_iterations, (int, np.integer))
        or pam_iterations < 0
    ):
        raise ValueError(
            f"pam_iterations must be a non-negative int, got {pam_iterations!r}."
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
    with tf.control_dependencies(
        [
            tf.debugging.assert_non_negative(
                gamma, message="cluster_loss: margin_multiplier must be >= 0"
            )
        ]
    ):
        return tf.identity(gamma)


def _dense_labels(labels: tf.Tensor) -> tf.Tensor:
    """Each label replaced by the index of its class's first member: ids in [0, m), XLA-friendly."""
    m = tf.shape(labels)[0]
    same = tf.equal(labels[:, None], labels[None, :])
    return tf.reduce_min(tf.where(same, tf.range(m)[None, :], m), axis=1)


def _solution(distances, labels, medoids, margin_type) -> _Solution:
    """Assignment, oracle medoids and margin for the medoids S (unused slots = m allowed)."""
    asg = fl.cluster_assignment(distances, medoids)
    _, oracle_partner = fl.oracle_score(distances, labels)
    s_ac, s_a, s_c, s_e = margins_lib.contingency_sums(asg, labels, margin_type)
    m = tf.cast(tf.shape(labels)[0], tf.float32)
    margin = 1.0 - margins_lib.score_from_sums(margin_type, s_ac, s_a, s_c, m, s_e)
    if margin_type == "nmi":
        nmi = 1.0 - margin
    else:
        s_ac, s_a, s_c, _ = margins_lib.contingency_sums(asg, labels, "nmi")
        nmi = margins_lib.score_from_sums("nmi", s_ac, s_a, s_c, m)
    return _Solution(medoids, tf.gather(medoids, asg), oracle_partner, margin, nmi)


# The XLA inference is compiled for n = m / f slots, f in _SLOT_FRACTIONS (n >= _MIN_SLOTS, n <= m),
# and each batch runs with the smallest n that holds its K classes: the per-cluster and per-class
# tables of the inference have n rows, so e.g. K = 128 of m = 512 ran about 25% faster in 128
# slots than in 512. A size is compiled the first time a batch needs it.
_SLOT_FRACTIONS = (1, 2, 4, 8)
_MIN_SLOTS = 64


def _num_slots(m, fraction: int):
    """n for a batch of m (a Python int or an int32 scalar Tensor) and a slot fraction."""
    if isinstance(m, int):
        return min(m, max(_MIN_SLOTS, -(-m // fraction)))
    return tf.minimum(m, tf.maximum(_MIN_SLOTS, (m + fraction - 1) // fraction))


def _fractions(m_static) -> tuple:
    """The slot fractions worth compiling for a batch of `m_static` (None when unknown): one per
    distinct n, smallest f first."""
    if m_static is None:
        return _SLOT_FRACTIONS
    sizes = {}
    for f in _SLOT_FRACTIONS:
        sizes.setdefault(_num_slots(m_static, f), f)
    return tuple(sorted(sizes.values()))


def _fraction_for(m: int, num_classes: int) -> int:
    """The fraction with the fewest slots that still hold `num_classes` (Python ints)."""
    return max(f for f in _fractions(m) if _num_slots(m, f) >= num_classes)


def inference_slots(batch_size: int, num_classes: int) -> int:
    """n, the number of slots the XLA inference runs in for a batch of `batch_size` points and
    `num_classes` distinct labels: the fewest of m, m/2, m/4, m/8 (at least 64, at most m)
    holding them. The inference's per-cluster and per-class tables have n rows."""
    if not 1 <= num_classes <= batch_size:
        raise ValueError(
            f"num_classes must be in [1, batch_size={batch_size}], got {num_classes}."
        )
    return _num_slots(batch_size, _fraction_for(batch_size, num_classes))


def _solve(
    embeddings, labels, gamma, margin_type, enable_pam, iterations, inference, fraction
) -> _Solution:
    """Distances, inference, assignment, oracle medoids and margin for a batch of K classes in
    n = _num_slots(m, fraction) >= K slots (all shapes depend on m and n only)."""
    distances = pairwise_distances(embeddings)
    if inference == "numpy":
        medoids = tf.numpy_function(
            lambda d, y, g: loss_augmented_inference_np(
                d, y, g, enable_pam, margin_type, iterations
            ),
            [distances, labels, gamma],
            tf.int32,
            stateful=False,
        )
        medoids = tf.ensure_shape(medoids, [None])
    else:
        m = tf.shape(embeddings)[0]
        n = _num_slots(m, fraction)
        medoids = fl.inference(
            distances, labels, gamma, margin_type, enable_pam, iterations, num_slots=n
        )
        # Every n gives the same output shape: unused slots (index m) up to m.
        medoids = tf.concat([medoids, tf.fill([m - n], m)], axis=0)
    return _solution(distances, labels, medoids, margin_type)


def _pair_distance_sum(embeddings: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.norm(embeddings - tf.gather(embeddings, partner), axis=1))


def _pair_distance_sum_grad(embeddings: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    """d/dX of sum_i ||x_i - x_{p(i)}||: unit vectors, zero for pairs at zero distance (eq. 12)."""
    diff = embeddings - tf.gather(embeddings, partner)
    norm = tf.norm(diff, axis=1, keepdims=True)
    unit = tf.where(norm > 0.0, diff / tf.where(norm > 0.0, norm, 1.0), 0.0)
    return unit - tf.math.unsorted_segment_sum(unit, partner, tf.shape(embeddings)[0])


def _hinge(
    embeddings, partner, oracle_partner, gamma, margin, score_pred, score_oracle
):
    """[F(X, S) + gamma Delta - F~(X, y*)]_+ with S and the oracle medoids fixed, eqs. 6 and 11-13.

    `score_pred` and `score_oracle` are F(X, S) and F~(X, y*) already computed (without gradient);
    the custom gradient supplies their subgradients.
    """

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

    return hinge(embeddings)


_JIT_FUNCTIONS: dict = {}


def _bind(fn, args: tuple, jit: bool):
    """(e, y, g) -> fn(e, y, g, *args); with `jit`, one cached `jit_compile=True` function per
    (fn, args), compiled once per batch size."""
    if not jit:
        return lambda e, y, g: fn(e, y, g, *args)
    key = (fn.__name__, *args)
    if key not in _JIT_FUNCTIONS:
        _JIT_FUNCTIONS[key] = tf.function(
            lambda e, y, g: fn(e, y, g, *args), jit_compile=True
        )
    return _JIT_FUNCTIONS[key]


def _solver(
    margin_type: str, enable_pam: bool, iterations: int, inference: str, fraction: int
):
    """`_solve` for these options and slot fraction: with "xla" a cached `jit_compile=True`
    function (compiled once per batch size, wherever it is called from: eagerly, inside a plain
    `tf.function` train step, or inlined into a step that is XLA-compiled itself); otherwise
    plain TensorFlow ops."""
    args = (margin_type, enable_pam, iterations, inference, fraction)
    return _bind(_solve, args, jit=inference == "xla")


def _solve_any(embeddings, labels, num_classes, gamma, options: tuple, fraction):
    """`_solve` in the fewest slots that hold `num_classes`: `fraction` when the caller knows it
    (a Python int), otherwise a `tf.switch_case` over the fractions at run time. In a plain
    `tf.function` only the branches that run are ever compiled; inside a function that is
    XLA-compiled as a whole, every branch is."""
    if fraction is not None or options[-1] == "numpy":
        return _solver(*options, fraction or 1)(embeddings, labels, gamma)
    fractions = _fractions(embeddings.shape[0])
    if len(fractions) == 1:
        return _solver(*options, fractions[0])(embeddings, labels, gamma)
    m = tf.shape(embeddings)[0]
    # Slot counts fall as the fraction grows: the branch is the number of smaller ones that fit.
    branch = tf.add_n(
        [tf.cast(_num_slots(m, f) >= num_classes, tf.int32) for f in fractions[1:]]
    )
    return tf.switch_case(
        branch,
        [
            lambda f=f: _solver(*options, f)(embeddings, labels, gamma)
            for f in fractions
        ],
    )


def _terms(
    embeddings,
    labels,
    gamma,
    margin_type,
    enable_pam,
    iterations,
    inference,
    fraction=None,
):
    """Loss (with its custom gradient), F(X, S), F~, margin, NMI, padded medoids, K."""
    dense = _dense_labels(labels)
    stopped = tf.stop_gradient(embeddings)
    num_classes = tf.reduce_sum(
        tf.cast(tf.equal(dense, tf.range(tf.shape(dense)[0])), tf.int32)
    )
    options = (margin_type, enable_pam, iterations, inference)
    sol = _solve_any(stopped, dense, num_classes, gamma, options, fraction)
    score_pred = -_pair_distance_sum(stopped, sol.partner)
    score_oracle = -_pair_distance_sum(stopped, sol.oracle_partner)
    loss = _hinge(
        embeddings,
        sol.partner,
        sol.oracle_partner,
        gamma,
        sol.margin,
        score_pred,
        score_oracle,
    )
    return loss, score_pred, score_oracle, sol.margin, sol.nmi, sol.medoids, num_classes


def _terms_fn(
    margin_type: str, enable_pam: bool, iterations: int, inference: str, labels
):
    """`_terms` for these options. Eagerly, with the "xla" inference, the whole of it (loss,
    custom gradient and inference) is one cached `jit_compile=True` function, which saves the
    eager dispatch of the small ops around the inference; the number of slots is then chosen
    here, from the concrete labels, so that only the sizes used are compiled."""
    args = (margin_type, enable_pam, iterations, inference)
    if not (inference == "xla" and tf.executing_eagerly()):
        return _bind(_terms, args, jit=False)
    num_classes = np.unique(labels.numpy()).size
    fraction = _fraction_for(int(labels.shape[0]), num_classes)
    return _bind(_terms, (*args, fraction), jit=True)


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
    gamma = _check_options(margin_multiplier, margin_type, pam_iterations, inference)
    labels, embeddings = check_labels_embeddings(labels, embeddings, "cluster_loss")
    loss, score_pred, score_oracle, margin, nmi, medoids, num_classes = _terms_fn(
        margin_type,
        bool(enable_pam_finetuning),
        int(pam_iterations),
        inference,
        labels,
    )(embeddings, labels, gamma)
    return ClusterLossTerms(
        loss=loss,
        score_pred=score_pred,
        score_oracle=score_oracle,
        margin=margin,
        nmi=nmi,
        medoids=medoids[:num_classes],
    )


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
    """The medoids S of (*) in eq. 6: Algorithm 1, then Algorithm 2 if enabled.

    Same arguments as `cluster_loss`.

    Returns:
      int32 Tensor [K], indices into the batch, in slot order (slot k = cluster k of g(S)).
    """
    return cluster_loss_terms(
        labels,
        embeddings,
        margin_multiplier,
        enable_pam_finetuning,
        margin_type,
        pam_iterations,
        inference,
    ).medoids


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
        _check_options(
            margin_multiplier,
            margin_type,
            pam_iterations,
            inference,
        )
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

    def get_config(self) -> dict:
        config = super().get_config()
        gamma = config["margin_multiplier"]
        if not isinstance(gamma, (int, float)):
            config["margin_multiplier"] = float(keras.ops.convert_to_numpy(gamma))
        return config
