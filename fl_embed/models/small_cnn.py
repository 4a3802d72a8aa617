"""A small CNN for the 32x32 glyph data set, cheap enough to train on a 2-core CPU."""

import keras

# Output channels of the three stages (each halves the resolution) and of the last convolution.
STAGE_WIDTHS = (16, 32, 64)
FEATURE_WIDTH = 128


def small_cnn(
    input_shape: tuple[int, int, int] = (32, 32, 1), name: str = "small_cnn"
) -> keras.Model:
    """Three stages of 3x3 convolution, batch normalisation, ReLU and 2x2 max pooling, then a 3x3 convolution.

    Args:
      input_shape: (H, W, C), images scaled to [0, 1] (see `preprocess_for`); H, W >= 8.
      name: model name.

    Returns:
      keras.Model mapping float32 [batch, H, W, C] to features [batch, H/8, W/8, FEATURE_WIDTH].

    Raises:
      ValueError: input smaller than 8x8 or not rank 3.
    """
    if len(input_shape) != 3 or min(input_shape[:2]) < 8:
        raise ValueError(
            f"small_cnn needs input_shape (H, W, C) with H, W >= 8; got {input_shape}."
        )
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        x = _conv_bn_relu(x, width, f"conv{stage}")
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    x = _conv_bn_relu(x, FEATURE_WIDTH, f"conv{len(STAGE_WIDTHS) + 1}")
    return keras.Model(inputs, x, name=name)


def _conv_bn_relu(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """3x3 "same" convolution without bias (batch normalisation supplies the shift), BN, ReLU."""
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)
