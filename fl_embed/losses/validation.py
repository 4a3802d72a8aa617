"""Input checks shared by every loss: clear errors instead of silent wrong answers."""

import numbers
import warnings

import numpy as np
import tensorflow as tf

# The squared distances and dot products every loss forms are bounded by 4 max_i ||x_i||^2; above
# this the float32 arithmetic overflows and the loss is NaN or Inf rather than a number.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def class_ids(labels: tf.Tensor, name: str) -> tf.Tensor:
    """Each class id replaced by the rank of its first appearance: 0, 1, ... K - 1, exactly.

    The ids are compared in their own dtype before any narrowing, so int64 ids beyond int32 (or
    beyond float32's 2**24) stay distinct classes.

    Args:
      labels: integer or float Tensor [m] of class ids.
      name: the caller's name, used in error messages.

    Returns:
      int32 Tensor [m], ids in [0, K) for the K distinct labels.

    Raises:
      ValueError: labels that are not numbers (e.g. strings).
    """
    labels = tf.convert_to_tensor(labels)
    check_label_dtype(labels, name)
    return tf.unique(tf.reshape(labels, [-1]), out_idx=tf.int32).idx


def as_tensor(value, what: str, name: str) -> tf.Tensor:
    """`value` as a Tensor; ValueError naming the argument when it cannot be one (None, a
    ragged list, mixed types) instead of TensorFlow's conversion error."""
    try:
        return tf.convert_to_tensor(value)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as err:
        raise ValueError(f"{name}: {what} cannot be read as a tensor: {err}") from None


def check_embedding_dtype(embeddings: tf.Tensor, name: str) -> None:
    """Raises ValueError unless `embeddings` has a float dtype."""
    if not embeddings.dtype.is_floating:
        raise ValueError(
            f"{name}: embeddings must be a float tensor, got dtype {embeddings.dtype.name}."
        )


def num_classes(ids: tf.Tensor) -> int | tf.Tensor:
    """K of the ids `class_ids` returns: a Python int eagerly, an int32 scalar in a graph."""
    if tf.executing_eagerly():
        return int(np.max(ids.numpy())) + 1
    return tf.reduce_max(ids) + 1


def check_label_dtype(labels: tf.Tensor, name: str) -> None:
    """Raises ValueError unless `labels` has an integer or float dtype (class ids)."""
    if not (labels.dtype.is_integer or labels.dtype.is_floating):
        raise ValueError(
            f"{name}: labels must be integer class ids, got dtype {labels.dtype.name}"
            + (
                " (map class names to integers first)"
                if labels.dtype == tf.string
                else ""
            )
            + "."
        )


