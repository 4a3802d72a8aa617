"""TF-slim checkpoints into Keras layers: finding the checkpoint, and a strict name-by-name load.

A TF-slim checkpoint (V1 or V2, name-based as `tf.compat.v1.train.Saver` writes them) names every
variable by its variable scope: `InceptionV2/Mixed_3b/Branch_1/Conv2d_0b_3x3/BatchNorm/beta`. A
Keras layer named with the scope's "/" written as "." (Keras forbids "/" in layer names) holds the
same variables under Keras' names, `SLIM_NAMES` below.
"""

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_embed.models.weights import first_line

# What `tf.train.load_checkpoint` returns (py_checkpoint_reader.CheckpointReader, not exported).
CheckpointReader = Any

# Keras variable name -> the TF-slim variable it is in a slim layer's scope.
SLIM_NAMES: dict[str, str] = {
    "kernel": "weights",
    "depthwise_kernel": "depthwise_weights",
    "pointwise_kernel": "pointwise_weights",
    "bias": "biases",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
}
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# How many names an error lists before it counts the rest.
_LISTED = 20


def slim_scope(layer_name: str) -> str:
    """The TF-slim variable scope of the Keras layer `layer_name` ("." for "/")."""
    return layer_name.replace(".", "/")


def slim_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """Every weight of `model` under its TF-slim name, relative to the network's scope.

    Args:
      model: a model whose weight-holding layers are named by `slim_scope`.

    Returns:
      {"Mixed_3b/Branch_0/Conv2d_0a_1x1/weights": kernel variable, ...}.

    Raises:
      ValueError: a layer holds a variable with no TF-slim name.
    """
    variables = {}
    for layer in model.layers:
        for variable in layer.weights:
            if variable.name not in SLIM_NAMES:
                raise ValueError(
                    f"Layer {layer.name!r} holds {variable.name!r}, which has no TF-slim name."
                )
            variables[f"{slim_scope(layer.name)}/{SLIM_NAMES[variable.name]}"] = (
                variable
            )
    return variables


