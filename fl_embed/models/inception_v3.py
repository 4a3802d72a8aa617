"""Inception v3 from Keras applications, without its classifier: the pretrained fallback backbone.

A different, larger network than the paper's BN-Inception (`inception_v2`), but one Keras downloads
ImageNet weights for.
"""

import keras

from fl_embed.models.weights import download_error

IMAGENET_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def inception_v3(
    input_shape: tuple[int, int, int] = (299, 299, 3), name: str = "inception_v3"
) -> keras.Model:
    """Randomly initialised InceptionV3 feature extractor.

    Args:
      input_shape: (H, W, C) with H, W >= 75; images scaled to [-1, 1].
      name: model name.

    Returns:
      keras.Model mapping float32 [batch, H, W, C] to features [batch, h, w, 2048].
    """
    return keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=input_shape, name=name
    )


def inception_v3_pretrained(
    input_shape: tuple[int, int, int], weights: str, name: str = "inception_v3"
) -> keras.Model:
    """InceptionV3 with Keras' ImageNet weights (downloaded once into ~/.keras/models/).

    Args:
      input_shape: see `inception_v3`.
      weights: "imagenet".
      name: model name.

    Raises:
      ValueError: weights other than "imagenet".
      ConnectionError: the download failed (e.g. no network); says how to work offline.
    """
    if weights != "imagenet":
        raise ValueError(
            "weights must be None, 'imagenet' or the path of a .h5 / .weights.h5 file; "
            f"got {weights!r}."
        )
    try:
        return keras.applications.InceptionV3(
            include_top=False, weights="imagenet", input_shape=input_shape, name=name
        )
    except Exception as err:
        if "URL fetch failure" not in str(err):
            raise
        raise download_error(
            "Keras' ImageNet weights for inception_v3", IMAGENET_FILE, err
        ) from err
