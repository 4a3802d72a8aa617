"""SavedModel export of an embedder, with the section 3.5 test-time preprocessing inside the graph.

Two serving signatures:
  - `serving_default`: `images` = tf.string [batch] of encoded JPEG/PNG bytes -> `embeddings`. Decoding,
    channel conversion, resize to `resize_to` x `resize_to` (aspect ratio not kept, as the paper does),
    a center `image_size` crop and the backbone's pixel scaling all run in the graph, so a client
    sends raw bytes.
  - `embed_images`: `images` = float32 [batch, image_size, image_size, channels], already scaled ->
    `embeddings`.

Layout (TF Serving's): `export_dir` is a base directory of numbered versions,

    export/
      1000/  saved_model.pb  variables/  assets/  fingerprint.pb  fl_embed.json
      2000/  ...

each version (the global step) written into a temporary `.tmp-*` entry of `export_dir` and renamed
to its number once complete: a single rename, so a kill at any moment leaves every version
either complete or absent, and the previous versions stay servable. `fl_embed.json` records the
preprocessing. TF Serving's model server (and `saved_model_cli` on a version) read the
directory as it is; `load_embedder` takes the base (latest version) or a version directory.

Encoded images: an image with transparency (PNG with alpha or a transparent palette) is
composited on `background` (default white, 255, as a browser shows it) before the channel
conversion; JPEG and PNG headers are read first and images above `max_pixels` pixels are
refused before any decoding allocates them.
"""

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_embed.models.preprocessing import (
    ScalingFn,
    center_crop,
    resize_square,
    resolve_scaling,
)
from fl_embed.training.checkpoints import check_finite

METADATA_FILE = "fl_embed.json"
INPUT_KEY = "images"
OUTPUT_KEY = "embeddings"
SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "embed_images"
FORMAT_VERSION = 1

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
# How many versions an export directory keeps by default (newest first).
KEEP_EXPORTS = 5
# Entries of an export directory that are work in progress: a killed export leaves them behind.
_TEMP_PREFIX = ".tmp-"
_VERSION = re.compile(r"[0-9]+")
# PNG colour types (IHDR byte 25) that may carry transparency: palette (with tRNS), grey + alpha,
# RGB + alpha.
_PNG_PALETTE, _PNG_GREY_ALPHA, _PNG_RGBA = 3, 4, 6


