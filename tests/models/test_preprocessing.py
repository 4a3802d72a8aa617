import numpy as np
import pytest
import tensorflow as tf

from data_prep.preprocess import scale_pixels
from fl_embed.models import BACKBONES, SCALINGS, preprocess_for, scaling_for
from fl_embed.models.preprocessing import resolve_scaling

PIXELS = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)


@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_scalings_match_the_data_pipeline(name):
    ours = SCALINGS[name](tf.constant(PIXELS)).numpy()
    pipeline = scale_pixels(tf.constant(PIXELS, tf.float32), name).numpy()
    np.testing.assert_allclose(ours, pipeline, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "backbone, low, high",
    [("inception_v3", -1.0, 1.0), ("bn_inception", -1.0, 1.0), ("small_cnn", 0.0, 1.0)],
)
def test_preprocess_for_maps_uint8_range_to_the_backbone_range(backbone, low, high):
    scaled = preprocess_for(backbone)(tf.constant(PIXELS))
    assert scaled.dtype == tf.float32
    assert scaled.numpy().min() == pytest.approx(low)
    assert scaled.numpy().max() == pytest.approx(high)


def test_every_backbone_has_a_scaling():
    assert {scaling_for(b) for b in BACKBONES} <= set(SCALINGS)


def test_unknown_backbone_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match="bn_inception"):
        preprocess_for("resnet50")


def test_resolve_scaling_names_known_functions_and_custom_ones():
    assert resolve_scaling(preprocess_for("small_cnn"))[0] == "unit"

    def halve(x):
        return x / 2.0

    name, fn = resolve_scaling(halve)
    assert name.startswith("custom:") and "halve" in name and fn is halve


def test_resolve_scaling_rejects_unknown_names_and_non_callables():
    with pytest.raises(ValueError, match="inception"):
        resolve_scaling("imagenet")
    with pytest.raises(TypeError):
        resolve_scaling(3)
