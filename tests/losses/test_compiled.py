"""How the inference runs (`compiled.py`): slot counts, XLA, unknown batch sizes, the numpy backend."""

import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import cluster_loss, loss_augmented_inference
from fl_embed.losses.greedy import greedy_facilities
from fl_embed.losses.pam import pam_refine
from fl_embed.losses.registry import loss_terms
from tests.losses.batches import random_batch as _batch
from tests.losses.batches import tf_distances as _tf_distances


def test_numpy_fallback_gives_identical_medoids_to_the_tensorflow_inference():
    rng = np.random.default_rng(4)
    for m, num_classes in [(16, 4), (16, 12), (24, 6)]:
        x, y = _batch(rng, m, num_classes, dim=8)
        xla = loss_augmented_inference(y, x, 1.0).numpy()
        numpy = loss_augmented_inference(y, x, 1.0, inference="numpy").numpy()
        np.testing.assert_array_equal(xla, numpy)


@pytest.mark.parametrize("m, num_classes", [(128, 20), (128, 64), (128, 65), (160, 30)])
def test_inference_in_fewer_slots_than_points_gives_the_same_medoids(m, num_classes):
    # K classes of a batch of m run in the fewest of m, m/2, m/4, m/8 slots (at least 64) that
    # hold them: eagerly, chosen from the concrete labels; in a tf.function, by a switch at run
    # time. Both must give what the numpy reference gives.
    rng = np.random.default_rng(13)
    x, y = _batch(rng, m, num_classes, dim=4)
    numpy = loss_augmented_inference(y, x, 1.0, inference="numpy").numpy()
    eager = loss_augmented_inference(y, x, 1.0).numpy()
    in_graph = tf.function(lambda e, l: loss_augmented_inference(l, e, 1.0))
    graph = in_graph(tf.constant(x), tf.constant(y)).numpy()
    np.testing.assert_array_equal(eager, numpy)
    np.testing.assert_array_equal(graph, numpy)
    for n in (num_classes, m):
        d, labels = tf.constant(_tf_distances(x)), tf.constant(y, tf.int32)
        direct = pam_refine(
            d, labels, greedy_facilities(d, labels, 1.0, num_slots=n), 1.0
        )
        direct = direct.numpy()
        np.testing.assert_array_equal(direct[:num_classes], numpy)
        assert direct.shape == (n,) and np.all(direct[num_classes:] == m)


def test_inference_with_a_batch_size_unknown_when_traced_picks_its_slots_at_run_time():
    rng = np.random.default_rng(14)
    spec = [tf.TensorSpec([None, 4]), tf.TensorSpec([None], tf.int32)]
    in_graph = tf.function(
        lambda e, l: loss_augmented_inference(l, e, 1.0), input_signature=spec
    )
    for m, num_classes in [(128, 20), (96, 70)]:
        x, y = _batch(rng, m, num_classes, dim=4)
        numpy = loss_augmented_inference(y, x, 1.0, inference="numpy").numpy()
        got = in_graph(tf.constant(x), tf.constant(y, tf.int32)).numpy()
        np.testing.assert_array_equal(got, numpy)


