"""How the loss-augmented inference is run: which implementation, XLA compilation, and the
number of slots of S.

Dispatch only, and the public entry of the inference alone (`loss_augmented_inference`); the
math is in `greedy.py` (Algorithm 1), `pam.py` (Algorithm 2) and `cluster.py` (eq. 6);
`numpy_inference.py` is the plain numpy fallback.

Slots. The inference runs in n slots, n = m / f for f in `SLOT_FRACTIONS` (n >= `MIN_SLOTS`,
n <= m), and each batch takes the smallest n that holds its K classes: the per-cluster and
per-class tables of the inference have n rows, so e.g. K = 128 of m = 512 ran about 25% faster in
128 slots than in 512. All shapes inside depend on m and n only, so XLA compiles once per
(batch size, n), the first time a batch needs it.

Compilation. With the "xla" backend, a solver is a cached `jit_compile=True` function per
(options, n), called from wherever the loss runs: eagerly, inside a plain `tf.function` train
step (a `tf.switch_case` on K picks n at run time and only the n that actually run are
compiled), or inlined into a step that is itself XLA-compiled (every n is compiled with it).

Tracing. Every loss is written with explicit `tf.while_loop` / `tf.cond`, so none needs AutoGraph:
the solvers are traced with `autograph=False` and the public losses are `do_not_convert`. AutoGraph
re-reads and rewrites the source of every function it reaches, which was half the first call of a
`jit_compile=True` step at m = 128 (tracing 16.9 -> 6.2 CPU s; BUILD_NOTES).
"""

from collections.abc import Callable
from typing import NamedTuple, TypedDict, Unpack

import numpy as np
import tensorflow as tf

from fl_embed.distances import pairwise_distances
from fl_embed.losses import candidates as cand
from fl_embed.losses import margins as margins_lib
from fl_embed.losses.greedy import greedy_facilities
from fl_embed.losses.numpy_inference import numpy_medoids
from fl_embed.losses.pam import pam_refine
from fl_embed.losses.validation import (
    check_hyperparameter,
    check_labels_embeddings,
    num_classes,
)

BACKENDS = ("xla", "graph", "numpy")
SLOT_FRACTIONS = (1, 2, 4, 8)
MIN_SLOTS = 64


class InferenceOptions(NamedTuple):
    """The settings of the loss-augmented inference (Python values, fixed when traced)."""

    margin_type: str
    enable_pam: bool
    iterations: int  # T, sweeps of Algorithm 2
    backend: str  # one of BACKENDS


class InferenceKwargs(TypedDict, total=False):
    """The keyword arguments of `cluster_loss` that set the inference (see its docstring)."""

    enable_pam_finetuning: bool
    margin_type: str
    pam_iterations: int
    inference: str


def inference_options(
    enable_pam_finetuning: bool = True,
    margin_type: str = "nmi",
    pam_iterations: int = 5,
    inference: str = "xla",
) -> InferenceOptions:
    """Checked `InferenceOptions` (defaults: `cluster_loss`'s); a ValueError naming the bad value."""
    margins_lib.check_margin_type(margin_type)
    if inference not in BACKENDS:
        raise ValueError(
            f"Unknown inference {inference!r}; expected one of {', '.join(BACKENDS)}."
        )
    if (
        isinstance(pam_iterations, bool)
        or not isinstance(pam_iterations, (int, np.integer))
        or pam_iterations < 0
    ):
        raise ValueError(
            f"pam_iterations must be a non-negative int, got {pam_iterations!r}."
        )
    return InferenceOptions(
        margin_type, bool(enable_pam_finetuning), int(pam_iterations), inference
    )


