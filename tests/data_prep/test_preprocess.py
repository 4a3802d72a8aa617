"""Section 3.5 crops, checked against numpy slicing of a position-coded image."""

import numpy as np
import pytest
import tensorflow as tf

from data_prep import preprocess


def position_image(size=256):
    """float image whose pixel (r, c) holds r * size + c in every channel, so a crop reveals its offset."""
    grid = np.arange(size * size, dtype=np.float32).reshape(size, size)
    return np.repeat(grid[:, :, None], 3, axis=2)


def test_center_crop_is_the_middle_227_window():
    image = position_image()
    out = preprocess.center_crop(tf.constant(image)).numpy()
    np.testing.assert_array_equal(out, image[14:241, 14:241])


def test_random_crop_is_a_227_window_possibly_mirrored():
    image = position_image()
    offsets, mirrored = set(), set()
    for i in range(12):
        out = preprocess.random_crop_mirror(
            tf.constant(image), tf.constant([i, 3], tf.int64)
        ).numpy()
        assert out.shape == (227, 227, 3)
        flipped = out[:, 0, 0] > out[:, -1, 0]
        window = out[:, ::-1] if flipped.all() else out
        row, col = divmod(int(window[0, 0, 0]), 256)
        np.testing.assert_array_equal(window, image[row : row + 227, col : col + 227])
        offsets.add((row, col))
        mirrored.add(bool(flipped.all()))
    assert len(offsets) > 1 and mirrored == {True, False}


def test_same_seed_gives_the_same_training_crop():
    image = tf.constant(position_image())
    seed = tf.constant([5, 9], tf.int64)
    a = preprocess.random_crop_mirror(image, seed).numpy()
    b = preprocess.random_crop_mirror(image, seed).numpy()
    np.testing.assert_array_equal(a, b)


def test_preprocess_resizes_any_image_and_scales_for_inception():
    image = tf.constant(
        np.random.default_rng(0).integers(0, 256, (300, 180, 3)), tf.uint8
    )
    out = preprocess.preprocess(image, training=False).numpy()
    assert out.shape == (227, 227, 3) and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_grayscale_becomes_three_channels():
    image = tf.fill([50, 40, 1], tf.constant(255, tf.uint8))
    out = preprocess.preprocess(
        image, training=True, seed=tf.constant([1, 2], tf.int64), scaling="unit"
    )
    assert out.shape == (227, 227, 3)
    np.testing.assert_allclose(out.numpy(), 1.0)


@pytest.mark.parametrize(
    "scaling, low, high",
    [("inception", -1.0, 1.0), ("unit", 0.0, 1.0), ("raw", 0.0, 255.0)],
)
def test_scalings_map_black_and_white_to_their_range(scaling, low, high):
    out = preprocess.scale_pixels(tf.constant([0.0, 255.0]), scaling).numpy()
    np.testing.assert_allclose(out, [low, high])


def test_bad_arguments_raise():
    image = tf.zeros([10, 10, 3], tf.uint8)
    with pytest.raises(ValueError, match="pixel scaling"):
        preprocess.preprocess(image, training=False, scaling="caffe")
    with pytest.raises(ValueError, match="seed"):
        preprocess.preprocess(image, training=True)
    with pytest.raises(ValueError, match="must not exceed"):
        preprocess.preprocess(image, training=False, resize_to=200)