def checkpoint_variables(
    prefix: str, scope: str, ignore: tuple[str, ...] = ()
) -> tuple[CheckpointReader, str, dict[str, tuple[int, ...]]]:
    """The variables of a checkpoint under the network scope `scope`, wherever that scope sits.

    The scope may be nested (the Object Detection API writes `FeatureExtractor/InceptionV2/...`);
    variables outside it (`global_step`, a detector's heads) are not the network's and are left out.

    Args:
      prefix: a checkpoint prefix (V2) or file (V1), as `tf.train.load_checkpoint` reads.
      scope: the network's top scope, e.g. "InceptionV2".
      ignore: sub-scopes of `scope` left out (e.g. "Logits/", the ImageNet classifier).

    Returns:
      (reader, the full scope prefix found, {name relative to the scope: shape}).

    Raises:
      ValueError: not a readable checkpoint, no variable under `scope`, or `scope` found at two
        different places.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as err:
        raise ValueError(
            f"{prefix!r} is not a readable TF checkpoint ({first_line(err)})."
        ) from err
    shapes = reader.get_variable_to_shape_map()
    marker = f"{scope}/"
    prefixes = {
        name[: name.index(marker) + len(marker)] for name in shapes if marker in name
    }
    if len(prefixes) != 1:
        found = "none" if not prefixes else f"{len(prefixes)}: {sorted(prefixes)}"
        raise ValueError(
            f"Checkpoint {prefix!r} does not hold one {scope} network (scopes found: {found}; "
            f"its variables include {_listed(sorted(shapes))})."
        )
    (full,) = prefixes
    variables = {
        name[len(full) :]: tuple(shape)
        for name, shape in shapes.items()
        if name.startswith(full) and not name[len(full) :].startswith(ignore)
    }
    return reader, full, variables


def assign_strictly(
    targets: dict[str, keras.Variable],
    reader: CheckpointReader,
    full_scope: str,
    shapes: dict[str, tuple[int, ...]],
    source: str,
) -> None:
    """Fills every target from the checkpoint variable of the same name, or fills nothing.

    Every checkpoint variable is consumed exactly once and every target filled exactly once; any
    missing, extra or mis-shaped variable is an error that lists them.

    Args:
      targets: {name relative to the scope: Keras variable}, see `slim_variables`.
      reader: the checkpoint's reader.
      full_scope: the scope prefix of the names in the checkpoint.
      shapes: {name relative to the scope: shape} of the checkpoint's network variables.
      source: the checkpoint, for the message.

    Raises:
      ValueError: the checkpoint's variables and the targets do not match one to one.
    """
    missing = sorted(set(targets) - set(shapes))
    extra = sorted(set(shapes) - set(targets))
    reshaped = sorted(
        f"{name} {shapes[name]} (the model's is {tuple(targets[name].shape)})"
        for name in set(targets) & set(shapes)
        if tuple(targets[name].shape) != shapes[name]
    )
    problems = [
        f"{what}: {_listed(names)}"
        for what, names in (
            ("missing from the checkpoint", missing),
            ("in the checkpoint but not in the model", extra),
            ("of another shape", reshaped),
        )
        if names
    ]
    if problems:
        raise ValueError(
            f"Checkpoint {source!r} does not fit the model (names under {full_scope!r}); "
            "nothing was loaded. " + "; ".join(problems) + "."
        )
    for name, variable in targets.items():
        value = reader.get_tensor(full_scope + name)
        variable.assign(np.asarray(value, dtype=variable.dtype))


def checkpoint_prefix(path: str) -> str:
    """The checkpoint `path` names: a prefix (V2), a file (V1), or a folder holding exactly one.

    Args:
      path: e.g. ".../inception_v2.ckpt" (V1 file, or V2 prefix of `.index` + `.data-*`), or the
        folder a tarball was extracted to.

    Returns:
      What `tf.train.load_checkpoint` reads.

    Raises:
      FileNotFoundError: nothing there, or a folder without a checkpoint.
      ValueError: a folder with several checkpoints.
    """
    if os.path.isfile(path) or os.path.isfile(f"{path}.index"):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"No checkpoint at {path!r} (neither a file, nor a prefix with an .index file, nor a "
            "folder); refusing to fall back to random weights."
        )
    found = sorted(_checkpoints_in(path))
    if len(found) != 1:
        if not found:
            raise FileNotFoundError(f"Folder {path!r} holds no TF checkpoint.")
        raise ValueError(
            f"Folder {path!r} holds {len(found)} checkpoints; pass one: {_listed(found)}."
        )
    return found[0]


def _checkpoints_in(folder: str) -> Iterator[str]:
    """Checkpoint prefixes below `folder`: V2 `.index` files' prefixes and V1 `.ckpt` files."""
    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".index"):
                yield os.path.join(root, name[: -len(".index")])
            elif name.endswith(".ckpt"):
                yield os.path.join(root, name)


def extract_tarball(tarball: str, folder: str) -> str:
    """Extracts a checkpoint tarball into `folder` unless done before, and returns its checkpoint.

    Extraction goes to a temporary sibling that is renamed into place, so an interrupted one
    never looks finished.

    Args:
      tarball: a `.tar.gz` / `.tgz` / `.tar` holding one TF checkpoint.
      folder: where it is (or was) extracted.

    Returns:
      The checkpoint prefix inside `folder`.

    Raises:
      FileNotFoundError: no such tarball, or no checkpoint in it.
      ValueError: not a tar archive, or several checkpoints in it.
    """
    if not os.path.isdir(folder):
        if not os.path.isfile(tarball):
            raise FileNotFoundError(
                f"Checkpoint archive {tarball!r} does not exist; refusing to fall back to "
                "random weights."
            )
        if not tarfile.is_tarfile(tarball):
            raise ValueError(f"{tarball!r} is not a tar archive.")
        parent = os.path.dirname(os.path.abspath(folder))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".extracting-", dir=parent)
        try:
            with tarfile.open(tarball) as archive:
                archive.extractall(staging, filter="data")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            os.replace(staging, folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not os.path.isdir(folder):  # else another process extracted it meanwhile
                raise
    return checkpoint_prefix(folder)


def _listed(names: list[str]) -> str:
    """Names joined for a message, the first `_LISTED` of them and a count of the rest."""
    shown = ", ".join(names[:_LISTED])
    more = len(names) - _LISTED
    return f"{shown}, and {more} more" if more > 0 else shown
