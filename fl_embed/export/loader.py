"""Loading an export back: the base directory (latest version) or one version."""

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from fl_embed.export.module import (
    IMAGES_SIGNATURE,
    INPUT_KEY,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
)
from fl_embed.export.writer import METADATA_FILE, latest_export


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
          ValueError: encoded images that are not a flat batch [batch] or are str rather than
            bytes; images that are not float (uint8 pixels included: send them encoded, or
            scaled as floats), not [batch, image_size, image_size, channels] or hold NaN / Inf.
        """
        if _is_encoded(images):
            return self._embed_encoded(images)
        if _holds_text(images):
            raise ValueError(
                "Encoded images must be bytes (a file read in binary mode), not str; got "
                f"{str(images)[:80]!r}."
            )
        images = np.asarray(images)
        if images.dtype.kind != "f":
            # uint8 pixels in [0, 255] would run as if already scaled, every value far outside
            # the model's range, and give an embedding without any error.
            raise ValueError(
                f"Float images must be float, already scaled as the model expects "
                f"({self.metadata.get('preprocessing', {}).get('scaling', 'see fl_embed.json')}); "
                f"got dtype "
                f"{images.dtype}. Send encoded JPEG/PNG bytes to have them decoded and scaled."
            )
        images = images.astype(np.float32)
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
      TypeError: `export_dir` is not a path.
    """
    if not isinstance(export_dir, (str, os.PathLike)):
        raise TypeError(
            f"load_embedder: export_dir must be a path, got {type(export_dir).__name__}."
        )
    return LoadedEmbedder(latest_export(os.fspath(export_dir)))


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


def _holds_text(images: Any) -> bool:
    """Whether `images` is a str or a (nested) sequence whose first element is one."""
    while isinstance(images, Sequence) and not isinstance(images, str) and images:
        images = images[0]
    return isinstance(images, str) or (
        isinstance(images, np.ndarray) and images.dtype.kind == "U"
    )


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
