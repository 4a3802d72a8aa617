"""A thin Keras wrapper shared by every loss: the math lives in plain functions of tensors."""

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from fl_embed.losses.validation import (
    as_tensor,
    check_embedding_dtype,
    check_label_dtype,
    class_ids,
)


class MetricLossWrapper(keras.losses.Loss):
    """Wraps `fn(labels, embeddings, **kwargs)` as a `keras.losses.Loss`.

    Follows the contract of `keras.losses.Circle`: `y_true` holds integer labels [batch] or
    [batch, 1], `y_pred` the embeddings [batch, dim]. The loss is a property of the whole batch,
    so it returns a scalar and Keras' per-sample reduction leaves it unchanged. Subclasses store
    their hyper-parameters in `self._fn_kwargs`, which `get_config` returns, so a saved model
    reloads without `custom_objects`.
    """

    def __init__(
        self,
        fn: Callable,
        name: str,
        reduction: str = "sum_over_batch_size",
        dtype=None,
        **kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras casts y_true to the loss dtype (float32) first, which merges integer ids above
        # 2**24 and fails deep inside on strings: hand it the dense ids 0 .. K - 1 instead, exact
        # in float32. Float labels pass unchanged so that the loss can refuse fractional ones.
        y_true = as_tensor(y_true, "labels", self.name)
        check_label_dtype(y_true, self.name)
        # Keras would cast any y_pred to float32 too, dropping a complex part without a word.
        y_pred = as_tensor(y_pred, "embeddings", self.name)
        check_embedding_dtype(y_pred, self.name)
        column = y_true.shape.rank == 1 or (
            y_true.shape.rank == 2 and y_true.shape[1] == 1
        )
        if y_true.dtype.is_integer and column:
            y_true = class_ids(y_true, self.name)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        # A hyper-parameter held in a Variable (a decayed margin, say) is saved as its current
        # value, so the config stays plain JSON.
        config.update(
            {
                key: float(keras.ops.convert_to_numpy(value))
                if isinstance(value, (keras.Variable, tf.Variable, tf.Tensor))
                else value
                for key, value in self._fn_kwargs.items()
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)
