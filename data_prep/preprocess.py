"""Image preprocessing of section 3.5: resize to 256x256, then a 227x227 crop.

Training: random 227x227 crop and random horizontal mirror. Test: a single center 227x227 crop.
The pixel scaling is the one the chosen backbone expects (the paper's Inception: [-1, 1]).
"""

import tensorflow as tf

from fl_embed.models.preprocessing import (
    CROP,
    RESIZE,
    SCALINGS,
    center_crop,
    get_scaling,
    resize_square,
)

__all__ = [
    "CROP",
    "RESIZE",
    "SCALINGS",
    "center_crop",
    "check_scaling",
    "preprocess",
    "random_crop_mirror",
    "resize",
    "scale_pixels",
]


def check_scaling(scaling: str) -> None:
    """Raises ValueError naming the choices when `scaling` is not one of `SCALINGS`."""
    get_scaling(scaling)


def scale_pixels(image: tf.Tensor, scaling: str = "inception") -> tf.Tensor:
    """Maps float pixels in [0, 255] to the range a backbone expects.

    Args:
      image: float32 Tensor [..., H, W, 3] in [0, 255].
      scaling: one of `SCALINGS` ("inception" -> [-1, 1], "unit" -> [0, 1], "raw" -> [0, 255]).

    Returns:
      float32 Tensor of the same shape.

    Raises:
      ValueError: unknown scaling.
    """
    return get_scaling(scaling)(image)


def resize(image: tf.Tensor, size: int = RESIZE) -> tf.Tensor:
    """Resizes to a size x size square (aspect ratio not kept, as the paper does) as float32 [0, 255].

    Args:
      image: uint8 or float Tensor [H, W, C] with C in {1, 3}; grayscale is repeated to RGB.
      size: output side length.

    Returns:
      float32 Tensor [size, size, 3].
    """
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return resize_square(image, size)


def random_crop_mirror(
    image: tf.Tensor, seed: tf.Tensor, crop: int = CROP
) -> tf.Tensor:
    """Random crop and random horizontal mirror for training, stateless so a seed repeats it.

    Args:
      image: Tensor [S, S, 3] with S >= crop.
      seed: int Tensor [2], the stateless seed of this example.
      crop: output side length.

    Returns:
      Tensor [crop, crop, 3].
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def preprocess(
    image: tf.Tensor,
    training: bool,
    seed: tf.Tensor | None = None,
    scaling: str = "inception",
    resize_to: int = RESIZE,
    crop: int = CROP,
) -> tf.Tensor:
    """Section 3.5 preprocessing of one decoded image.

    Args:
      image: uint8 Tensor [H, W, C], C in {1, 3}.
      training: random crop + mirror (True) or center crop (False).
      seed: int Tensor [2] for the training randomness; required when training.
      scaling: pixel scaling of the backbone, see `scale_pixels`.
      resize_to: square side before cropping (paper: 256).
      crop: crop side (paper: 227).

    Returns:
      float32 Tensor [crop, crop, 3].

    Raises:
      ValueError: crop larger than resize_to, unknown scaling, or training without a seed.
    """
    if crop > resize_to:
        raise ValueError(f"crop {crop} must not exceed resize_to {resize_to}.")
    check_scaling(scaling)
    image = resize(image, resize_to)
    if training:
        if seed is None:
            raise ValueError(
                "Training preprocessing needs a per-example seed Tensor [2]."
            )
        image = random_crop_mirror(image, seed, crop)
    else:
        image = center_crop(image, crop)
    return scale_pixels(image, scaling)
