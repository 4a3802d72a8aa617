"""Tests of fl_embed.training.distributed with a real MirroredStrategy over 2 logical CPUs.

Logical devices must be configured before TensorFlow initialises its runtime, which other test
modules will already have done, so the strategy runs in a subprocess (this file run as a script)
that saves its results; the tests compare them with one device on the concatenated batch, computed
here with the plain `loss_terms`.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.training import loss_terms, make_train_step
from fl_embed.training.distributed import (
    make_replicated_train_step,
    make_strategy,
    replica_loss_terms,
)

REPLICAS = 2
GLOBAL_BATCH = 24
LOSS_NAMES = ("clustering", "triplet")
MODES = ("global", "local")
GAMMA = 1.5
LEARNING_RATE = 0.1


def _data():
    rng = np.random.default_rng(7)
    labels = rng.permutation(np.repeat(rng.choice(40, 6, replace=False), 4)).astype(
        np.int32
    )
    images = rng.uniform(size=(GLOBAL_BATCH, 5)).astype(np.float32)
    embeddings = rng.normal(size=(GLOBAL_BATCH, 8)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    kernel = rng.normal(scale=0.5, size=(5, 8)).astype(np.float32)
    bias = rng.normal(scale=0.1, size=(8,)).astype(np.float32)
    return labels, images, embeddings, [kernel, bias]


def _model(weights):
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8), keras.layers.UnitNormalization()]
    )
    model.set_weights(weights)
    return model


def _run_replicas(out_path):
    """Subprocess body: every loss and mode under MirroredStrategy, results saved to out_path."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS
    )
    strategy = make_strategy("mirrored", [f"/cpu:{i}" for i in range(REPLICAS)])
    labels, images, embeddings, weights = _data()
    share = GLOBAL_BATCH // REPLICAS

    def split(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(
                array[ctx.replica_id_in_sync_group * share :][:share]
            )
        )

    results = {"num_replicas": np.array(strategy.num_replicas_in_sync)}
    for name in LOSS_NAMES:
        for mode in MODES:
            key = f"{name}_{mode}"

            def on_embeddings(y, x, name=name, mode=mode):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = replica_loss_terms(name, y, x, GAMMA, mode)["loss"]
                return loss, tape.gradient(loss, x)

            loss, grads = tf.function(
                lambda y, x, fn=on_embeddings: strategy.run(fn, args=(y, x))
            )(split(labels), split(embeddings))
            results[f"{key}_loss"] = strategy.reduce("SUM", loss, axis=None).numpy()
            results[f"{key}_embedding_grads"] = np.concatenate(
                [g.numpy() for g in strategy.experimental_local_results(grads)]
            )

            with strategy.scope():
                model = _model(weights)
                optimizer = keras.optimizers.SGD(LEARNING_RATE)

            def train_step(
                y, x, name=name, mode=mode, model=model, optimizer=optimizer
            ):
                with tf.GradientTape() as tape:
                    loss = replica_loss_terms(
                        name, y, model(x, training=True), GAMMA, mode
                    )["loss"]
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
                return grads

            grads = tf.function(
                lambda y, x, fn=train_step: strategy.run(fn, args=(y, x))
            )(split(labels), split(images))
            for i, g in enumerate(grads):
                results[f"{key}_weight_grad_{i}"] = strategy.reduce(
                    "SUM", g, axis=None
                ).numpy()
            for i, w in enumerate(model.get_weights()):
                results[f"{key}_weight_after_{i}"] = w
    with strategy.scope():
        model = _model(weights)
        optimizer = keras.optimizers.RMSprop(LEARNING_RATE)
    step = make_replicated_train_step(strategy, model, optimizer, "clustering", GAMMA)
    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((images, labels))
    )
    for images_r, labels_r in batches:
        results["step_loss"] = step(images_r, labels_r)["loss"].numpy()
    for i, w in enumerate(model.get_weights()):
        results[f"step_weight_after_{i}"] = w
    np.savez(out_path, **results)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed") / "results.npz"
    # The subprocess imports fl_embed from this checkout, as the tests here do.
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    env = dict(
        os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""
    )
    subprocess.run(
        [sys.executable, __file__, str(out)], check=True, env=env, timeout=300
    )
    return dict(np.load(out))


