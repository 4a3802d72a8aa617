"""`build_embedder`: backbone, global average pooling, a linear embedding head, optional L2 normalisation.

Section 3.5 of the paper: an ImageNet-pretrained Inception with batch normalisation, a 64-d embedding,
L2-normalised for the clustering and triplet losses and not for lifted structure and N-pairs.
"""

import keras

from fl_embed.models import weights as backbone_weights
from fl_embed.models.registry import BACKBONE_LAYER, get_backbone


def build_embedder(
    backbone: str,
    embedding_dim: int = 64,
    l2_normalize: bool = True,
    weights: str | None = None,
    input_shape: tuple | None = None,
    name: str | None = None,
    freeze_batch_norm: bool | None = None,
) -> keras.Model:
    """Builds an image embedder: backbone -> global average pooling -> Dense(embedding_dim) [-> L2 norm].

    The head (and the normalisation) compute in float32, so the output is float32 even under a
    mixed-precision policy.

    Args:
      backbone: one of `BACKBONES`.
      embedding_dim: size d of the embedding (paper: 64).
      l2_normalize: append `keras.layers.UnitNormalization` (paper: on for clustering and triplet,
        off for lifted structure and N-pairs).
      weights: backbone weights: None (random); "imagenet" (inception_v2: TF-slim's ImageNet
        checkpoint; inception_v3: Keras' file; both downloaded once into ~/.keras, which needs a
        network); the path of a local `.h5` / `.weights.h5` file holding the backbone's weights
        (as written by `save_backbone_weights` or Keras' `include_top=False` files); for
        inception_v2 also a TF-slim checkpoint (prefix, folder or `.tar.gz`).
      input_shape: (H, W, C); None takes the backbone's registry default (`get_backbone`).
      name: model name; default f"{backbone}_embedder".
      freeze_batch_norm: run the backbone's batch normalisation in inference mode while training
        (moving statistics and beta kept). None: frozen exactly when `weights` is given, i.e. when
        fine-tuning pretrained weights (see BUILD_NOTES.md, "Models").

    Returns:
      keras.Model mapping float32 images [batch, H, W, C], already scaled by
      `preprocess_for(backbone)`, to float32 embeddings [batch, embedding_dim]; its backbone is the
      layer named `BACKBONE_LAYER`.

    Raises:
      ValueError: unknown backbone, embedding_dim < 1, unusable input_shape, "imagenet" for a backbone
        without ImageNet weights, a weights path the backbone cannot read, or weights that do not
        fit the backbone (every missing, extra or mis-shaped variable named).
      FileNotFoundError: the weights file does not exist.
      ConnectionError: weights="imagenet" and the download failed.
    """
    spec = get_backbone(backbone)
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}.")
    input_shape = tuple(input_shape or spec.input_shape)
    features = build_backbone(backbone, input_shape, weights, freeze_batch_norm)
    inputs = keras.Input(input_shape, name="images")
    x = features(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(embedding_dim, dtype="float32", name="embedding")(x)
    if l2_normalize:
        x = keras.layers.UnitNormalization(dtype="float32", name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name or f"{backbone}_embedder")


def build_backbone(
    backbone: str,
    input_shape: tuple[int, int, int],
    weights: str | None = None,
    freeze_batch_norm: bool | None = None,
) -> keras.Model:
    """Builds the feature extractor named `backbone`, named `BACKBONE_LAYER`, and loads its weights.

    Args:
      backbone: one of `BACKBONES`.
      input_shape: (H, W, C).
      weights: None, "imagenet" or the path of a local weights file, see `build_embedder`.
      freeze_batch_norm: see `build_embedder`.

    Returns:
      keras.Model mapping [batch, H, W, C] to feature maps [batch, h, w, channels].

    Raises:
      ValueError, FileNotFoundError, ConnectionError: see `build_embedder`.
    """
    spec = get_backbone(backbone)
    if weights is None:
        model = spec.build(input_shape)
    elif str(weights).endswith(".h5"):
        path = backbone_weights.check_weights_file(weights)
        model = spec.build(input_shape)
        backbone_weights.load_backbone_weights(model, path, backbone)
    elif spec.pretrained is not None:
        model = spec.pretrained(input_shape, weights)
    elif weights == "imagenet":
        raise ValueError(
            f"No Keras ImageNet weights exist for {backbone!r}; pass the path of a local "
            "weights file (.h5 / .weights.h5) instead, or weights=None for random weights."
        )
    else:
        raise ValueError(
            f"weights of {backbone!r} must be None or the path of a .h5 / .weights.h5 file; "
            f"got {weights!r}."
        )
    if freeze_batch_norm is None:
        freeze_batch_norm = weights is not None
    if freeze_batch_norm:
        backbone_weights.freeze_batch_norm(model)
    return model


def save_backbone_weights(model: keras.Model, path: str) -> None:
    """Writes the backbone weights of an embedder, the file `build_embedder(weights=path)` loads.

    Args:
      model: an embedder built by `build_embedder`.
      path: destination ending in `.weights.h5`.
    """
    model.get_layer(BACKBONE_LAYER).save_weights(path)
