"""Pixel scaling each backbone expects, shared by the trainer, the evaluator and the export.

The names and formulas match `data_prep.preprocess.SCALINGS` (a test holds the two together), so a
data pipeline built with `scaling=scaling_for(backbone)` feeds the model the scale it was built for.
"""

from collections.abc import Callable

import tensorflow as tf

ScalingFn = Callable[[tf.Tensor], tf.Tensor]


def scale_inception(images: tf.Tensor) -> tf.Tensor:
    """Maps pixels in [0, 255] to [-1, 1], the scale of the Inception backbones.

    Args:
      images: uint8 or float Tensor [..., H, W, C] with values in [0, 255].

    Returns:
      float32 Tensor of the same shape in [-1, 1].
    """
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def scale_unit(images: tf.Tensor) -> tf.Tensor:
    """Maps pixels in [0, 255] to [0, 1], the scale of `small_cnn`.

    Args:
      images: uint8 or float Tensor [..., H, W, C] with values in [0, 255].

    Returns:
      float32 Tensor of the same shape in [0, 1].
    """
    return tf.cast(images, tf.float32) / 255.0


def scale_raw(images: tf.Tensor) -> tf.Tensor:
    """Keeps pixels in [0, 255] (for models that normalise inside), as float32.

    Args:
      images: uint8 or float Tensor [..., H, W, C] with values in [0, 255].

    Returns:
      float32 Tensor of the same shape and values.
    """
    return tf.cast(images, tf.float32)


SCALINGS: dict[str, ScalingFn] = {
    "inception": scale_inception,
    "unit": scale_unit,
    "raw": scale_raw,
}

# Which scaling each backbone was built (and pretrained) for.
BACKBONE_SCALINGS: dict[str, str] = {
    "inception_v3": "inception",
    "bn_inception": "inception",
    "small_cnn": "unit",
}


def scaling_for(backbone: str) -> str:
    """Name of the pixel scaling `backbone` expects, a key of `SCALINGS`.

    Args:
      backbone: one of `fl_embed.models.BACKBONES`.

    Returns:
      "inception" ([-1, 1]) or "unit" ([0, 1]).

    Raises:
      ValueError: unknown backbone.
    """
    if backbone not in BACKBONE_SCALINGS:
        raise ValueError(
            f"Unknown backbone {backbone!r}; use one of {tuple(BACKBONE_SCALINGS)}."
        )
    return BACKBONE_SCALINGS[backbone]


def preprocess_for(backbone: str) -> ScalingFn:
    """The pixel scaling function `backbone` expects.

    Args:
      backbone: one of `fl_embed.models.BACKBONES`.

    Returns:
      A function mapping a uint8 or float image Tensor [..., H, W, C] in [0, 255] to float32 of the
      same shape in the backbone's range.

    Raises:
      ValueError: unknown backbone.
    """
    return SCALINGS[scaling_for(backbone)]


def resolve_scaling(scaling: str | ScalingFn) -> tuple[str, ScalingFn]:
    """Turns a scaling name or function into (name, function).

    Args:
      scaling: a key of `SCALINGS`, or a function float32 [..., H, W, C] in [0, 255] -> float32.

    Returns:
      (name, function); a function that is not one of `SCALINGS` is named by its qualified name.

    Raises:
      ValueError: unknown scaling name.
      TypeError: neither a string nor a callable.
    """
    if isinstance(scaling, str):
        if scaling not in SCALINGS:
            raise ValueError(
                f"Unknown pixel scaling {scaling!r}; use one of {sorted(SCALINGS)}."
            )
        return scaling, SCALINGS[scaling]
    if not callable(scaling):
        raise TypeError(
            f"scaling must be one of {sorted(SCALINGS)} or a callable, got {scaling!r}."
        )
    for name, fn in SCALINGS.items():
        if fn is scaling:
            return name, fn
    return f"custom:{getattr(scaling, '__qualname__', repr(scaling))}", scaling