def _one_device(name, labels, x_fn, variables):
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            loss = loss_terms(name, tf.constant(labels), x_fn(), GAMMA)["loss"]
        return loss, tape.gradient(loss, variables)

    loss, grads = run()
    return float(loss), [g.numpy() for g in grads]


def test_mirrored_strategy_runs_two_replicas(mirrored):
    assert int(mirrored["num_replicas"]) == REPLICAS


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_global_mode_matches_one_device_on_the_concatenated_batch(mirrored, name):
    labels, _, embeddings, _ = _data()
    x = tf.Variable(embeddings)
    loss, (grad,) = _one_device(name, labels, lambda: tf.identity(x), [x])
    assert loss > 0.0
    assert float(mirrored[f"{name}_global_loss"]) == pytest.approx(
        loss, rel=1e-5, abs=1e-6
    )
    np.testing.assert_allclose(
        mirrored[f"{name}_global_embedding_grads"], grad, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_global_mode_weight_gradients_sum_to_one_device_gradients(mirrored, name):
    labels, images, _, weights = _data()
    model = _model(weights)
    _, grads = _one_device(
        name, labels, lambda: model(tf.constant(images)), model.trainable_variables
    )
    for i, grad in enumerate(grads):
        np.testing.assert_allclose(
            mirrored[f"{name}_global_weight_grad_{i}"], grad, rtol=1e-4, atol=1e-6
        )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_global_mode_sgd_step_matches_one_device_step(mirrored, name):
    labels, images, _, weights = _data()
    model = _model(weights)
    _, grads = _one_device(
        name, labels, lambda: model(tf.constant(images)), model.trainable_variables
    )
    for i, (w, grad) in enumerate(zip(weights, grads)):
        np.testing.assert_allclose(
            mirrored[f"{name}_global_weight_after_{i}"],
            w - LEARNING_RATE * grad,
            rtol=1e-4,
            atol=1e-6,
        )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_local_mode_averages_the_sub_batch_losses_and_gradients(mirrored, name):
    labels, _, embeddings, _ = _data()
    share = GLOBAL_BATCH // REPLICAS
    losses, grads = [], []
    for r in range(REPLICAS):
        x = tf.Variable(embeddings[r * share :][:share])
        loss, (grad,) = _one_device(
            name, labels[r * share :][:share], lambda x=x: tf.identity(x), [x]
        )
        losses.append(loss)
        grads.append(grad / REPLICAS)
    assert float(mirrored[f"{name}_local_loss"]) == pytest.approx(
        np.mean(losses), rel=1e-5, abs=1e-6
    )
    np.testing.assert_allclose(
        mirrored[f"{name}_local_embedding_grads"],
        np.concatenate(grads),
        rtol=1e-5,
        atol=1e-6,
    )


def test_replicated_train_step_on_a_distributed_batch_matches_one_device_step(mirrored):
    labels, images, _, weights = _data()
    model = _model(weights)
    # RMSprop: the replicated step builds its slot variables (the optimizer is not built).
    step = make_train_step(
        model, keras.optimizers.RMSprop(LEARNING_RATE), "clustering", GAMMA
    )
    loss = float(step(tf.constant(images), tf.constant(labels))["loss"])
    assert float(mirrored["step_loss"]) == pytest.approx(loss, rel=1e-5, abs=1e-6)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(
            mirrored[f"step_weight_after_{i}"], w, rtol=1e-4, atol=1e-6
        )


def test_one_replica_terms_equal_the_plain_loss_terms():
    labels, _, embeddings, _ = _data()
    plain = loss_terms(
        "clustering", tf.constant(labels), tf.constant(embeddings), GAMMA
    )
    replica = replica_loss_terms(
        "clustering", tf.constant(labels), tf.constant(embeddings), GAMMA
    )
    assert replica.keys() == plain.keys()
    for key in plain:
        assert float(replica[key]) == pytest.approx(float(plain[key]), rel=1e-6)


def test_default_strategy_has_one_replica():
    assert make_strategy("default").num_replicas_in_sync == 1


def test_unknown_strategy_and_mode_name_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="default, mirrored, multi_worker"):
        make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    labels, _, embeddings, _ = _data()
    with pytest.raises(ValueError, match="local, global"):
        replica_loss_terms("triplet", labels, embeddings, GAMMA, mode="both")


if __name__ == "__main__":
    _run_replicas(sys.argv[1])
