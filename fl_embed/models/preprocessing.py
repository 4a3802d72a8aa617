"""Image preprocessing shared by the data pipelines, the trainer, the evaluator and the export.

The one home of the pixel scalings (`SCALINGS`; which one a backbone expects is its registry entry)
and of the test-time geometry of section 3.5 (square resize, center crop), so the data pipeline
(`data_prep.preprocess`) and the exported serving graph (`fl_embed.export`) cannot drift apart.
"""

from collections.abc import Callable

import tensorflow as tf

from fl_embed.models.registry import get_backbone

ScalingFn = Callable[[tf.Tensor], tf.Tensor]

# Section 3.5: images resized to 256x256, then a 227x227 crop (random in training, center in test).
RESIZE = 256
CROP = 227


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


def get_scaling(name: str) -> ScalingFn:
    """The function of the pixel scaling `name`; ValueError naming the choices otherwise."""
    if name not in SCALINGS:
        raise ValueError(
            f"Unknown pixel scaling {name!r}; use one of {sorted(SCALINGS)}."
        )
    return SCALINGS[name]


def scaling_for(backbone: str) -> str:
    """Name of the pixel scaling `backbone` expects, a key of `SCALINGS`.

    Args:
      backbone: one of `fl_embed.models.BACKBONES`.

    Returns:
      "inception" ([-1, 1]) or "unit" ([0, 1]).

    Raises:
      ValueError: unknown backbone.
    """
    return get_backbone(backbone).scaling


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
        return scaling, get_scaling(scaling)
    if not callable(scaling):
        raise TypeError(
            f"scaling must be one of {sorted(SCALINGS)} or a callable, got {scaling!r}."
        )
    for name, fn in SCALINGS.items():
        if fn is scaling:
            return name, fn
    return f"custom:{getattr(scaling, '__qualname__', repr(scaling))}", scaling


def resize_square(image: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear resize to size x size, the aspect ratio not kept (as the paper does), as float32.

    Args:
      image: uint8 or float Tensor [H, W, C] with values in [0, 255].
      size: output side length.

    Returns:
      float32 Tensor [size, size, C] in [0, 255].
    """
    return tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear")


def center_crop(image: tf.Tensor, crop: int = CROP) -> tf.Tensor:
    """The single center crop of test time (section 3.5: 227 out of 256).

    Args:
      image: Tensor [H, W, C] with H, W >= crop.
      crop: output side length.

    Returns:
      Tensor [crop, crop, C]; an odd margin leaves the extra row / column at the bottom / right.
    """
    offset_h = (tf.shape(image)[0] - crop) // 2
    offset_w = (tf.shape(image)[1] - crop) // 2
    return tf.image.crop_to_bounding_box(image, offset_h, offset_w, crop, crop)
