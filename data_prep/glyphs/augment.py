"""Training-time augmentation of glyph images: small rotation, scale, shift and stroke width.

Clean renders are easy to retrieve from raw pixels; the augmentation makes the training set look
like many more fonts. Every draw is a stateless function of a seed, so a seeded pipeline repeats.
"""

import math

import tensorflow as tf

MAX_ROTATION_DEGREES = 8.0
MAX_SCALE_CHANGE = 0.1
MAX_SHIFT_PIXELS = 2.0
MAX_STROKE_CHANGE = 1.0


def _inverse_affine(angle, scale, shift, size: int) -> tf.Tensor:
    """Output-to-input pixel map of a rotation and scale about the centre followed by a shift.

    Args:
        angle: float scalar, radians.
        scale: float scalar, > 0.
        shift: float [2], (x, y) pixels.
        size: side of the square image.

    Returns:
        float [1, 8] transform as `ImageProjectiveTransformV3` takes it.
    """
    centre = (size - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    x, y = centre + shift[0], centre + shift[1]
    row = [
        cos,
        sin,
        centre - (cos * x + sin * y),
        -sin,
        cos,
        centre - (-sin * x + cos * y),
        0.0,
        0.0,
    ]
    return tf.reshape(tf.stack([tf.cast(v, tf.float32) for v in row]), [1, 8])


def _stroke(image: tf.Tensor, amount) -> tf.Tensor:
    """Thickens (amount > 0) or thins (amount < 0) ink by blending with a 3x3 dilation or erosion.

    Args:
        image: float [1, H, W, 1], ink high.
        amount: float scalar in [-1, 1]; 1 is a full one-pixel dilation.

    Returns:
        float [1, H, W, 1].
    """
    dilated = tf.nn.max_pool2d(image, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-image, 3, 1, "SAME")
    return (
        image
        + tf.nn.relu(amount) * (dilated - image)
        + tf.nn.relu(-amount) * (eroded - image)
    )


def warp(images: tf.Tensor, angle, scale, shift) -> tf.Tensor:
    """Rotates and scales images about their centre, then shifts them (bilinear, background fill).

    Args:
        images: float [n, H, W, 1] with H == W, ink high.
        angle: float scalar, radians.
        scale: float scalar, > 0 (above 1 enlarges).
        shift: float [2], (x, y) pixels.

    Returns:
        float [n, H, W, 1].
    """
    size = int(images.shape[1])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_inverse_affine(angle, scale, shift, size),
        output_shape=tf.constant([size, size], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def augment(
    image: tf.Tensor,
    seed: tf.Tensor,
    max_rotation_degrees: float = MAX_ROTATION_DEGREES,
    max_scale_change: float = MAX_SCALE_CHANGE,
    max_shift_pixels: float = MAX_SHIFT_PIXELS,
    max_stroke_change: float = MAX_STROKE_CHANGE,
) -> tf.Tensor:
    """Randomly rotates, scales, shifts and changes the stroke width of one glyph image.

    Each parameter is drawn uniformly from [-max, max] (scale from [1 - max, 1 + max]); the image
    is resampled bilinearly, the outside filled with background.

    Args:
        image: uint8 [H, W, 1] with H == W, ink high.
        seed: int32/int64 [2], the stateless seed of this example's draws.
        max_rotation_degrees: largest rotation either way.
        max_scale_change: largest relative change of size.
        max_shift_pixels: largest shift along each axis.
        max_stroke_change: largest stroke change, in pixels of dilation or erosion (<= 1).

    Returns:
        uint8 [H, W, 1].
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    angle = (
        tf.random.stateless_uniform([], seeds[0], -1.0, 1.0)
        * max_rotation_degrees
        * math.pi
        / 180.0
    )
    scale = (
        1.0 + tf.random.stateless_uniform([], seeds[1], -1.0, 1.0) * max_scale_change
    )
    shift = tf.random.stateless_uniform([2], seeds[2], -1.0, 1.0) * max_shift_pixels
    stroke = tf.random.stateless_uniform([], seeds[3], -1.0, 1.0) * max_stroke_change
    warped = warp(tf.cast(image, tf.float32)[None], angle, scale, shift)
    out = _stroke(warped, stroke)[0]
    return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)


def augment_dataset(
    dataset: tf.data.Dataset, seed: int | None = None, **ranges: float
) -> tf.data.Dataset:
    """Applies `augment` to every image of an (image, label) data set.

    With a seed the draws repeat from run to run but differ from one pass over the data set to the
    next (each epoch sees new variants).

    Args:
        dataset: yields (uint8 [H, W, 1], label).
        seed: seed of the draws; None for nondeterministic draws.
        **ranges: `augment`'s max_* arguments (default the glyph set's).

    Returns:
        tf.data.Dataset of (uint8 [H, W, 1], label).
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(dataset, seeds).map(
        lambda example, s: (augment(example[0], s, **ranges), example[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
