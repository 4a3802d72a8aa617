import numpy as np
import pytest

from fl_embed.models import bn_inception
from fl_embed.models.bn_inception import FEATURE_CHANNELS, INCEPTION_BLOCKS

# osmr/imgclsmob (tf2cv/models/bninception.py, its _test) counts 11,295,240 trainable weights for
# BN-Inception with the 1000-way classifier (convolutions with bias, as the Caffe release); the
# classifier is 1024 * 1000 + 1000 of them. Without it: 10,270,240, in the ~10-11M usually quoted.
PUBLISHED_WITH_CLASSIFIER = 11_295_240
CLASSIFIER = 1024 * 1000 + 1000


def _caffe_pool(size):
    """Caffe's 3x3/2 max pooling output size (ceil mode)."""
    return int(np.ceil((size - 3) / 2)) + 1


def _caffe_conv(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


@pytest.fixture(scope="module")
def model_224():
    return bn_inception((224, 224, 3))


def test_trainable_parameters_match_the_published_count_without_classifier(model_224):
    trainable = sum(int(np.prod(w.shape)) for w in model_224.trainable_weights)
    assert trainable == PUBLISHED_WITH_CLASSIFIER - CLASSIFIER
    assert 10_000_000 <= trainable <= 11_000_000


def test_module_widths_follow_figure_5(model_224):
    widths = {
        spec.name: model_224.get_layer(f"inception_{spec.name}_output").output.shape[-1]
        for spec in INCEPTION_BLOCKS
    }
    assert widths == {
        "3a": 256, "3b": 320, "3c": 576, "4a": 576, "4b": 576,
        "4c": 608, "4d": 608, "4e": 1056, "5a": 1024, "5b": 1024,
    }  # fmt: skip
    assert model_224.output_shape == (None, 7, 7, FEATURE_CHANNELS)


@pytest.mark.parametrize("size", [224, 227])
def test_resolutions_follow_caffe_ceil_mode_pooling(size):
    model = bn_inception((size, size, 3))
    pool1 = _caffe_pool(_caffe_conv(size, 7, 2, 3))
    pool2 = _caffe_pool(pool1)
    stage4 = _caffe_conv(pool2, 3, 2, 1)
    stage5 = _caffe_conv(stage4, 3, 2, 1)
    assert model.get_layer("pool1_3x3_s2").output.shape[1] == pool1
    assert model.get_layer("pool2_3x3_s2").output.shape[1] == pool2
    assert (
        model.get_layer("inception_3c_output").output.shape[1]
        == stage4
        == _caffe_pool(pool2)
    )
    assert model.output_shape[1:3] == (stage5, stage5)


def test_forward_pass_on_a_small_batch_is_finite_and_non_negative():
    model = bn_inception((64, 64, 3))
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    features = model(images, training=False).numpy()
    assert features.shape == (2, 2, 2, FEATURE_CHANNELS)
    assert np.all(np.isfinite(features)) and features.min() >= 0.0  # ReLU outputs
    assert not np.allclose(features[0], features[1])


@pytest.mark.parametrize("shape", [(16, 16, 3), (224, 3)])
def test_too_small_or_malformed_input_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="H, W >= 32"):
        bn_inception(shape)
