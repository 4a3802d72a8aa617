"""Tests of fl_embed.training.distributed and the one step of fl_embed.training.step with a real
MirroredStrategy over 2 logical CPUs.

Logical devices must be configured before TensorFlow initialises its runtime, which other test
modules will already have done, so the strategy runs in a subprocess (this file run as a script)
that saves its results; the tests compare them with one device on the concatenated batch, computed
here with the registry's plain `loss_terms`, and with numpy.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import configs, run_dir
from fl_embed.losses import registry
from fl_embed.losses.registry import LOSS_NAMES
from fl_embed.samplers import classes_per_batch
from fl_embed.training import loss_kwargs, make_train_step, replica_loss_terms
from fl_embed.training.distributed import (
    check_batch_split,
    check_tf_config,
    check_workers_agree,
    is_chief,
    loss_sub_batches,
    make_strategy,
    weights_digest,
)

REPLICAS = 2
GLOBAL_BATCH = 24
# Glyph training batches split across the replicas (m = 16 from C = 4 classes).
GLYPH_CONFIG = dataclasses.replace(
    configs.get_config("glyphs"), batch_size=16, seed=3, loss="clustering"
)
GLYPH_BATCHES = 3
BN_MOMENTUM = 0.9
MODES = ("global", "local")
GAMMA = 1.5
LEARNING_RATE = 0.1


def loss_terms(name, labels, embeddings, gamma):
    """The registry's terms of a loss with the arguments the step gives it (one device)."""
    return registry.loss_terms(name, labels, embeddings, **loss_kwargs(name, gamma))


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


def _bn_model(weights):
    """Dense, then batch normalisation (moving statistics start at mean 0, variance 1)."""
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(momentum=BN_MOMENTUM),
            keras.layers.UnitNormalization(),
        ]
    )
    model.layers[0].set_weights(weights)
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

    results = {
        "num_replicas": np.array(strategy.num_replicas_in_sync),
        "is_chief": np.array(is_chief(strategy)),
        "agreed": np.array(check_workers_agree(strategy, 12345, "a number")),
    }
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
    for mode in MODES:
        batches = iter(
            strategy.distribute_datasets_from_function(
                lambda context, mode=mode: run_dir.train_batches(
                    GLYPH_CONFIG,
                    0,
                    sub_batches=loss_sub_batches(mode, REPLICAS),
                    input_context=context,
                )
            )
        )
        for b in range(GLYPH_BATCHES):
            _, labels_r = next(batches)
            for r, part in enumerate(strategy.experimental_local_results(labels_r)):
                results[f"glyph_{mode}_labels_{b}_{r}"] = part.numpy()

    with strategy.scope():
        bn_model = _bn_model(weights)
        optimizer = keras.optimizers.SGD(LEARNING_RATE)
    bn_step = make_train_step(bn_model, optimizer, "triplet", GAMMA, strategy=strategy)
    bn_step(split(images), split(labels))
    for variable in bn_model.non_trainable_variables:
        copies = strategy.experimental_local_results(variable.value)
        results[f"bn_{variable.name}"] = np.stack([c.numpy() for c in copies])

    with strategy.scope():
        model = _model(weights)
        optimizer = keras.optimizers.RMSprop(LEARNING_RATE)
    step = make_train_step(model, optimizer, "clustering", GAMMA, strategy=strategy)
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
    # 3.7 min alone at a load of 8 (it took 300 s with the other test worker running): the
    # limit is for a hang, not for a slow machine.
    subprocess.run(
        [sys.executable, __file__, str(out)], check=True, env=env, timeout=900
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


def _one_device_weight_gradients(name):
    """(initial weights, gradients of the loss `name` for them) on one device, whole batch."""
    labels, images, _, weights = _data()
    model = _model(weights)
    _, grads = _one_device(
        name, labels, lambda: model(tf.constant(images)), model.trainable_variables
    )
    return weights, grads


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_global_mode_weight_gradients_sum_to_one_device_gradients(mirrored, name):
    _, grads = _one_device_weight_gradients(name)
    for i, grad in enumerate(grads):
        np.testing.assert_allclose(
            mirrored[f"{name}_global_weight_grad_{i}"], grad, rtol=1e-4, atol=1e-6
        )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_global_mode_sgd_step_matches_one_device_step(mirrored, name):
    weights, grads = _one_device_weight_gradients(name)
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


def test_mirrored_replicas_are_one_chief_that_agrees_with_itself(mirrored):
    assert bool(mirrored["is_chief"])
    assert int(mirrored["agreed"]) == 12345


@pytest.mark.parametrize("mode", MODES)
def test_glyph_batches_split_across_replicas_keep_the_class_guarantee(mirrored, mode):
    m = GLYPH_CONFIG.batch_size
    c = classes_per_batch(m, GLYPH_CONFIG.classes_per_batch_ratio)
    one_device = run_dir.train_batches(
        GLYPH_CONFIG, 0, sub_batches=loss_sub_batches(mode, REPLICAS)
    )
    for b, (_, labels) in enumerate(one_device.take(GLYPH_BATCHES)):
        parts = [mirrored[f"glyph_{mode}_labels_{b}_{r}"] for r in range(REPLICAS)]
        assert all(len(part) == m // REPLICAS for part in parts)
        # The replicas' shares, in replica order, are the batch one device would train on.
        np.testing.assert_array_equal(np.concatenate(parts), labels.numpy())
        assert len(np.unique(np.concatenate(parts))) == c
        if mode == "local":
            assert all(len(np.unique(part)) == c // REPLICAS for part in parts)


def test_batch_norm_moving_statistics_are_averaged_over_the_replicas(mirrored):
    _, images, _, (kernel, bias) = _data()
    share = GLOBAL_BATCH // REPLICAS
    features = (images @ kernel + bias).reshape(REPLICAS, share, -1)
    # Keras: moving = momentum * moving + (1 - momentum) * batch statistic (biased variance).
    mean = (1 - BN_MOMENTUM) * features.mean(axis=1).mean(axis=0)
    variance = BN_MOMENTUM + (1 - BN_MOMENTUM) * features.var(axis=1).mean(axis=0)
    for name, expected in (("moving_mean", mean), ("moving_variance", variance)):
        copies = mirrored[f"bn_{name}"]
        np.testing.assert_array_equal(copies[0], copies[1])
        np.testing.assert_allclose(copies[0], expected, rtol=1e-5, atol=1e-6)


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
    strategy = make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)
    assert check_workers_agree(strategy, 7, "a number") == 7


CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "TF_CONFIG, which is not set"),
        ("{cluster", "TF_CONFIG is not valid JSON"),
        (json.dumps({"cluster": {"ps": ["a:1"]}}), "names no workers"),
        (json.dumps({"cluster": CLUSTER}), "is not a chief or worker"),
        (
            json.dumps({"cluster": CLUSTER, "task": {"type": "ps", "index": 0}}),
            "is not a chief or worker",
        ),
        (
            json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}),
            "index 2 is not one of the 2 worker entries",
        ),
    ],
)
def test_a_missing_or_invalid_tf_config_names_the_problem(
    monkeypatch, tf_config, message
):
    with pytest.raises(ValueError, match=message):
        check_tf_config(tf_config)
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        make_strategy("multi_worker")