class EmbedderModule(tf.Module):
    """The exported object: the Keras embedder plus its preprocessing, as two tf.functions.

    Attributes:
      model: the Keras embedder, float32 [batch, image_size, image_size, channels] -> [batch, d].
      tf_variables: its variables as tf.Variables (what a session-based loader restores).
      serve_encoded: tf.function, tf.string [batch] -> {"embeddings": float32 [batch, d]}.
      embed_images: tf.function, float32 [batch, image_size, image_size, channels] -> same dict.
    """

    def __init__(
        self,
        model: keras.Model,
        image_size: int,
        resize_to: int | None,
        channels: int,
        scaling: ScalingFn,
        max_pixels: int = MAX_PIXELS,
        background: float = BACKGROUND,
    ):
        super().__init__(name="fl_embed_embedder")
        self.model = model
        # The TF1-style loaders (TF Serving's C++ model server, `saved_model_cli run`) restore
        # only variables the module tracks as tf.Variables: reached through the Keras 3 model
        # alone, every read fails with "Could not find variable".
        self.tf_variables = [
            v.value if isinstance(v, keras.Variable) else v for v in model.variables
        ]
        self._image_size = image_size
        self._resize_to = resize_to
        self._channels = channels
        self._scaling = scaling
        self._max_pixels = max_pixels
        self._background = background
        self.serve_encoded = tf.function(
            self._serve_encoded,
            input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)],
        )
        self.embed_images = tf.function(
            self._embed_images,
            input_signature=[
                tf.TensorSpec(
                    [None, image_size, image_size, channels], tf.float32, name=INPUT_KEY
                )
            ],
        )

    def _serve_encoded(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = decode_batch(
            images,
            self._image_size,
            self._resize_to,
            self._channels,
            self._max_pixels,
            self._background,
        )
        return self._embed_images(self._scaling(pixels))

    def _embed_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # A signature's declared shape is not enforced when it is called: a 64 x 64 batch would
        # run through a fully convolutional backbone for a 32 x 32 model without complaint.
        expected = tf.constant([self._image_size, self._image_size, self._channels])
        checks = [
            tf.debugging.assert_equal(
                tf.shape(images)[1:],
                expected,
                message=(
                    f"embed_images: images must be [batch, {self._image_size}, "
                    f"{self._image_size}, {self._channels}]"
                ),
            ),
            tf.debugging.assert_all_finite(
                images, message="embed_images: images contain NaN or Inf"
            ),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        # Batch normalisation kernels reject an empty batch, which a client may legitimately send.
        embeddings = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(self.model(images, training=False), tf.float32),
            lambda: tf.zeros([0, self.model.output_shape[-1]], tf.float32),
        )
        return {OUTPUT_KEY: embeddings}


def decode_batch(
    images: tf.Tensor,
    image_size: int,
    resize_to: int | None,
    channels: int,
    max_pixels: int = MAX_PIXELS,
    background: float = BACKGROUND,
) -> tf.Tensor:
    """Decodes and crops a batch of encoded images, each at its own size, to one float32 batch.

    Args:
      images: tf.string Tensor [batch] of JPEG or PNG bytes.
      image_size: side of the output square.
      resize_to: side of the square each image is resized to before a center `image_size` crop;
        None resizes straight to `image_size`.
      channels: 1 (grayscale) or 3 (RGB); images are converted as needed.
      max_pixels: largest width x height decoded; read from the header before decoding.
      background: grey level in [0, 255] transparent pixels are composited on.

    Returns:
      float32 Tensor [batch, image_size, image_size, channels] in [0, 255].

    Raises:
      tf.errors.InvalidArgumentError (when run): "could not decode image at index i: ..." for bytes
        that are not a complete JPEG or PNG, or an image above `max_pixels`.
    """
    indices = tf.range(tf.size(images, out_type=tf.int32))
    return tf.map_fn(
        lambda item: decode_image(
            item[0], item[1], image_size, resize_to, channels, max_pixels, background
        ),
        (images, indices),
        fn_output_signature=tf.TensorSpec(
            [image_size, image_size, channels], tf.float32
        ),
    )


def decode_image(
    data: tf.Tensor,
    index: tf.Tensor,
    image_size: int,
    resize_to: int | None,
    channels: int,
    max_pixels: int = MAX_PIXELS,
    background: float = BACKGROUND,
) -> tf.Tensor:
    """Decodes one JPEG/PNG, resizes it and takes the center crop (section 3.5, test time).

    Args:
      data: scalar tf.string, the encoded image.
      index: scalar int32, its position in the batch (for the error message).
      image_size, resize_to, channels, max_pixels, background: see `decode_batch`.

    Returns:
      float32 Tensor [image_size, image_size, channels] in [0, 255].
    """
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
            lambda: _decode_flattened_png(data, channels, background),
            lambda: tf.cast(
                tf.io.decode_image(data, channels=channels, expand_animations=False),
                tf.float32,
            ),
        )
    image.set_shape([None, None, channels])
    return center_crop(resize_square(image, resize_to or image_size), image_size)


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