def num_slots(m, fraction: int):
    """n for a batch of m (a Python int or an int32 scalar Tensor) and a slot fraction."""
    if isinstance(m, int):
        return min(m, max(MIN_SLOTS, -(-m // fraction)))
    return tf.minimum(m, tf.maximum(MIN_SLOTS, (m + fraction - 1) // fraction))


def _fractions(m_static) -> tuple:
    """The fractions worth compiling for a batch of `m_static` (None when unknown): one per
    distinct n, smallest f first."""
    if m_static is None:
        return SLOT_FRACTIONS
    sizes = {}
    for f in SLOT_FRACTIONS:
        sizes.setdefault(num_slots(m_static, f), f)
    return tuple(sorted(sizes.values()))


def _fraction_for(m: int, num_classes: int) -> int:
    """The fraction with the fewest slots that still hold `num_classes` (Python ints)."""
    return max(f for f in _fractions(m) if num_slots(m, f) >= num_classes)


def inference_slots(batch_size: int, num_classes: int) -> int:
    """n, the number of slots the XLA inference runs in for a batch of `batch_size` points and
    `num_classes` distinct labels: the fewest of m, m/2, m/4, m/8 (at least 64, at most m)
    holding them. The inference's per-cluster and per-class tables have n rows."""
    if not 1 <= num_classes <= batch_size:
        raise ValueError(
            f"num_classes must be in [1, batch_size={batch_size}], got {num_classes}."
        )
    return num_slots(batch_size, _fraction_for(batch_size, num_classes))


def loss_augmented_medoids(distances, labels, gamma, options, fraction) -> tf.Tensor:
    """S of (*) in eq. 6: Algorithm 1, then Algorithm 2 when enabled.

    `labels`: int32 [m], ids in [0, K) (`validation.class_ids`). Returns int32 [m]: the K
    medoids in slot order, then m, in n = num_slots(m, fraction) slots padded to m ([K] with
    numpy).
    """
    if options.backend == "numpy":
        return numpy_medoids(
            distances,
            labels,
            gamma,
            options.enable_pam,
            options.margin_type,
            options.iterations,
        )
    m = tf.shape(distances)[0]
    n = num_slots(m, fraction)
    # Built once for both algorithms.
    classes = cand.make_classes(labels, options.margin_type, n)
    medoids = greedy_facilities(
        distances, labels, gamma, options.margin_type, n, classes=classes
    )
    if options.enable_pam and options.iterations > 0:
        medoids = pam_refine(
            distances,
            labels,
            medoids,
            gamma,
            options.margin_type,
            options.iterations,
            classes=classes,
        )
    # Every n gives the same output shape: unused slots (index m) up to m.
    return tf.concat([medoids, tf.fill([m - n], m)], axis=0)


def inference(embeddings, labels, gamma, options: InferenceOptions, fraction):
    """`loss_augmented_medoids` of the embeddings (for `in_fewest_slots`)."""
    return loss_augmented_medoids(
        pairwise_distances(embeddings), labels, gamma, options, fraction
    )


_JIT_CACHE: dict = {}


def _compiled(fn: Callable, options: InferenceOptions, fraction, jit: bool):
    """(e, y, g) -> fn(e, y, g, options, fraction); with `jit`, one cached `jit_compile=True`
    function per (fn, options, fraction), compiled once per batch size."""
    call = lambda e, y, g: fn(e, y, g, options, fraction)
    if not jit:
        return call
    key = (fn, options, fraction)
    if key not in _JIT_CACHE:
        _JIT_CACHE[key] = tf.function(call, jit_compile=True, autograph=False)
    return _JIT_CACHE[key]


def in_fewest_slots(
    solve: Callable,
    embeddings,
    labels,
    gamma,
    options: InferenceOptions,
):
    """`solve(embeddings, labels, gamma, options, fraction)` in the fewest slots that hold the
    batch's classes, compiled by XLA with the "xla" backend.

    `labels`: int32 [m], ids in [0, K) (`validation.class_ids`). Eagerly the fraction is chosen
    here from the concrete labels, so only the sizes used are compiled. In a graph, a
    `tf.switch_case` over the fractions picks it at run time. The numpy backend has no slots
    (fraction 1).
    """
    jit = options.backend == "xla"
    if options.backend == "numpy":
        return _compiled(solve, options, 1, jit)(embeddings, labels, gamma)
    if tf.executing_eagerly():
        fraction = _fraction_for(int(labels.shape[0]), num_classes(labels))
        return _compiled(solve, options, fraction, jit)(embeddings, labels, gamma)
    fractions = _fractions(embeddings.shape[0])
    if len(fractions) == 1:
        return _compiled(solve, options, fractions[0], jit)(embeddings, labels, gamma)
    m = tf.shape(embeddings)[0]
    k = num_classes(labels)
    # Slot counts fall as the fraction grows: the branch is the number of smaller ones that fit.
    branch = tf.add_n([tf.cast(num_slots(m, f) >= k, tf.int32) for f in fractions[1:]])
    return tf.switch_case(
        branch,
        [
            lambda f=f: _compiled(solve, options, f, jit)(embeddings, labels, gamma)
            for f in fractions
        ],
    )


def used_slots(medoids, labels) -> tf.Tensor:
    """The K medoids of S without its unused slots (index m), which all come after them.

    K is counted from the labels (ids in [0, K)), not from the medoids: a slice whose size XLA
    must know when it compiles would otherwise depend on the data. Inside a step XLA compiles
    as a whole, the size still makes the labels a compile-time constant (one program per label
    vector), which is why `cluster_loss` never slices.
    """
    return medoids[: num_classes(labels)]


def checked_gamma(margin_multiplier, name: str) -> tf.Tensor:
    """gamma as a float32 scalar, checked by `validation.check_hyperparameter`."""
    gamma = check_hyperparameter(margin_multiplier, "margin_multiplier", name)
    return tf.convert_to_tensor(gamma, tf.float32)


@tf.autograph.experimental.do_not_convert
def loss_augmented_inference(
    labels, embeddings, margin_multiplier, **options: Unpack[InferenceKwargs]
) -> tf.Tensor:
    """The medoids S of (*) in eq. 6: Algorithm 1, then Algorithm 2 if enabled; no loss.

    Same arguments as `cluster.cluster_loss`, its inference options by keyword.

    Returns:
      int32 Tensor [K], indices into the batch, in slot order (slot k = cluster k of g(S)).
    """
    options = inference_options(**options)
    name = "loss_augmented_inference"
    gamma = checked_gamma(margin_multiplier, name)
    labels, embeddings = check_labels_embeddings(labels, embeddings, name)
    medoids = in_fewest_slots(inference, embeddings, labels, gamma, options)
    return used_slots(medoids, labels)
