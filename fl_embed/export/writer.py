"""Writing an export in TF Serving's layout: numbered versions, each renamed into place once."""

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_embed.export.decoding import BACKGROUND, MAX_PIXELS
from fl_embed.export.module import (
    IMAGES_SIGNATURE,
    INPUT_KEY,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
    EmbedderModule,
)
from fl_embed.models.preprocessing import (
    resolve_scaling,
)
from fl_embed.training.checkpoints import check_finite

METADATA_FILE = "fl_embed.json"
FORMAT_VERSION = 1
# How many versions an export directory keeps by default (newest first).
KEEP_EXPORTS = 5
# Entries of an export directory that are work in progress: a killed export leaves them behind.
_TEMP_PREFIX = ".tmp-"
_VERSION = re.compile(r"[0-9]+")


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
