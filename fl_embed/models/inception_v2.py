"""TF-slim's inception_v2: BN-Inception as TensorFlow's model zoo has it, with its ImageNet checkpoint.

The network is `inception_v2_base` of tensorflow/models `research/slim/nets/inception_v2.py` up to
`Mixed_5c`, under `inception_v2_arg_scope()` and depth_multiplier 1: SAME padding everywhere; every
convolution but the first without bias, then batch normalisation without a scale (gamma) term,
epsilon 0.001, and ReLU; the first, `Conv2d_1a_7x7`, a separable 7x7/2 convolution (depthwise
multiplier 8) with biases and ReLU but no batch norm (slim's arg scope normalises `conv2d` only).
How it differs from the Caffe layout of `bn_inception`: BUILD_NOTES.md, "Models".

Layers are named by their TF-slim variable scope with "/" written as "." (`Mixed_3b.Branch_1.
Conv2d_0b_3x3`, `....BatchNorm`), so `slim_checkpoint` maps a checkpoint onto them by name; the
endpoints keep slim's names (`Mixed_3b` ... `Mixed_5c`).
"""

import os
import tempfile

import keras

from fl_embed.models import slim_checkpoint
from fl_embed.models.bn_inception import InceptionSpec
from fl_embed.models.weights import download_error

SCOPE = "InceptionV2"
IMAGENET_URL = "http://download.tensorflow.org/models/inception_v2_2016_08_28.tar.gz"
IMAGENET_FILE = "inception_v2_2016_08_28.tar.gz"
BN_EPSILON = 0.001
# slim's decay; it only matters when batch norm trains (from scratch, see `build_embedder`).
BN_MOMENTUM = 0.9997
# slim's min(int(depth(64) / 3), 8): channels of the depthwise step of Conv2d_1a_7x7.
DEPTHWISE_MULTIPLIER = 8
MIN_INPUT_SIZE = 32
FEATURE_CHANNELS = 1024
# Conv2d_1a_7x7 as TF-slim defines it ("separable"), or trained under an arg scope that also
# normalises separable convolutions ("separable_bn", e.g. the Object Detection API's).
FIRST_LAYERS = ("separable", "separable_bn")

# slim's Mixed blocks, in `bn_inception.InceptionSpec` terms. A reduction block (conv1x1 == 0:
# Mixed_4a, Mixed_5a) has Branch_0 = 1x1 -> 3x3/2, Branch_1 = 1x1 -> 3x3 -> 3x3/2 and a 3x3/2 max
# pool; the others Branch_0 = 1x1, Branch_1 = 1x1 -> 3x3, Branch_2 = 1x1 -> 3x3 -> 3x3 and Branch_3 =
# a 3x3/1 pool -> 1x1.
_MIXED_WIDTHS = {  # conv1x1, reduce3x3, conv3x3, reduce_double3x3, double3x3, pool, pool_proj
    "3b": (64, 64, 64, 64, 96, "avg", 32),
    "3c": (64, 64, 96, 64, 96, "avg", 64),
    "4a": (0, 128, 160, 64, 96, "max", 0),
    "4b": (224, 64, 96, 96, 128, "avg", 128),
    "4c": (192, 96, 128, 96, 128, "avg", 128),
    "4d": (160, 128, 160, 128, 160, "avg", 96),
    "4e": (96, 128, 192, 160, 192, "avg", 96),
    "5a": (0, 128, 192, 192, 256, "max", 0),
    "5b": (352, 192, 320, 160, 224, "avg", 128),
    "5c": (352, 192, 320, 192, 224, "max", 128),
}
MIXED_BLOCKS: tuple[InceptionSpec, ...] = tuple(
    InceptionSpec(name, *widths) for name, widths in _MIXED_WIDTHS.items()
)


def _layer_name(scope: str) -> str:
    return scope.replace("/", ".")


def batch_norm_relu(
    x: keras.KerasTensor, scope: str, scale: bool = False
) -> keras.KerasTensor:
    """slim.batch_norm (epsilon 0.001, beta, gamma only if `scale`) in `scope`/BatchNorm, then ReLU."""
    x = keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        scale=scale,
        name=_layer_name(f"{scope}/BatchNorm"),
    )(x)
    return keras.layers.ReLU(name=_layer_name(f"{scope}/Relu"))(x)


def conv_bn_relu(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    scope: str,
    strides: int = 1,
    scale: bool = False,
) -> keras.KerasTensor:
    """slim.conv2d under the inception arg scope: SAME convolution without bias, batch norm, ReLU.

    Args:
      x: KerasTensor [batch, H, W, C].
      filters: output channels.
      kernel: square kernel size.
      scope: slim variable scope, e.g. "Mixed_3b/Branch_0/Conv2d_0a_1x1".
      strides: 1 or 2 (SAME padding: output ceil(H / strides)).
      scale: batch norm with a gamma term (slim's inception scope has none).

    Returns:
      KerasTensor [batch, ceil(H / strides), ceil(W / strides), filters].
    """
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=_layer_name(scope),
    )(x)
    return batch_norm_relu(x, scope, scale)