def check_labels_embeddings(
    labels, embeddings, name: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Validate and canonicalise the (labels, embeddings) pair every loss takes.

    Args:
      labels: integer Tensor [m] or [m, 1] of any integer dtype (whole-valued floats accepted).
      embeddings: float Tensor [m, d], d >= 1.
      name: the caller's name, used in error messages.

    Returns:
      (labels int32 [m], embeddings float32 [m, d]). The labels are the dense ids of
      `class_ids` (0 .. K - 1 in order of first appearance; only equality of labels matters to
      a loss). Embeddings of any float dtype (float16, bfloat16 under mixed precision) are
      computed in float32.

    Raises:
      ValueError: wrong rank or dtype (string labels included), d = 0, a static batch-size
        mismatch or an empty batch.
      tf.errors.InvalidArgumentError: at run time, NaN/Inf embeddings, embeddings so large that
        their squared distances overflow float32 (4 max_i ||x_i||^2 above 3.4e38), non-integer
        float labels, or a dynamic batch-size mismatch / empty batch / d = 0.
    """
    embeddings = as_tensor(embeddings, "embeddings", name)
    labels = as_tensor(labels, "labels", name)
    check_embedding_dtype(embeddings, name)
    check_label_dtype(labels, name)
    checks = []
    if labels.dtype.is_floating:
        # Keras hands y_true over as float32 unless told otherwise; accept whole-valued floats only.
        checks.append(
            tf.debugging.assert_equal(
                labels,
                tf.round(labels),
                message=f"{name}: labels must be integer class ids",
            )
        )
    if embeddings.shape.rank is not None and embeddings.shape.rank != 2:
        raise ValueError(
            f"{name}: embeddings must have shape [batch, dim], got shape {embeddings.shape}."
        )
    if labels.shape.rank is not None:
        if labels.shape.rank == 2 and labels.shape[1] == 1:
            labels = tf.squeeze(labels, axis=1)
        elif labels.shape.rank != 1:
            raise ValueError(
                f"{name}: labels must have shape [batch] or [batch, 1], got shape {labels.shape}."
            )
    m_lab, m_emb = labels.shape[0], embeddings.shape[0]
    if m_lab is not None and m_emb is not None and m_lab != m_emb:
        raise ValueError(
            f"{name}: labels and embeddings disagree on the batch size: labels {labels.shape}, "
            f"embeddings {embeddings.shape}."
        )
    if m_emb == 0 or m_lab == 0:
        raise ValueError(f"{name}: empty batch (embeddings shape {embeddings.shape}).")
    dim = embeddings.shape[1] if embeddings.shape.rank == 2 else None
    if dim == 0:
        raise ValueError(
            f"{name}: embeddings have dimension d = 0 (shape {embeddings.shape}); every "
            "distance would be 0."
        )
    embeddings = tf.cast(embeddings, tf.float32)
    if tf.executing_eagerly() and not checks:
        # The same checks on the concrete values, without the ~1 ms of eager assert ops.
        return _checked_eagerly(labels, embeddings, name)
    labels = class_ids(labels, name)
    if m_lab is None or m_emb is None:
        # Only checkable at run time (graphs with an unknown batch size).
        checks += [
            tf.debugging.assert_equal(
                tf.shape(labels)[0],
                tf.shape(embeddings)[0],
                message=f"{name}: labels and embeddings disagree on the batch size",
            ),
            tf.debugging.assert_positive(
                tf.shape(embeddings)[0], message=f"{name}: empty batch"
            ),
        ]
    if dim is None:
        checks.append(
            tf.debugging.assert_positive(
                tf.shape(embeddings)[-1],
                message=f"{name}: embeddings have dimension d = 0",
            )
        )
    checks.append(
        tf.debugging.assert_all_finite(
            embeddings, message=f"{name}: embeddings contain NaN or Inf"
        )
    )
    with tf.control_dependencies(checks[-1:]):
        largest = tf.reduce_max(tf.reduce_sum(tf.square(embeddings), axis=1))
        checks.append(
            tf.debugging.assert_less_equal(
                largest,
                _FLOAT32_MAX / 4.0,
                message=(
                    f"{name}: embeddings too large: squared distances overflow float32 "
                    "(L2-normalise or scale the embeddings down); largest squared norm vs bound"
                ),
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(labels), tf.identity(embeddings)


def _checked_eagerly(labels, embeddings, name: str) -> tuple[tf.Tensor, tf.Tensor]:
    """`check_labels_embeddings`' run-time checks and class ids, on concrete tensors."""
    values = embeddings.numpy()
    if not np.isfinite(values).all():
        raise tf.errors.InvalidArgumentError(
            None, None, f"{name}: embeddings contain NaN or Inf"
        )
    largest = float(np.max(np.sum(np.square(values, dtype=np.float64), axis=1)))
    if largest > _FLOAT32_MAX / 4.0:
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            f"{name}: embeddings too large: squared distances overflow float32 (L2-normalise "
            f"or scale the embeddings down); largest squared norm {largest:g}",
        )
    ids = np.reshape(labels.numpy(), [-1])
    # Ids in order of first appearance, exactly as `class_ids` (tf.unique) numbers them.
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int32)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int32)
    return tf.constant(rank[inverse.reshape(-1)]), embeddings


