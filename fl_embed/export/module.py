"""The exported object: the Keras embedder and its preprocessing as two serving signatures."""

import keras
import tensorflow as tf

from fl_embed.export.decoding import (
    BACKGROUND,
    MAX_PIXELS,
    DecodeOptions,
    decode_batch,
)
from fl_embed.models.preprocessing import (
    ScalingFn,
)

INPUT_KEY = "images"
OUTPUT_KEY = "embeddings"
SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "embed_images"


class EmbedderModule(tf.Module):
    """The exported object: the Keras embedder plus its preprocessing, as two tf.functions.

    Attributes:
      model: the Keras embedder, float32 [batch, image_size, image_size, channels] -> [batch, d].
      tf_variables: its variables as tf.Variables (what a session-based loader restores).
      serve_encoded: tf.function, tf.string [batch] -> {"embeddings": float32 [batch, d]}.
      embed_images: tf.function, float32 [batch, image_size, image_size, channels] -> same dict.
    """

    def __init__(
        self,
        model: keras.Model,
        image_size: int,
        resize_to: int | None,
        channels: int,
        scaling: ScalingFn,
        max_pixels: int = MAX_PIXELS,
        background: float = BACKGROUND,
    ):
        super().__init__(name="fl_embed_embedder")
        self.model = model
        # The TF1-style loaders (TF Serving's C++ model server, `saved_model_cli run`) restore
        # only variables the module tracks as tf.Variables: reached through the Keras 3 model
        # alone, every read fails with "Could not find variable".
        self.tf_variables = [
            v.value if isinstance(v, keras.Variable) else v for v in model.variables
        ]
        self._image_size = image_size
        self._channels = channels
        self._scaling = scaling
        self._decode = DecodeOptions(
            image_size, resize_to, channels, max_pixels, background
        )
        self.serve_encoded = tf.function(
            self._serve_encoded,
            input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)],
        )
        self.embed_images = tf.function(
            self._embed_images,
            input_signature=[
                tf.TensorSpec(
                    [None, image_size, image_size, channels], tf.float32, name=INPUT_KEY
                )
            ],
        )

    def _serve_encoded(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = decode_batch(images, self._decode)
        return self._embed_images(self._scaling(pixels))

    def _embed_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # A signature's declared shape is not enforced when it is called: a 64 x 64 batch would
        # run through a fully convolutional backbone for a 32 x 32 model without complaint.
        expected = tf.constant([self._image_size, self._image_size, self._channels])
        checks = [
            tf.debugging.assert_equal(
                tf.shape(images)[1:],
                expected,
                message=(
                    f"embed_images: images must be [batch, {self._image_size}, "
                    f"{self._image_size}, {self._channels}]"
                ),
            ),
            tf.debugging.assert_all_finite(
                images, message="embed_images: images contain NaN or Inf"
            ),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        # Batch normalisation kernels reject an empty batch, which a client may legitimately send.
        embeddings = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(self.model(images, training=False), tf.float32),
            lambda: tf.zeros([0, self.model.output_shape[-1]], tf.float32),
        )
        return {OUTPUT_KEY: embeddings}
