"""`build_embedder`: backbone, global average pooling, a linear embedding head, optional L2 normalisation.

Section 3.5 of the paper: an ImageNet-pretrained Inception with batch normalisation, a 64-d embedding,
L2-normalised for the clustering and triplet losses and not for lifted structure and N-pairs.
"""

import os
from collections.abc import Callable

import keras

from fl_embed.models.bn_inception import bn_inception
from fl_embed.models.small_cnn import small_cnn

BACKBONES: tuple[str, ...] = ("inception_v3", "bn_inception", "small_cnn")
DEFAULT_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "inception_v3": (227, 227, 3),
    "bn_inception": (227, 227, 3),
    "small_cnn": (32, 32, 1),
}
# Name of the backbone inside every embedder, for `model.get_layer(BACKBONE_LAYER)`.
BACKBONE_LAYER = "backbone"


def build_embedder(
    backbone: str,
    embedding_dim: int = 64,
    l2_normalize: bool = True,
    weights: str | None = None,
    input_shape: tuple | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds an image embedder: backbone -> global average pooling -> Dense(embedding_dim) [-> L2 norm].

    The head (and the normalisation) compute in float32, so the output is float32 even under a
    mixed-precision policy.

    Args:
      backbone: one of `BACKBONES`.
      embedding_dim: size d of the embedding (paper: 64).
      l2_normalize: append `keras.layers.UnitNormalization` (paper: on for clustering and triplet,
        off for lifted structure and N-pairs).
      weights: backbone weights: None (random), "imagenet" (inception_v3 only; Keras downloads them,
        which needs a network), or the path of a local `.h5` / `.weights.h5` file holding the
        backbone's weights (as written by `save_backbone_weights` or Keras' `include_top=False` files).
      input_shape: (H, W, C); None takes `DEFAULT_INPUT_SHAPES[backbone]`.
      name: model name; default f"{backbone}_embedder".

    Returns:
      keras.Model mapping float32 images [batch, H, W, C], already scaled by
      `preprocess_for(backbone)`, to float32 embeddings [batch, embedding_dim]; its backbone is the
      layer named `BACKBONE_LAYER`.

    Raises:
      ValueError: unknown backbone, embedding_dim < 1, unusable input_shape, "imagenet" for a backbone
        without Keras ImageNet weights, a weights path that is not an .h5 file, or a weights file that
        does not fit the backbone.
      FileNotFoundError: the weights file does not exist.
      ConnectionError: weights="imagenet" and Keras could not download them.
    """
    check_backbone(backbone)
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}.")
    input_shape = tuple(input_shape or DEFAULT_INPUT_SHAPES[backbone])
    features = build_backbone(backbone, input_shape, weights)
    inputs = keras.Input(input_shape, name="images")
    x = features(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(embedding_dim, dtype="float32", name="embedding")(x)
    if l2_normalize:
        x = keras.layers.UnitNormalization(dtype="float32", name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name or f"{backbone}_embedder")


def check_backbone(backbone: str) -> None:
    """Raises ValueError naming the valid backbones when `backbone` is not one of `BACKBONES`."""
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; use one of {BACKBONES}.")


def build_backbone(
    backbone: str, input_shape: tuple[int, int, int], weights: str | None = None
) -> keras.Model:
    """Builds the feature extractor named `backbone`, named `BACKBONE_LAYER`, and loads its weights.

    Args:
      backbone: one of `BACKBONES`.
      input_shape: (H, W, C).
      weights: None, "imagenet" or the path of a local weights file, see `build_embedder`.

    Returns:
      keras.Model mapping [batch, H, W, C] to feature maps [batch, h, w, channels].

    Raises:
      ValueError, FileNotFoundError: see `build_embedder`.
    """
    check_backbone(backbone)
    if weights == "imagenet":
        if backbone != "inception_v3":
            raise ValueError(
                f"No Keras ImageNet weights exist for {backbone!r}; pass the path of a local "
                "weights file (.h5 / .weights.h5) instead, or weights=None for random weights."
            )
        return _inception_v3_imagenet(input_shape)
    path = None if weights is None else check_weights_file(weights)
    model = _BUILDERS[backbone](input_shape)
    if path is not None:
        load_backbone_weights(model, path, backbone)
    return model


def check_weights_file(path: str) -> str:
    """Checks that `path` names an existing Keras weights file.

    Args:
      path: path of a `.h5` or `.weights.h5` file.

    Returns:
      The path.

    Raises:
      ValueError: not an .h5 file (e.g. a misspelt "imagenet").
      FileNotFoundError: no such file.
    """
    if not str(path).endswith(".h5"):
        raise ValueError(
            f"weights must be None, 'imagenet' or the path of a .h5 / .weights.h5 file; got {path!r}."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Weights file {path!r} does not exist; refusing to fall back to random weights."
        )
    return str(path)


def load_backbone_weights(model: keras.Model, path: str, backbone: str) -> None:
    """Loads a weights file into a backbone, turning any mismatch into one clear ValueError.

    Args:
      model: the backbone, as built by `build_backbone(..., weights=None)`.
      path: an existing .h5 / .weights.h5 file.
      backbone: its name, for the message.

    Raises:
      ValueError: the file does not hold weights of this architecture.
    """
    try:
        model.load_weights(path)
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ValueError(
            f"Weights file {path!r} does not fit the {backbone!r} backbone with input shape "
            f"{model.input_shape[1:]} ({_first_line(err)}). Pass a file of this backbone's weights, "
            "e.g. one written by fl_embed.models.save_backbone_weights; a whole embedder's "
            "model.save_weights file loads with model.load_weights on the built embedder."
        ) from err


def save_backbone_weights(model: keras.Model, path: str) -> None:
    """Writes the backbone weights of an embedder, the file `build_embedder(weights=path)` loads.

    Args:
      model: an embedder built by `build_embedder`.
      path: destination ending in `.weights.h5`.
    """
    model.get_layer(BACKBONE_LAYER).save_weights(path)


def _first_line(err: Exception) -> str:
    """First line of an exception message: Keras' load errors run over many lines."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _inception_v3(
    input_shape: tuple[int, int, int], weights: str | None = None
) -> keras.Model:
    return keras.applications.InceptionV3(
        include_top=False, weights=weights, input_shape=input_shape, name=BACKBONE_LAYER
    )


def _inception_v3_imagenet(input_shape: tuple[int, int, int]) -> keras.Model:
    """InceptionV3 with Keras' ImageNet weights; a failed download says what to do offline."""
    try:
        return _inception_v3(input_shape, "imagenet")
    except Exception as err:
        if "URL fetch failure" not in str(err):
            raise
        raise ConnectionError(
            "Could not download Keras' ImageNet weights for inception_v3 "
            f"({_first_line(err)}). Without a network, fetch "
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 elsewhere, put it in "
            "~/.keras/models/ or pass its path as weights=."
        ) from err


def _bn_inception(input_shape: tuple[int, int, int]) -> keras.Model:
    return bn_inception(input_shape, name=BACKBONE_LAYER)


def _small_cnn(input_shape: tuple[int, int, int]) -> keras.Model:
    return small_cnn(input_shape, name=BACKBONE_LAYER)


_BUILDERS: dict[str, Callable[[tuple[int, int, int]], keras.Model]] = {
    "inception_v3": _inception_v3,
    "bn_inception": _bn_inception,
    "small_cnn": _small_cnn,
}
