"""Behaviour every baseline loss of the registry shares (eqs. 1-3), each against its own numpy
reference in `baseline_references.py`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import get_loss
from tests.losses.baseline_references import (
    REFERENCES,
    autodiff,
    numeric_gradient,
    unit_rows,
)

BASELINES = sorted(REFERENCES)


def _inputs(name, rng, m, dim):
    x = rng.normal(size=(m, dim))
    return unit_rows(x) if get_loss(name).l2_normalize else x


VALUES = [("triplet", 0.2), ("triplet", 1.0), ("lifted", 0.5), ("lifted", 1.0)] + [
    ("npairs", value) for value in (0.0, 0.002, 0.5)
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, value", VALUES)
def test_value_matches_numpy_reference_on_random_batches(seed, name, value):
    reference, knob, _ = REFERENCES[name]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=16)
    x = _inputs(name, rng, 16, 8)
    got = get_loss(name).fn(labels, x.astype(np.float32), **{knob: value}).numpy()
    np.testing.assert_allclose(got, reference(labels, x, value), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "name, value", [("triplet", 1.0), ("lifted", 1.0), ("npairs", 0.1)]
)
def test_gradient_matches_finite_differences_of_reference(seed, name, value):
    reference, knob, _ = REFERENCES[name]
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    x = rng.normal(size=(9, 3))
    _, grad = autodiff(get_loss(name).fn, labels, x, **{knob: value})
    expected = numeric_gradient(lambda z: reference(labels, z, value), x)
    assert (
        np.abs(expected).max() > 0.1
    )  # some term is active: the comparison means something
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize(
    "labels",
    [np.zeros(6, np.int32), np.arange(6, dtype=np.int32)],
    ids=["no_negative", "no_positive"],
)
def test_degenerate_batch_gives_zero_loss_and_zero_gradient(name, labels):
    x = np.random.default_rng(0).normal(size=(6, 4))
    loss, grad = autodiff(get_loss(name).fn, labels, x)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("name", BASELINES)
def test_duplicate_embeddings_give_a_finite_gradient(name):
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss, grad = autodiff(get_loss(name).fn, np.array([0, 0, 1, 1]), x)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", BASELINES)
def test_float16_embeddings_are_computed_in_float32(name):
    reference, _, default = REFERENCES[name]
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=12)
    x = _inputs(name, rng, 12, 8).astype(np.float16)
    loss = get_loss(name).fn(labels, x)
    assert loss.dtype == tf.float32
    expected = reference(labels, x.astype(np.float64), default)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", BASELINES)
def test_tf_function_with_unknown_batch_size_matches_eager(name):
    loss_fn = get_loss(name).fn
    fn = tf.function(
        loss_fn,
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
        ],
    )
    rng = np.random.default_rng(4)
    for m in (5, 11):
        labels = rng.integers(0, 3, size=m).astype(np.int32)
        x = rng.normal(size=(m, 4)).astype(np.float32)
        np.testing.assert_allclose(
            fn(labels, x).numpy(), loss_fn(labels, x).numpy(), rtol=1e-6
        )


@pytest.mark.parametrize("name", BASELINES)
def test_bad_input_is_a_clear_error(name):
    loss_fn = get_loss(name).fn
    with pytest.raises(ValueError, match="disagree on the batch size"):
        loss_fn(np.array([0, 0, 1]), np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="labels must have shape"):
        loss_fn(np.zeros((4, 2), np.int32), np.ones((4, 2), np.float32))
    x = np.ones((4, 2), np.float32)
    x[1, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        loss_fn(np.array([0, 0, 1, 1]), x)


@pytest.mark.parametrize(
    "name, value", [("triplet", 0.3), ("lifted", 0.7), ("npairs", 0.01)]
)
def test_keras_loss_round_trips_through_serialization(name, value):
    spec = get_loss(name)
    _, knob, _ = REFERENCES[name]
    loss = spec.keras_class(**{knob: value})
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert isinstance(restored, spec.keras_class)
    assert restored.get_config()[knob] == value


@pytest.mark.parametrize(
    "name, value", [("triplet", 0.5), ("lifted", 1.0), ("npairs", 0.002)]
)
def test_keras_loss_trains_a_model_with_fit(name, value):
    spec = get_loss(name)
    reference, knob, _ = REFERENCES[name]
    rng = np.random.default_rng(5)
    features = rng.normal(size=(64, 10)).astype(np.float32)
    # Keras' default y_true dtype is float32: whole-valued floats are accepted as labels.
    labels = rng.integers(0, 4, size=(64, 1)).astype(np.float32)
    layers = [keras.Input((10,)), keras.layers.Dense(8)]
    if spec.l2_normalize:
        layers.append(keras.layers.UnitNormalization())
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss=spec.keras_class(**{knob: value}))
    history = model.fit(features, labels, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = reference(
        labels[:16, 0], model.predict(features[:16], verbose=0).astype(float), value
    )
    np.testing.assert_allclose(
        model.evaluate(features[:16], labels[:16], verbose=0), expected, rtol=1e-4
    )
