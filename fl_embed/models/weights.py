"""Backbone weights: Keras .h5 files, downloads that fail offline, batch norm while fine-tuning."""

import os

import keras


def check_weights_file(path: str) -> str:
    """Checks that the Keras weights file `path` (`.h5` / `.weights.h5`) exists.

    Returns:
      The path.

    Raises:
      FileNotFoundError: no such file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Weights file {path!r} does not exist; refusing to fall back to random weights."
        )
    return str(path)


def load_backbone_weights(model: keras.Model, path: str, backbone: str) -> None:
    """Loads a weights file into a backbone, turning any mismatch into one clear ValueError.

    Args:
      model: the backbone, randomly initialised.
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
            f"{model.input_shape[1:]} ({first_line(err)}). Pass a file of this backbone's weights, "
            "e.g. one written by fl_embed.models.save_backbone_weights; a whole embedder's "
            "model.save_weights file loads with model.load_weights on the built embedder."
        ) from err


def download_error(what: str, source: str, err: Exception) -> ConnectionError:
    """The error of a failed weights download: what failed, why, and the offline alternative.

    Args:
      what: the weights, e.g. "Keras' ImageNet weights for inception_v3".
      source: the URL or file name to fetch elsewhere.
      err: the download's exception.
    """
    return ConnectionError(
        f"Could not download {what} ({first_line(err)}). Without a network, fetch {source} "
        "elsewhere and pass its path as weights=PATH."
    )


def freeze_batch_norm(model: keras.Model) -> None:
    """Puts every batch normalisation layer of `model` in inference mode for good.

    Keras runs a `BatchNormalization` layer with `trainable=False` on its moving statistics even
    when called with `training=True`, and leaves its beta / gamma out of the trainable weights:
    fine-tuning then keeps the pretrained normalisation (see BUILD_NOTES.md, "Models").
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def first_line(err: Exception) -> str:
    """First line of an exception message: Keras' load errors run over many lines."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