def export_saved_model(
    model: keras.Model,
    export_dir: str,
    *,
    image_size: int,
    resize_to: int | None,
    channels: int,
    scaling: str | Callable[[tf.Tensor], tf.Tensor],
    version: int | None = None,
    keep_exports: int | None = KEEP_EXPORTS,
    max_pixels: int = MAX_PIXELS,
    background: float = BACKGROUND,
) -> str:
    """Writes `model` as version `version` of the SavedModel base directory `export_dir`.

    The version is written into a temporary entry of `export_dir` (mode 755 directories, 644
    files, readable by a serving container) and renamed to `export_dir/<version>` in one step,
    so it appears complete or not at all; then all but the newest `keep_exports` versions are
    removed. Temporary entries left by killed exports are removed first. One export at a time
    per directory.

    Args:
      model: Keras embedder, float32 [batch, image_size, image_size, channels] -> [batch, d].
      export_dir: the base directory (created); TF Serving's `--model_base_path`.
      image_size: side of the model's square input (paper: 227; glyphs: 32).
      resize_to: side images are resized to before the center crop (paper: 256), or None to resize
        straight to image_size.
      channels: 1 or 3, the model's input channels.
      scaling: pixel scaling from [0, 255], a key of `fl_embed.models.SCALINGS` ("inception",
        "unit", "raw") or a function (e.g. `fl_embed.models.preprocess_for(backbone)`).
      version: the version number, normally the global step; None takes the latest + 1.
      keep_exports: how many versions to keep, newest first (None keeps all).
      max_pixels: encoded images above width x height = max_pixels are refused unread.
      background: grey level in [0, 255] that transparent pixels are composited on.

    Returns:
      The absolute path of the version directory written.

    Raises:
      ValueError: bad sizes, channels, version, keep_exports, max_pixels or background, a model
        whose input does not match them, or an unknown scaling.
      FileExistsError: export_dir is not an export base directory (e.g. a flat export of an
        earlier fl_embed, or other files), or the version exists already (versions are never
        overwritten: a server may be serving it).
      fl_embed.training.checkpoints.NonFiniteError: a weight is NaN or Inf (nothing is written).
    """
    scaling_name, scaling_fn = resolve_scaling(scaling)
    check_export_args(model, image_size, resize_to, channels)
    check_serving_args(version, keep_exports, max_pixels, background)
    export_dir = os.path.abspath(export_dir)
    check_export_base(export_dir)
    if version is None:
        version = max(export_versions(export_dir), default=0) + 1
    check_finite(model.variables, step=version)
    created = not os.path.isdir(export_dir)
    _make_public_dir(export_dir)
    remove_leftovers(export_dir)
    final = os.path.join(export_dir, str(version))
    if os.path.lexists(final):
        raise FileExistsError(
            f"{final} exists: version {version} was exported already. Versions are never "
            "overwritten (a server may be serving it); delete it or export another version."
        )
    staging = os.path.join(export_dir, f"{_TEMP_PREFIX}{version}-{uuid.uuid4().hex}")
    os.mkdir(staging)
    try:
        module = EmbedderModule(
            model, image_size, resize_to, channels, scaling_fn, max_pixels, background
        )
        save_module(module, staging)
        metadata = export_metadata(model, image_size, resize_to, channels, scaling_name)
        metadata["version"] = version
        metadata["preprocessing"].update(max_pixels=max_pixels, background=background)
        write_metadata(staging, metadata)
        make_readable(staging)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not os.listdir(export_dir):
            os.rmdir(export_dir)
        raise
    if keep_exports is not None:
        for old in export_versions(export_dir)[:-keep_exports]:
            _remove_version(export_dir, old)
    return final


def check_serving_args(
    version: int | None,
    keep_exports: int | None,
    max_pixels: int,
    background: float,
) -> None:
    """Raises ValueError for a version < 1, keep_exports < 1, max_pixels < 1 or a background
    outside [0, 255]."""
    for name, value in (("version", version), ("keep_exports", keep_exports)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < 1
        ):
            raise ValueError(f"{name} must be None or an int >= 1, got {value!r}.")
    if (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, (int, np.integer))
        or max_pixels < 1
    ):
        raise ValueError(f"max_pixels must be an int >= 1, got {max_pixels!r}.")
    if not (isinstance(background, (int, float, np.number)) and 0 <= background <= 255):
        raise ValueError(
            f"background must be a grey level in [0, 255], got {background!r}."
        )


