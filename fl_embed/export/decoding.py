"""Decoding the encoded images a served model receives: JPEG / PNG checks, a pixel limit read
from the headers before any allocation, transparency composited on a background, resize and
center crop (section 3.5's test-time preprocessing)."""

from typing import NamedTuple

import tensorflow as tf

from fl_embed.models.preprocessing import (
    center_crop,
    resize_square,
)

_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
# Writers may append bytes after a JPEG's end-of-image marker; look for it this far from the end.
_JPEG_TAIL = 1024
# 25 megapixels (e.g. 5000 x 5000) decode to 75 MB of RGB and 300 MB as float32; a 20000 x 20000
# PNG of a few hundred KB would otherwise cost 2.2 GB before anything could refuse it.
MAX_PIXELS = 25_000_000
# Transparent pixels show white, as a browser or an image viewer displays them.
BACKGROUND = 255
# PNG colour types (IHDR byte 25) that may carry transparency: palette (with tRNS), grey + alpha,
# RGB + alpha.
_PNG_PALETTE, _PNG_GREY_ALPHA, _PNG_RGBA = 3, 4, 6


class DecodeOptions(NamedTuple):
    """How encoded images become model inputs.

    Attributes:
      image_size: side of the output square.
      resize_to: side of the square each image is resized to before a center `image_size` crop;
        None resizes straight to `image_size`.
      channels: 1 (grayscale) or 3 (RGB); images are converted as needed.
      max_pixels: largest width x height decoded; read from the header before decoding.
      background: grey level in [0, 255] transparent pixels are composited on.
    """

    image_size: int
    resize_to: int | None
    channels: int
    max_pixels: int = MAX_PIXELS
    background: float = BACKGROUND


def decode_batch(images: tf.Tensor, options: DecodeOptions) -> tf.Tensor:
    """Decodes and crops a batch of encoded images, each at its own size, to one float32 batch.

    Args:
      images: tf.string Tensor [batch] of JPEG or PNG bytes.
      options: output size, channels, pixel limit and background.

    Returns:
      float32 Tensor [batch, image_size, image_size, channels] in [0, 255].

    Raises:
      tf.errors.InvalidArgumentError (when run): "could not decode image at index i: ..." for bytes
        that are not a complete JPEG or PNG, or an image above `max_pixels`.
    """
    indices = tf.range(tf.size(images, out_type=tf.int32))
    size = options.image_size
    return tf.map_fn(
        lambda item: decode_image(item[0], item[1], options),
        (images, indices),
        fn_output_signature=tf.TensorSpec([size, size, options.channels], tf.float32),
    )


def decode_image(
    data: tf.Tensor, index: tf.Tensor, options: DecodeOptions
) -> tf.Tensor:
    """Decodes one JPEG/PNG, resizes it and takes the center crop (section 3.5, test time).

    Args:
      data: scalar tf.string, the encoded image.
      index: scalar int32, its position in the batch (for the error message).
      options: see `DecodeOptions`.

    Returns:
      float32 Tensor [image_size, image_size, channels] in [0, 255].
    """
    channels, max_pixels = options.channels, options.max_pixels
    complete = tf.debugging.Assert(
        is_complete_image(data),
        [
            tf.strings.format(
                "could not decode image at index {}: not a complete JPEG or PNG ({} bytes)",
                (index, tf.strings.length(data)),
            )
        ],
        name="check_encoded_image",
    )
    with tf.control_dependencies([complete]):
        png = is_png(data)
        height, width = tf.unstack(encoded_image_size(data, png))
    small = tf.debugging.Assert(
        height * width <= max_pixels,
        [
            tf.strings.format(
                "image at index {} is {} x {} = {} pixels, above the limit of {} (max_pixels)",
                (index, width, height, height * width, max_pixels),
            )
        ],
        name="check_image_pixels",
    )
    with tf.control_dependencies([small]):
        color_type = tf.io.decode_raw(tf.strings.substr(data, 25, 1), tf.uint8)[0]
        may_be_transparent = tf.logical_and(
            png,
            tf.reduce_any(
                tf.equal(color_type, [_PNG_PALETTE, _PNG_GREY_ALPHA, _PNG_RGBA])
            ),
        )
        image = tf.cond(
            may_be_transparent,
            lambda: _decode_flattened_png(data, channels, options.background),
            lambda: tf.cast(
                tf.io.decode_image(data, channels=channels, expand_animations=False),
                tf.float32,
            ),
        )
    image.set_shape([None, None, channels])
    size = options.image_size
    return center_crop(resize_square(image, options.resize_to or size), size)