def _unit(rng, m, dim):
    x = rng.normal(size=(m, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _balanced(m, num_classes):
    return np.arange(m) % num_classes


def test_xla_solver_in_a_plain_tf_function_is_traced_once_per_batch_size():
    from fl_embed.losses import cluster as cluster_module
    from fl_embed.losses import compiled

    rng = np.random.default_rng(7)
    y = _balanced(24, 6)
    gamma = tf.Variable(1.0)
    step = tf.function(lambda e: cluster_loss(y, e, gamma))
    for _ in range(3):
        step(tf.constant(_unit(rng, 24, 8)))
        gamma.assign(gamma * 0.9)
    assert step.experimental_get_tracing_count() == 1
    # The jit solver itself: new values of the same shapes reuse its trace (and XLA program).
    options = compiled.InferenceOptions("nmi", True, 5, "xla")
    solver = compiled._compiled(cluster_module._solve, options, 1, jit=True)
    dense = tf.constant(y, tf.int32)  # class c first appears at index c: already dense
    before = solver.experimental_get_tracing_count()
    for g in (0.5, 2.0, 3.0):
        solver(tf.constant(_unit(rng, 24, 8)), dense, tf.constant(g))
    assert solver.experimental_get_tracing_count() - before <= 1


def test_inference_slots_are_the_fewest_of_m_over_1_2_4_8_that_hold_the_classes():
    from fl_embed.losses.cluster import inference_slots

    assert [inference_slots(512, k) for k in (1, 64, 65, 128, 129, 256, 257, 512)] == [
        64,
        64,
        128,
        128,
        256,
        256,
        512,
        512,
    ]
    assert [inference_slots(128, k) for k in (1, 64, 65)] == [64, 64, 128]
    assert inference_slots(200, 26) == 64 and inference_slots(200, 65) == 100
    assert inference_slots(48, 3) == 48  # small batches always run in m slots
    with pytest.raises(ValueError, match="num_classes"):
        inference_slots(128, 129)


@pytest.mark.parametrize("loss", ["cluster_loss", "loss_terms"])
def test_a_jit_compiled_step_takes_the_labels_as_an_input_not_as_a_constant(loss):
    # A slice of S to its K used slots inside the step made the labels a compile-time constant
    # (its size must be known): XLA then compiled the step again for every label vector. The
    # trainer's step logs `loss_terms`, which must not slice either.
    def value(y, e):
        if loss == "cluster_loss":
            return cluster_loss(y, e, 1.0)
        return loss_terms("clustering", y, e, margin_multiplier=1.0)["loss"]

    @tf.function(jit_compile=True)
    def step(e, y):
        with tf.GradientTape() as tape:
            tape.watch(e)
            loss = value(y, e)
        return loss, tape.gradient(loss, e)

    x = tf.constant(_unit(np.random.default_rng(15), 16, 4))
    y = tf.constant(_balanced(16, 4), tf.int32)
    hlo = step.experimental_get_compiler_ir(x, y)(stage="hlo")
    entry = next(line for line in hlo.splitlines() if line.startswith("ENTRY"))
    assert "s32[16]" in entry.split("->")[0], entry


def test_no_loss_of_the_registry_is_rewritten_by_autograph(monkeypatch):
    """The losses use explicit tf.while_loop / tf.cond: AutoGraph's rewrite of their source was
    half the first call's time (BUILD_NOTES), so a user's tf.function must call them as written."""
    from tensorflow.python.autograph.impl import api
    from tensorflow.python.autograph.pyct import cache

    from fl_embed.losses.registry import LOSSES

    converted = []
    real_convert = api._convert_actual

    def recording_convert(entity, program_ctx):
        converted.append(f"{entity.__module__}.{entity.__qualname__}")
        return real_convert(entity, program_ctx)

    monkeypatch.setattr(api, "_convert_actual", recording_convert)
    # A fresh cache, so a conversion made earlier in this process is made (and seen) again.
    monkeypatch.setattr(api._TRANSPILER, "_cache", cache.CodeObjectCache())
    labels = tf.constant([0, 0, 1, 1, 2, 2, 3, 3])
    x = tf.math.l2_normalize(tf.random.stateless_normal([8, 4], seed=[1, 2]), axis=1)

    def step(x):
        gamma = {"clustering": {"margin_multiplier": 1.0}}
        values = [loss_terms(n, labels, x, **gamma.get(n, {}))["loss"] for n in LOSSES]
        values.append(cluster_loss(labels, x, 1.0, inference="graph"))
        values.append(loss_augmented_inference(labels, x, 1.0)[0])
        return values

    # The `step` of this test is converted (it is the user's code); nothing of fl_embed is.
    tf.function(step)(x)
    tf.function(step, jit_compile=True)(x)
    assert [c for c in converted if c.startswith("fl_embed")] == []
    assert any(c.endswith("step") for c in converted)


def test_padded_medoids_of_the_loss_terms_are_the_k_medoids_then_m():
    from fl_embed.losses import cluster_loss_terms

    x = tf.constant(_unit(np.random.default_rng(3), 16, 4))
    y = tf.constant(_balanced(16, 4), tf.int32)
    sliced = cluster_loss_terms(y, x, 1.0).medoids.numpy().tolist()
    padded = cluster_loss_terms(y, x, 1.0, pad_medoids=True).medoids.numpy().tolist()
    assert len(sliced) == 4
    assert padded == sliced + [16] * 12