def export_versions(export_dir: str) -> list[int]:
    """The complete versions of an export base directory, ascending ([] when there is none)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(export_dir)
        if _VERSION.fullmatch(name) and os.path.isdir(os.path.join(export_dir, name))
    )


def latest_export(export_dir: str) -> str:
    """The SavedModel directory `export_dir` names: itself if it holds one, else its latest version.

    Raises:
      FileNotFoundError: neither `export_dir/saved_model.pb` nor `export_dir/<N>/saved_model.pb`.
    """
    if os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    for version in reversed(export_versions(export_dir)):
        candidate = os.path.join(export_dir, str(version))
        if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(
        f"No SavedModel (saved_model.pb) in {export_dir!r} or in a numbered version directory "
        "under it."
    )


def check_export_base(export_dir: str) -> None:
    """Raises FileExistsError unless `export_dir` is absent, empty or a base of versions.

    A base holds numbered versions and the temporary entries of unfinished exports, nothing else
    (nothing else is ever deleted or written over).
    """
    if not os.path.lexists(export_dir):
        return
    if not os.path.isdir(export_dir):
        raise FileExistsError(f"{export_dir!r} exists and is not a directory.")
    if os.path.isfile(os.path.join(export_dir, METADATA_FILE)):
        raise FileExistsError(
            f"{export_dir!r} holds a single unversioned export (an earlier fl_embed layout); "
            "exports are now numbered versions under a base directory. Move it to "
            f"{os.path.join(export_dir, '1')!r} (or elsewhere) first."
        )
    foreign = [
        name
        for name in os.listdir(export_dir)
        if not (_VERSION.fullmatch(name) or name.startswith(_TEMP_PREFIX))
    ]
    if foreign:
        raise FileExistsError(
            f"{export_dir!r} exists and is not an fl_embed export directory (it holds "
            f"{', '.join(sorted(foreign)[:5])}); refusing to write there. Choose another "
            "directory or remove it."
        )


def remove_leftovers(export_dir: str) -> None:
    """Deletes the temporary entries that killed exports (or removals) left in `export_dir`, and
    the `.<name>.tmp-*` / `.<name>.old-*` siblings of the earlier, swapping export."""
    parent, base = os.path.split(export_dir)
    stale = [
        os.path.join(export_dir, name)
        for name in os.listdir(export_dir)
        if name.startswith(_TEMP_PREFIX)
    ] + [
        os.path.join(parent, name)
        for name in os.listdir(parent)
        if name.startswith((f".{base}.tmp-", f".{base}.old-"))
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def _remove_version(export_dir: str, version: int) -> None:
    # Renamed out of the numbered names first: a kill mid-deletion leaves a temporary entry,
    # never a half-deleted version a server would try to load.
    doomed = os.path.join(
        export_dir, f"{_TEMP_PREFIX}removed-{version}-{uuid.uuid4().hex}"
    )
    os.rename(os.path.join(export_dir, str(version)), doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _make_public_dir(path: str) -> None:
    if not os.path.isdir(path):
        os.makedirs(path)
        os.chmod(path, 0o755)


def make_readable(directory: str) -> None:
    """chmod 755 on `directory` and the directories under it, 644 on its files (any umask)."""
    os.chmod(directory, 0o755)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def check_export_args(
    model: keras.Model, image_size: int, resize_to: int | None, channels: int
) -> None:
    """Raises ValueError when the sizes or channels are unusable or do not match the model's input."""
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}.")
    if resize_to is not None and resize_to < image_size:
        raise ValueError(
            f"resize_to {resize_to} must be None or >= image_size {image_size}."
        )
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    expected = (image_size, image_size, channels)
    actual = tuple(model.input_shape[1:])
    if any(a is not None and a != e for a, e in zip(actual, expected, strict=True)):
        raise ValueError(
            f"The model takes images of shape {actual}, but the export was asked for {expected} "
            "(image_size, image_size, channels)."
        )


def save_module(module: EmbedderModule, directory: str) -> None:
    """tf.saved_model.save with both signatures.

    Args:
      module: the module to save.
      directory: an existing, empty directory.
    """
    signatures = {
        SERVING_SIGNATURE: module.serve_encoded.get_concrete_function(),
        IMAGES_SIGNATURE: module.embed_images.get_concrete_function(),
    }
    tf.saved_model.save(module, directory, signatures=signatures)