def is_png(data: tf.Tensor) -> tf.Tensor:
    """Whether scalar tf.string `data` starts with the PNG signature."""
    return tf.equal(tf.strings.substr(data, 0, len(_PNG_START)), _PNG_START)


def encoded_image_size(data: tf.Tensor, png: tf.Tensor) -> tf.Tensor:
    """(height, width) int64 from a PNG's IHDR chunk or a JPEG's frame header, without decoding.

    Args:
      data: scalar tf.string, a complete PNG (`png` true) or JPEG.
      png: scalar tf.bool.

    Returns:
      int64 Tensor [2].
    """

    def png_size():
        # IHDR is the first chunk: width and height, big-endian uint32, at bytes 16 and 20.
        raw = tf.cast(
            tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64
        )
        width = tf.reduce_sum(raw[:4] * [1 << 24, 1 << 16, 1 << 8, 1])
        height = tf.reduce_sum(raw[4:] * [1 << 24, 1 << 16, 1 << 8, 1])
        return tf.stack([height, width])

    def jpeg_size():
        return tf.image.extract_jpeg_shape(data, output_type=tf.int64)[:2]

    return tf.cond(png, png_size, jpeg_size)


def _decode_flattened_png(
    data: tf.Tensor, channels: int, background: float
) -> tf.Tensor:
    """A PNG that may have an alpha channel, composited on `background`, as float32 [h, w, channels]."""
    native = tf.cast(tf.io.decode_png(data, channels=0), tf.float32)
    # Native channels: grey 1, grey + alpha 2, RGB 3, RGBA 4.
    has_alpha = tf.equal(tf.shape(native)[-1] % 2, 0)
    color_channels = tf.shape(native)[-1] - tf.cast(has_alpha, tf.int32)
    alpha = tf.cond(
        has_alpha,
        lambda: native[..., -1:] / 255.0,
        lambda: tf.ones_like(native[..., :1]),
    )
    color = native[..., :color_channels]
    flat = color * alpha + background * (1.0 - alpha)
    if channels == 1:
        return tf.cond(
            tf.equal(color_channels, 1),
            lambda: flat,
            lambda: tf.image.rgb_to_grayscale(flat),
        )
    return tf.cond(
        tf.equal(color_channels, 3), lambda: flat, lambda: tf.tile(flat, [1, 1, 3])
    )


def is_complete_image(data: tf.Tensor) -> tf.Tensor:
    """Whether `data` starts and ends as a JPEG or PNG does (catches non-images and truncation).

    Args:
      data: scalar tf.string.

    Returns:
      scalar tf.bool.
    """
    length = tf.strings.length(data)
    png = tf.logical_and(
        is_png(data),
        tf.equal(
            tf.strings.substr(
                data, tf.maximum(length - len(_PNG_END), 0), len(_PNG_END)
            ),
            _PNG_END,
        ),
    )
    tail = tf.io.decode_raw(
        tf.strings.substr(data, tf.maximum(length - _JPEG_TAIL, 0), _JPEG_TAIL),
        tf.uint8,
    )
    has_end = tf.reduce_any(
        tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9))
    )
    jpeg = tf.logical_and(
        tf.equal(tf.strings.substr(data, 0, len(_JPEG_START)), _JPEG_START), has_end
    )
    return tf.logical_or(png, jpeg)
