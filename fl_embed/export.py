"""SavedModel export of an embedder, with the section 3.5 test-time preprocessing inside the graph.

Two serving signatures:
  - `serving_default`: `images` = tf.string [batch] of encoded JPEG/PNG bytes -> `embeddings`. Decoding,
    channel conversion, resize to `resize_to` x `resize_to` (aspect ratio not kept, as the paper does),
    a center `image_size` crop and the backbone's pixel scaling all run in the graph, so a client
    sends raw bytes.
  - `embed_images`: `images` = float32 [batch, image_size, image_size, channels], already scaled ->
    `embeddings`.

The export is written into a temporary sibling directory and renamed into place, so `export_dir`
never holds a half-written model, and `fl_embed.json` next to `saved_model.pb` records the
preprocessing.
"""

import json
import os
import shutil
import tempfile
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


class EmbedderModule(tf.Module):
    """The exported object: the Keras embedder plus its preprocessing, as two tf.functions.

    Attributes:
      model: the Keras embedder, float32 [batch, image_size, image_size, channels] -> [batch, d].
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
    ):
        super().__init__(name="fl_embed_embedder")
        self.model = model
        self._image_size = image_size
        self._resize_to = resize_to
        self._channels = channels
        self._scaling = scaling
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
        pixels = decode_batch(images, self._image_size, self._resize_to, self._channels)
        return self._embed_images(self._scaling(pixels))

    def _embed_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # Batch normalisation kernels reject an empty batch, which a client may legitimately send.
        embeddings = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(self.model(images, training=False), tf.float32),
            lambda: tf.zeros([0, self.model.output_shape[-1]], tf.float32),
        )
        return {OUTPUT_KEY: embeddings}


def decode_batch(
    images: tf.Tensor, image_size: int, resize_to: int | None, channels: int
) -> tf.Tensor:
    """Decodes and crops a batch of encoded images, each at its own size, to one float32 batch.

    Args:
      images: tf.string Tensor [batch] of JPEG or PNG bytes.
      image_size: side of the output square.
      resize_to: side of the square each image is resized to before a center `image_size` crop;
        None resizes straight to `image_size`.
      channels: 1 (grayscale) or 3 (RGB); images are converted as needed.

    Returns:
      float32 Tensor [batch, image_size, image_size, channels] in [0, 255].

    Raises:
      tf.errors.InvalidArgumentError (when run): "could not decode image at index i: ..." for bytes
        that are not a complete JPEG or PNG.
    """
    indices = tf.range(tf.size(images, out_type=tf.int32))
    return tf.map_fn(
        lambda item: decode_image(item[0], item[1], image_size, resize_to, channels),
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
) -> tf.Tensor:
    """Decodes one JPEG/PNG, resizes it and takes the center crop (section 3.5, test time).

    Args:
      data: scalar tf.string, the encoded image.
      index: scalar int32, its position in the batch (for the error message).
      image_size, resize_to, channels: see `decode_batch`.

    Returns:
      float32 Tensor [image_size, image_size, channels] in [0, 255].
    """
    check = tf.debugging.Assert(
        is_complete_image(data),
        [
            tf.strings.format(
                "could not decode image at index {}: not a complete JPEG or PNG ({} bytes)",
                (index, tf.strings.length(data)),
            )
        ],
        name="check_encoded_image",
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return center_crop(resize_square(image, resize_to or image_size), image_size)


def is_complete_image(data: tf.Tensor) -> tf.Tensor:
    """Whether `data` starts and ends as a JPEG or PNG does (catches non-images and truncation).

    Args:
      data: scalar tf.string.

    Returns:
      scalar tf.bool.
    """
    length = tf.strings.length(data)
    png = tf.logical_and(
        tf.equal(tf.strings.substr(data, 0, len(_PNG_START)), _PNG_START),
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
) -> str:
    """Writes `model` as a SavedModel with the `serving_default` and `embed_images` signatures.

    Writes into a temporary sibling directory, then renames it to `export_dir`; an existing export
    there is replaced only once the new one is complete, and a failed export leaves it untouched.

    Args:
      model: Keras embedder, float32 [batch, image_size, image_size, channels] -> [batch, d].
      export_dir: destination directory (created; a previous export there is replaced).
      image_size: side of the model's square input (paper: 227; glyphs: 32).
      resize_to: side images are resized to before the center crop (paper: 256), or None to resize
        straight to image_size.
      channels: 1 or 3, the model's input channels.
      scaling: pixel scaling from [0, 255], a key of `fl_embed.models.SCALINGS` ("inception",
        "unit", "raw") or a function (e.g. `fl_embed.models.preprocess_for(backbone)`).

    Returns:
      The absolute path of the export.

    Raises:
      ValueError: bad sizes or channels, a model whose input does not match them, or unknown scaling.
      FileExistsError: export_dir exists and is not a previous export (nothing is overwritten).
    """
    scaling_name, scaling_fn = resolve_scaling(scaling)
    check_export_args(model, image_size, resize_to, channels)
    export_dir = os.path.abspath(export_dir)
    check_replaceable(export_dir)
    parent, base = os.path.split(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        module = EmbedderModule(model, image_size, resize_to, channels, scaling_fn)
        save_module(module, staging)
        metadata = export_metadata(model, image_size, resize_to, channels, scaling_name)
        write_metadata(staging, metadata)
        replace_directory(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return export_dir


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


def check_replaceable(export_dir: str) -> None:
    """Raises FileExistsError when `export_dir` exists and is not an fl_embed export or empty."""
    if not os.path.lexists(export_dir):
        return
    if os.path.isdir(export_dir) and (
        not os.listdir(export_dir)
        or os.path.isfile(os.path.join(export_dir, METADATA_FILE))
    ):
        return
    raise FileExistsError(
        f"{export_dir!r} exists and is not an fl_embed export (no {METADATA_FILE}); "
        "refusing to replace it. Choose another directory or remove it."
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


def replace_directory(source: str, destination: str) -> None:
    """Renames `source` to `destination`, replacing an existing `destination` only after the move.

    POSIX cannot rename a directory over a non-empty one, so an existing destination is first moved
    aside (same parent, same file system) and deleted only once `source` is in place; if the second
    rename fails, the old destination is moved back.

    Args:
      source: a complete directory.
      destination: its final path, in the same parent directory.
    """
    if not os.path.lexists(destination):
        os.rename(source, destination)
        return
    parent, base = os.path.split(destination)
    aside = os.path.join(parent, f".{base}.old-{uuid.uuid4().hex}")
    os.rename(destination, aside)
    try:
        os.rename(source, destination)
    except BaseException:
        os.rename(aside, destination)
        raise
    shutil.rmtree(aside, ignore_errors=True)


class LoadedEmbedder:
    """A reloaded export, callable on encoded images or on float images.

    Attributes:
      export_dir: the directory it was loaded from.
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
          tf.errors.InvalidArgumentError: an image that cannot be decoded, with its index.
          ValueError: float images that are not rank 4.
        """
        if _is_encoded(images):
            return self._embed_encoded(images)
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(
                f"Float images must be [batch, height, width, channels]; got shape {images.shape}."
            )
        return self.signatures[IMAGES_SIGNATURE](**{INPUT_KEY: tf.constant(images)})[
            OUTPUT_KEY
        ].numpy()

    def _embed_encoded(self, images: Any) -> np.ndarray:
        if isinstance(images, bytes):
            images = [images]
        batch = tf.convert_to_tensor(images, dtype=tf.string)
        try:
            return self.signatures[SERVING_SIGNATURE](**{INPUT_KEY: batch})[
                OUTPUT_KEY
            ].numpy()
        except tf.errors.InvalidArgumentError as err:
            raise _locate_decode_error(batch, err) from err


def load_embedder(export_dir: str) -> LoadedEmbedder:
    """Loads an export written by `export_saved_model`.

    Args:
      export_dir: the export directory.

    Returns:
      A `LoadedEmbedder`: call it on encoded bytes or on float images to get float32 [batch, d].

    Raises:
      FileNotFoundError: no SavedModel in export_dir.
    """
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        raise FileNotFoundError(f"No SavedModel (saved_model.pb) in {export_dir!r}.")
    return LoadedEmbedder(export_dir)


def _is_encoded(images: Any) -> bool:
    """Whether `images` holds encoded bytes rather than pixels."""
    if isinstance(images, bytes):
        return True
    if isinstance(images, tf.Tensor):
        return images.dtype == tf.string
    if isinstance(images, np.ndarray):
        return images.dtype.kind in ("S", "O")
    return (
        isinstance(images, Sequence)
        and len(images) > 0
        and isinstance(images[0], bytes)
    )


def _locate_decode_error(
    batch: tf.Tensor, err: tf.errors.InvalidArgumentError
) -> tf.errors.InvalidArgumentError:
    """Names the first image of `batch` that TensorFlow cannot decode, for errors past the header check."""
    if "could not decode image at index" in err.message:
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