def mixed_block(
    x: keras.KerasTensor, spec: InceptionSpec, scale: bool = False
) -> keras.KerasTensor:
    """One of slim's Mixed blocks, its branches concatenated in the layer `Mixed_<spec.name>`.

    Args:
      x: KerasTensor [batch, H, W, C].
      spec: the block's widths, see `MIXED_BLOCKS`.
      scale: batch norm with a gamma term.

    Returns:
      KerasTensor [batch, H', W', sum of the branch widths]; a reduction block halves H and W
      (rounding up) and passes C through its pooling branch.
    """
    scope = f"Mixed_{spec.name}"

    def conv(inputs, filters, kernel, name, strides=1):
        return conv_bn_relu(inputs, filters, kernel, f"{scope}/{name}", strides, scale)

    if spec.conv1x1 == 0:
        b0 = conv(x, spec.reduce3x3, 1, "Branch_0/Conv2d_0a_1x1")
        b0 = conv(b0, spec.conv3x3, 3, "Branch_0/Conv2d_1a_3x3", 2)
        b1 = conv(x, spec.reduce_double3x3, 1, "Branch_1/Conv2d_0a_1x1")
        b1 = conv(b1, spec.double3x3, 3, "Branch_1/Conv2d_0b_3x3")
        b1 = conv(b1, spec.double3x3, 3, "Branch_1/Conv2d_1a_3x3", 2)
        b2 = keras.layers.MaxPooling2D(
            3, 2, padding="same", name=f"{scope}.Branch_2.MaxPool_1a_3x3"
        )(x)
        branches = [b0, b1, b2]
    else:
        b0 = conv(x, spec.conv1x1, 1, "Branch_0/Conv2d_0a_1x1")
        b1 = conv(x, spec.reduce3x3, 1, "Branch_1/Conv2d_0a_1x1")
        b1 = conv(b1, spec.conv3x3, 3, "Branch_1/Conv2d_0b_3x3")
        b2 = conv(x, spec.reduce_double3x3, 1, "Branch_2/Conv2d_0a_1x1")
        b2 = conv(b2, spec.double3x3, 3, "Branch_2/Conv2d_0b_3x3")
        b2 = conv(b2, spec.double3x3, 3, "Branch_2/Conv2d_0c_3x3")
        # TF's SAME average pooling divides by the number of real inputs, as Keras' does.
        pool = (
            keras.layers.AveragePooling2D(
                3, 1, padding="same", name=f"{scope}.Branch_3.AvgPool_0a_3x3"
            )
            if spec.pool == "avg"
            else keras.layers.MaxPooling2D(
                3, 1, padding="same", name=f"{scope}.Branch_3.MaxPool_0a_3x3"
            )
        )
        b3 = conv(pool(x), spec.pool_proj, 1, "Branch_3/Conv2d_0b_1x1")
        branches = [b0, b1, b2, b3]
    return keras.layers.Concatenate(name=scope)(branches)


def first_layer(
    x: keras.KerasTensor, kind: str = "separable", scale: bool = False
) -> keras.KerasTensor:
    """Conv2d_1a_7x7: separable, 64 channels, 7x7, stride 2, SAME, ReLU; `kind` of `FIRST_LAYERS`."""
    scope = "Conv2d_1a_7x7"
    with_bn = kind == "separable_bn"
    x = keras.layers.SeparableConv2D(
        64,
        7,
        2,
        padding="same",
        depth_multiplier=DEPTHWISE_MULTIPLIER,
        use_bias=not with_bn,
        name=scope,
    )(x)
    if with_bn:
        return batch_norm_relu(x, scope, scale)
    return keras.layers.ReLU(name=f"{scope}.Relu")(x)


