"""Tests of fl_embed.training.step: the losses by name and one training step (default strategy)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import registry
from fl_embed.losses.registry import LOSS_NAMES
from fl_embed.training import loss_kwargs, make_train_step


def loss_terms(name, labels, embeddings, gamma):
    """The registry's terms of a loss with the arguments the step gives it."""
    return registry.loss_terms(name, labels, embeddings, **loss_kwargs(name, gamma))


def _batch(seed=0, m=24, classes=6, d=8):
    rng = np.random.default_rng(seed)
    labels = tf.constant(
        rng.permutation(np.repeat(rng.choice(50, classes, replace=False), m // classes))
    )
    embeddings = tf.math.l2_normalize(
        tf.constant(rng.normal(size=(m, d)), tf.float32), axis=1
    )
    return labels, embeddings


def test_clustering_terms_satisfy_eq_6():
    labels, embeddings = _batch()
    gamma = 2.0
    terms = loss_terms("clustering", labels, embeddings, gamma)
    expected = max(
        0.0,
        float(terms["score_pred"])
        + gamma * float(terms["margin"])
        - float(terms["score_oracle"]),
    )
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert 0.0 <= float(terms["batch_nmi"]) <= 1.0
    assert float(terms["margin"]) == pytest.approx(
        1.0 - float(terms["batch_nmi"]), abs=1e-6
    )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_gives_a_finite_scalar(name):
    labels, embeddings = _batch(1)
    loss = loss_terms(name, labels, embeddings, 1.0)["loss"]
    assert loss.shape == () and np.isfinite(float(loss))


def test_unknown_loss_names_the_choices():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8)])
    with pytest.raises(ValueError, match="Unknown loss 'contrastive'") as err:
        make_train_step(model, keras.optimizers.RMSprop(1e-2), "contrastive", 1.0)
    assert all(name in str(err.value) for name in LOSS_NAMES)


def test_only_the_clustering_loss_gets_gamma_and_the_inference_backend():
    gamma = tf.Variable(2.0)
    assert loss_kwargs("clustering", gamma, "numpy") == {
        "margin_multiplier": gamma,
        "inference": "numpy",
    }
    assert loss_kwargs("clustering", 2.0) == {"margin_multiplier": 2.0}
    for name in ("triplet", "lifted", "npairs"):
        assert loss_kwargs(name, gamma, "numpy") == {}


def test_each_loss_gets_only_its_own_knobs():
    knobs = {"margin": 0.3, "reg_lambda": 0.05, "margin_multiplier": 7.0}
    assert loss_kwargs("triplet", 2.0, knobs=knobs) == {"margin": 0.3}
    assert loss_kwargs("lifted", 2.0, knobs=knobs) == {"margin": 0.3}
    assert loss_kwargs("npairs", 2.0, knobs=knobs) == {"reg_lambda": 0.05}
    # gamma is the step's (decayed) variable, never the knob's initial value.
    assert loss_kwargs("clustering", 2.0, knobs=knobs) == {"margin_multiplier": 2.0}


@pytest.mark.parametrize(
    "name, knob, value", [("triplet", "margin", 0.05), ("npairs", "reg_lambda", 0.5)]
)
def test_the_step_trains_with_the_knob_it_is_given(name, knob, value):
    labels, _ = _batch(3)
    images = tf.constant(np.random.default_rng(3).uniform(size=(24, 5)), tf.float32)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8), keras.layers.UnitNormalization()]
    )
    step = make_train_step(
        model, keras.optimizers.RMSprop(0.0), name, 1.0, knobs={knob: value}
    )
    got = float(step(images, labels)["loss"])
    embeddings = model(images, training=True)
    fn = registry.get_loss(name).fn
    assert got == pytest.approx(
        float(fn(labels, embeddings, **{knob: value})), rel=1e-5
    )
    assert got != pytest.approx(float(fn(labels, embeddings)), rel=1e-3)


def test_train_step_updates_weights_and_reads_the_gamma_variable():
    labels, _ = _batch(2)
    images = tf.constant(np.random.default_rng(2).uniform(size=(24, 5)), tf.float32)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8), keras.layers.UnitNormalization()]
    )
    before = [w.numpy().copy() for w in model.trainable_variables]
    gamma = tf.Variable(0.0)
    step = make_train_step(model, keras.optimizers.RMSprop(1e-2), "clustering", gamma)
    first = step(images, labels)
    embeddings = model(images)
    gamma.assign(5.0)
    # The compiled step must read the new gamma: its hinge now includes gamma * margin.
    expected = loss_terms("clustering", labels, embeddings, 5.0)["loss"]
    assert float(step(images, labels)["loss"]) == pytest.approx(
        float(expected), rel=1e-4
    )
    assert any(
        not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_variables)
    )
    assert np.isfinite(float(first["loss"]))
