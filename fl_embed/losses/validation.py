"""Input checks shared by every loss: clear errors instead of silent wrong answers."""

import tensorflow as tf


def check_labels_embeddings(
    labels, embeddings, name: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Validate and canonicalise the (labels, embeddings) pair every loss takes.

    Args:
      labels: integer Tensor [m] or [m, 1].
      embeddings: float Tensor [m, d].
      name: the caller's name, used in error messages.

    Returns:
      (labels int32 [m], embeddings float32 [m, d]); embeddings of any float dtype (float16,
      bfloat16 under mixed precision) are computed in float32.

    Raises:
      ValueError: wrong rank, dtype, or a static batch-size mismatch / empty batch.
      tf.errors.InvalidArgumentError: at run time, NaN/Inf embeddings, or a dynamic batch-size
        mismatch / empty batch.
    """
    embeddings = tf.convert_to_tensor(embeddings)
    labels = tf.convert_to_tensor(labels)
    if not embeddings.dtype.is_floating:
        raise ValueError(
            f"{name}: embeddings must be a float tensor, got dtype {embeddings.dtype.name}."
        )
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
    elif not labels.dtype.is_integer:
        raise ValueError(
            f"{name}: labels must be an integer tensor, got dtype {labels.dtype.name}."
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
    embeddings = tf.cast(embeddings, tf.float32)
    labels = tf.cast(labels, tf.int32)
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
    checks.append(
        tf.debugging.assert_all_finite(
            embeddings, message=f"{name}: embeddings contain NaN or Inf"
        )
    )
    with tf.control_dependencies(checks):
        return tf.identity(labels), tf.identity(embeddings)
