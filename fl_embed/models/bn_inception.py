"""BN-Inception (Ioffe & Szegedy, ICML 2015, Figure 5): the paper's "Inception with batch normalization".

Written with the Keras functional API, without the 1000-way classifier. The layout mirrors the released
Caffe model (and its PyTorch ports), so a converted ImageNet file maps one-to-one onto these layers:
layer names follow the Caffe blob names (`inception_3a_1x1`, `inception_3a_1x1_bn`, ...), convolutions
keep their bias, batch normalisation uses Caffe's epsilon 1e-5, max pooling rounds up ("ceil mode"),
the 3x3 average pooling counts the zero padding, and strided convolutions pad symmetrically.
"""

from typing import NamedTuple

import keras

_BN_EPSILON = 1e-5
MIN_INPUT_SIZE = 32


class InceptionSpec(NamedTuple):
    """Widths of one Inception module (a row of Figure 5 of Ioffe & Szegedy 2015).

    A module with `conv1x1 == 0` is a reduction module: its 3x3 branches have stride 2, its pooling
    branch is a stride-2 max pool passed through without a projection.
    """

    name: str
    conv1x1: int
    reduce3x3: int
    conv3x3: int
    reduce_double3x3: int
    double3x3: int
    pool: str
    pool_proj: int


INCEPTION_BLOCKS: tuple[InceptionSpec, ...] = (
    InceptionSpec("3a", 64, 64, 64, 64, 96, "avg", 32),
    InceptionSpec("3b", 64, 64, 96, 64, 96, "avg", 64),
    InceptionSpec("3c", 0, 128, 160, 64, 96, "max", 0),
    InceptionSpec("4a", 224, 64, 96, 96, 128, "avg", 128),
    InceptionSpec("4b", 192, 96, 128, 96, 128, "avg", 128),
    InceptionSpec("4c", 160, 128, 160, 128, 160, "avg", 128),
    InceptionSpec("4d", 96, 128, 192, 160, 192, "avg", 128),
    InceptionSpec("4e", 0, 128, 192, 192, 256, "max", 0),
    InceptionSpec("5a", 352, 192, 320, 160, 224, "avg", 128),
    InceptionSpec("5b", 352, 192, 320, 192, 224, "max", 128),
)
FEATURE_CHANNELS = 1024


def conv_bn_relu(
    x: keras.KerasTensor, filters: int, kernel: int, name: str, strides: int = 1
) -> keras.KerasTensor:
    """Convolution (with bias, as in Caffe), batch normalisation, ReLU.

    Args:
      x: KerasTensor [batch, H, W, C].
      filters: output channels.
      kernel: odd square kernel size.
      name: Caffe name of the convolution; the other layers get `_bn` and `_relu` appended.
      strides: 1 ("same" padding) or 2 (symmetric zero padding of kernel // 2, as Caffe pads).

    Returns:
      KerasTensor [batch, H', W', filters].
    """
    padding = "same"
    if strides != 1:
        # Keras "same" pads only bottom/right on even inputs; Caffe pads both sides.
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(filters, kernel, strides, padding=padding, name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def ceil_max_pool(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """3x3 stride-2 max pooling that rounds the output size up, as Caffe does.

    Zero padding on the bottom/right stands in for -inf: every pooled input follows a ReLU.

    Args:
      x: KerasTensor [batch, H, W, C] with static H, W and non-negative values.
      name: layer name.

    Returns:
      KerasTensor [batch, ceil((H - 3) / 2) + 1, ceil((W - 3) / 2) + 1, C].
    """
    pad_h, pad_w = (_ceil_mode_padding(int(size)) for size in x.shape[1:3])
    if pad_h or pad_w:
        x = keras.layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, 2, padding="valid", name=name)(x)


def _ceil_mode_padding(size: int) -> int:
    """Extra bottom/right padding that makes a valid 3x3/2 pooling give ceil-mode's output size."""
    out = -(-(size - 3) // 2) + 1
    return (out - 1) * 2 + 3 - size


def inception_module(x: keras.KerasTensor, spec: InceptionSpec) -> keras.KerasTensor:
    """One Inception module of Figure 5: 1x1, 3x3, double 3x3 and pooling branches, concatenated.

    Args:
      x: KerasTensor [batch, H, W, C].
      spec: the module's widths; a reduction module (spec.conv1x1 == 0) halves H and W (rounding up).

    Returns:
      KerasTensor [batch, H', W', sum of the branch widths] (C is passed through by reduction modules).
    """
    prefix = f"inception_{spec.name}"
    reduction = spec.conv1x1 == 0
    strides = 2 if reduction else 1
    branches = []
    if not reduction:
        branches.append(conv_bn_relu(x, spec.conv1x1, 1, f"{prefix}_1x1"))
    b = conv_bn_relu(x, spec.reduce3x3, 1, f"{prefix}_3x3_reduce")
    branches.append(conv_bn_relu(b, spec.conv3x3, 3, f"{prefix}_3x3", strides))
    b = conv_bn_relu(x, spec.reduce_double3x3, 1, f"{prefix}_double_3x3_reduce")
    b = conv_bn_relu(b, spec.double3x3, 3, f"{prefix}_double_3x3_1")
    branches.append(
        conv_bn_relu(b, spec.double3x3, 3, f"{prefix}_double_3x3_2", strides)
    )
    branches.append(_pool_branch(x, spec, prefix))
    return keras.layers.Concatenate(name=f"{prefix}_output")(branches)


def _pool_branch(
    x: keras.KerasTensor, spec: InceptionSpec, prefix: str
) -> keras.KerasTensor:
    """Pooling branch: ceil-mode max pool (reduction), or 3x3/1 pool then a 1x1 projection."""
    if spec.conv1x1 == 0:
        return ceil_max_pool(x, f"{prefix}_pool")
    if spec.pool == "avg":
        # Caffe's average counts the zero padding; Keras "same" would divide by the valid count.
        x = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pool_pad")(x)
        x = keras.layers.AveragePooling2D(3, 1, padding="valid", name=f"{prefix}_pool")(
            x
        )
    else:
        x = keras.layers.MaxPooling2D(3, 1, padding="same", name=f"{prefix}_pool")(x)
    return conv_bn_relu(x, spec.pool_proj, 1, f"{prefix}_pool_proj")


def bn_inception(
    input_shape: tuple[int, int, int] = (227, 227, 3), name: str = "bn_inception"
) -> keras.Model:
    """BN-Inception feature extractor (no global pooling, no classifier).

    Args:
      input_shape: (H, W, C) with H, W >= 32; images scaled to [-1, 1] (see `preprocess_for`).
      name: model name.

    Returns:
      keras.Model mapping float32 [batch, H, W, C] to features [batch, H/32, W/32 (rounded up), 1024].

    Raises:
      ValueError: input smaller than 32x32 or not rank 3.
    """
    if len(input_shape) != 3 or min(input_shape[:2]) < MIN_INPUT_SIZE:
        raise ValueError(
            f"bn_inception needs input_shape (H, W, C) with H, W >= {MIN_INPUT_SIZE}; "
            f"got {input_shape}."
        )
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn_relu(inputs, 64, 7, "conv1_7x7_s2", strides=2)
    x = ceil_max_pool(x, "pool1_3x3_s2")
    x = conv_bn_relu(x, 64, 1, "conv2_3x3_reduce")
    x = conv_bn_relu(x, 192, 3, "conv2_3x3")
    x = ceil_max_pool(x, "pool2_3x3_s2")
    for spec in INCEPTION_BLOCKS:
        x = inception_module(x, spec)
    return keras.Model(inputs, x, name=name)