def check_hyperparameter(value, name: str, loss_name: str) -> float | tf.Tensor:
    """Validates a non-negative hyper-parameter (a margin, a regulariser weight).

    Args:
      value: a Python or numpy number, or a scalar Tensor / Variable (e.g. one a schedule
        changes during training).
      name: the argument's name, for error messages.
      loss_name: the loss it belongs to, for error messages.

    Returns:
      A number as a Python float; a Tensor as a float32 scalar that carries a run-time check.

    Raises:
      ValueError: a number that is NaN, infinite or negative; a bool, a string or anything else
        that is not a number; a Tensor that is not a numeric scalar.
      tf.errors.InvalidArgumentError: at run time, a Tensor that is NaN, infinite or negative.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(
                f"{loss_name}: {name} must be a finite number >= 0, got {value!r}."
            )
        return float(value)
    if not (tf.is_tensor(value) or isinstance(value, (tf.Variable, np.ndarray))) or (
        hasattr(value, "dtype")
        and not (
            tf.as_dtype(value.dtype).is_floating or tf.as_dtype(value.dtype).is_integer
        )
    ):
        raise ValueError(
            f"{loss_name}: {name} must be a number >= 0, got {value!r} "
            f"({type(value).__name__})."
        )
    tensor = tf.cast(tf.convert_to_tensor(value), tf.float32)
    if tensor.shape.rank not in (None, 0):
        raise ValueError(
            f"{loss_name}: {name} must be a scalar, got shape {tensor.shape}."
        )
    checks = [
        tf.debugging.assert_all_finite(
            tensor, message=f"{loss_name}: {name} must be finite"
        ),
        tf.debugging.assert_non_negative(
            tensor, message=f"{loss_name}: {name} must be >= 0"
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


class DegenerateBatchWarning(UserWarning):
    """A batch on which a loss is 0 whatever the embeddings (so it trains nothing)."""


class DegenerateBatchMonitor:
    """Counts the batches a Keras loss sees and warns once when one of them is degenerate.

    A batch of one class, or of classes of one item each, has no pair to pull together or no
    class to push apart: the clustering loss is exactly 0 on it and gives no gradient. Data fed
    to `model.fit` sorted by class (unshuffled) is made of such batches. The paper samples
    batches of several classes with several items each (`fl_embed.samplers.ClassRatioSampler`).

    The check runs eagerly and in `tf.function`s (a `tf.py_function` callback); in a step that
    XLA compiles as a whole (`model.compile(jit_compile=True)`) no Python callback can run, so
    there it is skipped.

    Args:
      name: the loss's name, used in the warning.

    Attributes:
      batches: how many batches were seen.
      degenerate: (batch index, reason) of every degenerate batch seen, batch 0 first.
    """

    def __init__(self, name: str):
        self.name = name
        self.batches = 0
        self.degenerate: list[tuple[int, str]] = []

    def observe(self, labels) -> None:
        """Records one batch of `labels` (any shape, class ids); warns at the first degenerate one.

        Raises nothing and changes nothing in the loss; skipped under XLA compilation.
        """
        if _in_xla_compilation():
            return
        labels = tf.reshape(tf.convert_to_tensor(labels), [-1])
        num_classes = tf.size(tf.unique(labels).y)
        if tf.executing_eagerly():
            self._record(int(num_classes), int(tf.size(labels)))
            return
        tf.py_function(
            lambda k, m: self._record(int(k), int(m)) or 0,
            [num_classes, tf.size(labels)],
            tf.int32,
        )

    def _record(self, num_classes: int, size: int) -> None:
        index = self.batches
        self.batches += 1
        if num_classes == 1:
            reason = f"all {size} labels are one class"
        elif size > 1 and num_classes == size:
            reason = f"all {size} labels are different classes"
        else:
            return
        self.degenerate.append((index, reason))
        if len(self.degenerate) == 1:
            warnings.warn(
                f"{self.name}: batch {index} is degenerate ({reason}): the loss is 0 and trains "
                "nothing. Shuffle the data, or sample batches of several classes with several "
                "items each (fl_embed.samplers.ClassRatioSampler, as the paper does). Warned "
                "once; every degenerate batch is listed in the loss's "
                "`degenerate_batches.degenerate`.",
                DegenerateBatchWarning,
                stacklevel=2,
            )


def _in_xla_compilation() -> bool:
    """Whether the op being built belongs to a function XLA compiles as a whole."""
    # tf.function(jit_compile=True) traces its body inside an XLA control-flow context; there is
    # no public API to ask for it.
    from tensorflow.python.ops import control_flow_util

    return bool(
        control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    )