def test_a_valid_tf_config_is_returned():
    config = {"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}
    assert check_tf_config(json.dumps(config)) == config


@pytest.mark.parametrize(
    "batch_size, classes, replicas, mode, message",
    [
        (18, 4, 4, "global", "batch_size 18 does not split evenly across 4 replicas"),
        (32, 6, 4, "local", "classes per batch C 6 does not divide into 4"),
        (16, 4, 4, "local", "one class"),
    ],
)
def test_batches_that_do_not_split_across_the_replicas_are_refused(
    batch_size, classes, replicas, mode, message
):
    with pytest.raises(ValueError, match=message):
        check_batch_split(batch_size, classes, replicas, mode)


def test_global_mode_needs_only_the_batch_to_split():
    check_batch_split(32, 6, 4, "global")
    check_batch_split(32, 8, 4, "local")
    assert loss_sub_batches("global", 4) == 1
    assert loss_sub_batches("local", 4) == 4


def test_weights_digest_tells_apart_weights_one_bit_apart():
    _, _, _, weights = _data()
    nudged = [w.copy() for w in weights]
    nudged[1][3] = np.nextafter(nudged[1][3], np.float32(np.inf))
    assert weights_digest(_model(weights)) == weights_digest(_model(weights))
    assert weights_digest(_model(weights)) != weights_digest(_model(nudged))
    assert 0 <= weights_digest(_model(weights)) < 2**63


def test_unknown_strategy_and_mode_name_the_choices():
    with pytest.raises(ValueError, match="default, mirrored, multi_worker"):
        make_strategy("tpu")
    labels, _, embeddings, _ = _data()
    with pytest.raises(ValueError, match="local, global"):
        replica_loss_terms("triplet", labels, embeddings, GAMMA, mode="both")


if __name__ == "__main__":
    _run_replicas(sys.argv[1])