def inception_v2(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    first_layer_kind: str = "separable",
    batch_norm_scale: bool = False,
    name: str = "inception_v2",
) -> keras.Model:
    """TF-slim's inception_v2 feature extractor up to Mixed_5c (no pooling, no classifier).

    Args:
      input_shape: (H, W, C) with H, W >= 32; images scaled to [-1, 1] (slim's inception
        preprocessing, see `preprocess_for`).
      first_layer_kind: one of `FIRST_LAYERS`; TF-slim's definition is "separable".
      batch_norm_scale: batch norm with a gamma term (slim's inception arg scope has none).
      name: model name.

    Returns:
      keras.Model mapping float32 [batch, H, W, C] to features [batch, ceil(H / 32),
      ceil(W / 32), 1024]: [batch, 8, 8, 1024] at 227x227. About 10.15M trainable parameters.

    Raises:
      ValueError: input smaller than 32x32 or not rank 3, or unknown first_layer_kind.
    """
    if len(input_shape) != 3 or min(input_shape[:2]) < MIN_INPUT_SIZE:
        raise ValueError(
            f"inception_v2 needs input_shape (H, W, C) with H, W >= {MIN_INPUT_SIZE}; "
            f"got {input_shape}."
        )
    if first_layer_kind not in FIRST_LAYERS:
        raise ValueError(
            f"Unknown first_layer_kind {first_layer_kind!r}; use one of {FIRST_LAYERS}."
        )
    inputs = keras.Input(input_shape, name="images")
    x = first_layer(inputs, first_layer_kind, batch_norm_scale)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="MaxPool_2a_3x3")(x)
    x = conv_bn_relu(x, 64, 1, "Conv2d_2b_1x1", scale=batch_norm_scale)
    x = conv_bn_relu(x, 192, 3, "Conv2d_2c_3x3", scale=batch_norm_scale)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="MaxPool_3a_3x3")(x)
    for spec in MIXED_BLOCKS:
        x = mixed_block(x, spec, batch_norm_scale)
    return keras.Model(inputs, x, name=name)


def checkpoint_layout(names: set[str] | dict) -> tuple[str, bool]:
    """The first layer and the batch norm a checkpoint was trained with, read from its names.

    Args:
      names: variable names relative to the InceptionV2 scope.

    Returns:
      (first_layer_kind, batch_norm_scale) for `inception_v2`.
    """
    first_bn = any(name.startswith("Conv2d_1a_7x7/BatchNorm/") for name in names)
    kind = "separable_bn" if first_bn else "separable"
    return kind, any(name.endswith("/BatchNorm/gamma") for name in names)


def inception_v2_pretrained(
    input_shape: tuple[int, int, int], weights: str, name: str = "inception_v2"
) -> keras.Model:
    """inception_v2 with the weights of a TF-slim checkpoint, its first layer as the checkpoint's.

    Every variable under the checkpoint's InceptionV2 scope but `Logits/` fills exactly one Keras
    weight, and every Keras weight is filled; anything else is refused before a value is set.

    Args:
      input_shape: see `inception_v2`.
      weights: "imagenet" (TF-slim's `inception_v2_2016_08_28`, downloaded once into
        ~/.keras/models/), a checkpoint prefix (`.../inception_v2.ckpt`, V1 file or V2 prefix), a
        folder holding one checkpoint, or a `.tar.gz` / `.tgz` / `.tar` of one.
      name: model name.

    Returns:
      The model, see `inception_v2`.

    Raises:
      FileNotFoundError: no checkpoint at `weights`.
      ValueError: not a TF checkpoint, or one whose variables do not match the model (every
        missing, extra or mis-shaped name listed).
      ConnectionError: "imagenet" could not be downloaded; says how to work offline.
    """
    if weights == "imagenet":
        return _from_checkpoint(input_shape, fetch_imagenet_checkpoint(), weights, name)
    if str(weights).endswith(slim_checkpoint.TARBALL_SUFFIXES):
        with tempfile.TemporaryDirectory(prefix="inception_v2_") as folder:
            prefix = slim_checkpoint.extract_tarball(
                weights, os.path.join(folder, "checkpoint")
            )
            return _from_checkpoint(input_shape, prefix, weights, name)
    prefix = slim_checkpoint.checkpoint_prefix(weights)
    return _from_checkpoint(input_shape, prefix, weights, name)


def _from_checkpoint(
    input_shape: tuple[int, int, int], prefix: str, source: str, name: str
) -> keras.Model:
    reader, full_scope, shapes = slim_checkpoint.checkpoint_variables(
        prefix, SCOPE, ignore=("Logits/",)
    )
    kind, scale = checkpoint_layout(shapes)
    model = inception_v2(input_shape, kind, scale, name)
    slim_checkpoint.assign_strictly(
        slim_checkpoint.slim_variables(model), reader, full_scope, shapes, source
    )
    return model


def fetch_imagenet_checkpoint(cache_dir: str | None = None) -> str:
    """TF-slim's ImageNet checkpoint of inception_v2, downloaded and extracted once.

    Args:
      cache_dir: Keras' cache folder; None: ~/.keras (the file goes to its `models/`).

    Returns:
      The checkpoint prefix.

    Raises:
      ConnectionError: the download failed; names the URL and the weights=PATH alternative.
    """
    try:
        tarball = keras.utils.get_file(
            fname=IMAGENET_FILE,
            origin=IMAGENET_URL,
            cache_subdir="models",
            cache_dir=cache_dir,
        )
    except Exception as err:
        raise download_error(
            "TF-slim's ImageNet checkpoint of inception_v2", IMAGENET_URL, err
        ) from err
    folder = tarball[: -len(".tar.gz")]
    return slim_checkpoint.extract_tarball(tarball, folder)