def export_metadata(
    model: keras.Model,
    image_size: int,
    resize_to: int | None,
    channels: int,
    scaling: str,
) -> dict[str, Any]:
    """The description written to `fl_embed.json`: preprocessing, embedding size and signatures."""
    embedding_dim = int(model.output_shape[-1])
    return {
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "embedding_dim": embedding_dim,
        "l2_normalized": any(
            isinstance(layer, keras.layers.UnitNormalization) for layer in model.layers
        ),
        "preprocessing": {
            "decode": "JPEG or PNG bytes",
            "channels": channels,
            "resize_to": resize_to,
            "resize": "bilinear to a square, aspect ratio not kept",
            "crop": "center",
            "image_size": image_size,
            "scaling": scaling,
        },
        "signatures": {
            SERVING_SIGNATURE: {
                "inputs": {INPUT_KEY: {"dtype": "string", "shape": [None]}},
                "outputs": {
                    OUTPUT_KEY: {"dtype": "float32", "shape": [None, embedding_dim]}
                },
            },
            IMAGES_SIGNATURE: {
                "inputs": {
                    INPUT_KEY: {
                        "dtype": "float32",
                        "shape": [None, image_size, image_size, channels],
                        "scaling": scaling,
                    }
                },
                "outputs": {
                    OUTPUT_KEY: {"dtype": "float32", "shape": [None, embedding_dim]}
                },
            },
        },
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def write_metadata(directory: str, metadata: dict[str, Any]) -> None:
    """Writes `metadata` as `directory/fl_embed.json`."""
    with open(os.path.join(directory, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
        f.write("\n")


class LoadedEmbedder:
    """A reloaded export, callable on encoded images or on float images.

    Attributes:
      export_dir: the version directory it was loaded from.
      metadata: the contents of `fl_embed.json` ({} if the file is absent).
      signatures: the SavedModel's serving signatures by name.
    """

    def __init__(self, export_dir: str):
        self.export_dir = export_dir
        self._loaded = tf.saved_model.load(export_dir)
        self.signatures = self._loaded.signatures
        path = os.path.join(export_dir, METADATA_FILE)
        self.metadata = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                self.metadata = json.load(f)

    def __call__(self, images: Any) -> np.ndarray:
        """Embeds a batch.

        Args:
          images: encoded JPEG/PNG bytes (one `bytes`, a sequence of them, or a tf.string Tensor
            [batch]), or float32 images [batch, image_size, image_size, channels] already scaled.

        Returns:
          float32 numpy array [batch, d].

        Raises:
          tf.errors.InvalidArgumentError: an image that cannot be decoded or is above the pixel
            limit, with its index.
          ValueError: encoded images that are not a flat batch [batch]; float images that are not
            [batch, image_size, image_size, channels] or hold NaN / Inf.
        """
        if _is_encoded(images):
            return self._embed_encoded(images)
        images = np.asarray(images, dtype=np.float32)
        expected = (
            self.signatures[IMAGES_SIGNATURE]
            .structured_input_signature[1][INPUT_KEY]
            .shape[1:]
        )
        if images.ndim != 4 or not tf.TensorShape(images.shape[1:]).is_compatible_with(
            expected
        ):
            raise ValueError(
                "Float images must be [batch, height, width, channels] = "
                f"[batch, {', '.join(str(n) for n in expected)}] for this model; got shape "
                f"{images.shape}."
            )
        if not np.all(np.isfinite(images)):
            raise ValueError(
                f"Float images contain NaN or Inf ({np.count_nonzero(~np.isfinite(images))} "
                "values)."
            )
        return self.signatures[IMAGES_SIGNATURE](**{INPUT_KEY: tf.constant(images)})[
            OUTPUT_KEY
        ].numpy()

    def _embed_encoded(self, images: Any) -> np.ndarray:
        if isinstance(images, bytes):
            images = [images]
        batch = tf.convert_to_tensor(images, dtype=tf.string)
        if batch.shape.rank != 1:
            raise ValueError(
                "Encoded images must be a flat batch of JPEG/PNG byte strings [batch]; got "
                f"shape {batch.shape}."
            )
        try:
            return self.signatures[SERVING_SIGNATURE](**{INPUT_KEY: batch})[
                OUTPUT_KEY
            ].numpy()
        except tf.errors.InvalidArgumentError as err:
            raise _locate_decode_error(batch, err) from err


def load_embedder(export_dir: str) -> LoadedEmbedder:
    """Loads an export written by `export_saved_model`.

    Args:
      export_dir: the export base directory (its latest version is loaded) or one version
        directory in it.

    Returns:
      A `LoadedEmbedder`: call it on encoded bytes or on float images to get float32 [batch, d].

    Raises:
      FileNotFoundError: no SavedModel there nor in a version under it.
    """
    return LoadedEmbedder(latest_export(export_dir))


def _is_encoded(images: Any) -> bool:
    """Whether `images` holds encoded bytes rather than pixels (at any nesting depth)."""
    if isinstance(images, bytes):
        return True
    if isinstance(images, tf.Tensor):
        return images.dtype == tf.string
    if isinstance(images, np.ndarray):
        return images.dtype.kind in ("S", "O")
    while (
        isinstance(images, Sequence) and not isinstance(images, (str, bytes)) and images
    ):
        images = images[0]
    return isinstance(images, bytes)


def _locate_decode_error(
    batch: tf.Tensor, err: tf.errors.InvalidArgumentError
) -> tf.errors.InvalidArgumentError:
    """Names the first image of `batch` that TensorFlow cannot decode, for errors past the header check."""
    if "could not decode image at index" in err.message or "max_pixels" in err.message:
        return err
    for index, data in enumerate(batch.numpy()):
        try:
            tf.io.decode_image(data, expand_animations=False)
        except tf.errors.InvalidArgumentError as decode_err:
            return tf.errors.InvalidArgumentError(
                None,
                None,
                f"could not decode image at index {index}: {decode_err.message}",
            )
    return err
