"""cluster_loss (eq. 6), its subgradient (eqs. 11-13), Keras use and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fl_embed.losses import (
    ClusteringLoss,
    cluster_loss,
    cluster_loss_terms,
    loss_augmented_inference,
)
from tests.losses import reference as ref


def _unit(rng, m, dim):
    x = rng.normal(size=(m, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _balanced(m, num_classes):
    return np.arange(m) % num_classes


@pytest.mark.parametrize("margin_type", ["nmi", "ari"])
def test_loss_value_matches_the_reference(margin_type):
    rng = np.random.default_rng(0)
    for gamma in (0.0, 1.0, 10.0):
        x, y = _unit(rng, 9, 3), _balanced(9, 4)
        expected, _ = ref.loss(ref.distances(x), y, gamma, margin_type)
        assert float(
            cluster_loss(y, x, gamma, margin_type=margin_type)
        ) == pytest.approx(expected, abs=1e-4)


def test_numpy_inference_gives_the_same_loss():
    rng = np.random.default_rng(1)
    x, y = _unit(rng, 16, 8), _balanced(16, 4)
    assert float(cluster_loss(y, x, 1.0, inference="numpy")) == pytest.approx(
        float(cluster_loss(y, x, 1.0))
    )


def _fixed_objective(x, medoids, y, gamma, margin):
    """F(X, S) + gamma Delta - F~(X, y*) with S, the oracle medoids and Delta held fixed (numpy)."""
    d = ref.distances(x)
    return ref.energy(d, medoids) + gamma * margin - ref.oracle(d, y)


def test_gradient_equals_finite_differences_with_s_fixed():
    rng = np.random.default_rng(2)
    x, y = _unit(rng, 10, 4).astype(np.float64), _balanced(10, 3)
    gamma = 5.0  # large margin keeps the hinge active
    terms = cluster_loss_terms(y, tf.constant(x, tf.float32), gamma)
    assert float(terms.loss) > 0
    medoids = terms.medoids.numpy().tolist()
    margin = float(terms.margin)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = cluster_loss(y, xt, gamma)
    grad = tape.gradient(loss, xt).numpy()
    eps = 1e-5
    numeric = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            up, down = x.copy(), x.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (
                _fixed_objective(up, medoids, y, gamma, margin)
                - _fixed_objective(down, medoids, y, gamma, margin)
            ) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=2e-3)


def test_gradient_equals_eqs_12_and_13_written_out():
    rng = np.random.default_rng(3)
    x, y = _unit(rng, 12, 5), _balanced(12, 4)
    gamma = 5.0
    terms = cluster_loss_terms(y, x, gamma)
    d = ref.distances(x)
    medoids = terms.medoids.numpy().tolist()
    nearest = [medoids[k] for k in ref.assign(d, medoids)]
    oracle = {}
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        oracle[c] = members[np.argmin([d[members, j].sum() for j in members])]

    def grad_of_sum(partner):  # d/dX of -sum_i ||x_i - x_partner(i)||, eq. 12
        g = np.zeros_like(x, np.float64)
        for i, j in enumerate(partner):
            diff = x[i] - x[j]
            norm = np.linalg.norm(diff)
            if norm > 0:
                g[i] -= diff / norm
                g[j] += diff / norm
        return g

    expected = grad_of_sum(nearest) - grad_of_sum(
        [oracle[c] for c in y]
    )  # eq. 11 with eq. 13
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = cluster_loss(y, xt, gamma)
    np.testing.assert_allclose(tape.gradient(loss, xt).numpy(), expected, atol=1e-5)


def test_gradient_is_zero_when_the_hinge_is_inactive_and_never_nan_for_duplicates():
    x = np.array(
        [[1, 0], [1, 0], [0, 1], [0, 1]], np.float32
    )  # perfectly clustered duplicates
    y = np.array([0, 0, 1, 1])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = cluster_loss(y, xt, 0.0)
    grad = tape.gradient(loss, xt).numpy()
    assert float(loss) == 0.0
    assert np.all(grad == 0.0)


@pytest.mark.parametrize(
    "labels, dim",
    [
        (np.zeros(5, int), 3),  # one class
        (np.arange(5), 3),  # every point its own class
        (np.array([3, 17, 42, 3, 17]), 3),  # labels that are not 0..K-1
        (np.array([0, 1, 0, 1, 2], np.int64), 3),  # int64 labels
        (np.array([0, 0, 1, 1, 1]), 1),  # d = 1
    ],
)
def test_edge_cases_are_finite_and_match_the_reference(labels, dim):
    rng = np.random.default_rng(4)
    x = _unit(rng, len(labels), dim)
    expected, _ = ref.loss(ref.distances(x), ref.dense(labels), 1.0)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = cluster_loss(labels, xt, 1.0)
    assert float(loss) == pytest.approx(expected, abs=1e-4)
    assert np.all(np.isfinite(tape.gradient(loss, xt).numpy()))


def test_two_points_and_duplicate_embeddings():
    x = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    for labels in ([0, 1], [5, 5]):
        assert np.isfinite(float(cluster_loss(np.array(labels), x, 1.0)))
    x = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)
    y = np.array([0, 1, 1, 2])
    expected, medoids = ref.loss(ref.distances(x), y, 1.0)
    assert loss_augmented_inference(y, x, 1.0).numpy().tolist() == medoids
    assert float(cluster_loss(y, x, 1.0)) == pytest.approx(expected, abs=1e-5)


def test_labels_of_shape_m_by_1_are_accepted():
    rng = np.random.default_rng(5)
    x, y = _unit(rng, 8, 4), _balanced(8, 2)
    assert float(cluster_loss(y[:, None], x, 1.0)) == pytest.approx(
        float(cluster_loss(y, x, 1.0))
    )


@pytest.mark.parametrize(
    "labels, embeddings, kwargs, match",
    [
        ([0, 1], [[np.nan, 0.0], [1.0, 0.0]], {}, "NaN or Inf"),
        ([0, 1], [[np.inf, 0.0], [1.0, 0.0]], {}, "NaN or Inf"),
        ([0, 1, 2], [[1.0, 0.0], [0.0, 1.0]], {}, "batch size"),
        ([0, 1], [1.0, 0.0], {}, "shape \\[batch, dim\\]"),
        ([[0, 1]], [[1.0, 0.0], [0.0, 1.0]], {}, "labels must have shape"),
        (
            [0, 1],
            [[1.0, 0.0], [0.0, 1.0]],
            {"margin_type": "nmj"},
            "Unknown margin_type",
        ),
        (
            [0, 1],
            [[1.0, 0.0], [0.0, 1.0]],
            {"margin_multiplier": -1.0},
            "margin_multiplier",
        ),
        ([0, 1], [[1.0, 0.0], [0.0, 1.0]], {"inference": "gpu"}, "Unknown inference"),
        ([0, 1], [[1.0, 0.0], [0.0, 1.0]], {"pam_iterations": -2}, "pam_iterations"),
    ],
)
def test_bad_input_is_a_clear_error(labels, embeddings, kwargs, match):
    args = {"margin_multiplier": 1.0, **kwargs}
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=match):
        cluster_loss(np.array(labels), np.array(embeddings, np.float32), **args)


def test_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="empty batch"):
        cluster_loss(np.zeros([0], int), np.zeros([0, 4], np.float32), 1.0)


def test_negative_margin_multiplier_tensor_is_caught_at_run_time():
    with pytest.raises(tf.errors.InvalidArgumentError, match="margin_multiplier"):
        cluster_loss(np.array([0, 1]), np.eye(2, dtype=np.float32), tf.constant(-1.0))


def test_runs_inside_jit_compiled_and_plain_tf_function_with_a_variable_gamma():
    rng = np.random.default_rng(6)
    x, y = _unit(rng, 16, 8), _balanced(16, 4)
    gamma = tf.Variable(1.0)
    eager = float(cluster_loss(y, x, gamma))

    def step(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            loss = cluster_loss(y, e, gamma)
        return loss, tape.gradient(loss, e)

    for jit in (True, False):
        loss, grad = tf.function(step, jit_compile=jit)(tf.constant(x))
        assert float(loss) == pytest.approx(eager, abs=1e-5)
        assert np.all(np.isfinite(grad.numpy()))


def test_mixed_precision_embeddings_are_computed_in_float32():
    rng = np.random.default_rng(7)
    x, y = _unit(rng, 16, 8), _balanced(16, 4)
    x16 = tf.constant(x, tf.float16)
    with tf.GradientTape() as tape:
        tape.watch(x16)
        loss = cluster_loss(y, x16, 1.0)
    assert loss.dtype == tf.float32
    assert tape.gradient(loss, x16).dtype == tf.float16
    assert float(loss) == pytest.approx(
        float(cluster_loss(y, x16.numpy().astype(np.float32), 1.0)), abs=1e-5
    )


def test_keras_loss_trains_in_model_fit_and_round_trips_its_config():
    rng = np.random.default_rng(8)
    centers = rng.normal(size=(4, 6))
    y = np.repeat(np.arange(4), 8)
    x = (centers[y] + rng.normal(scale=0.5, size=(32, 6))).astype(np.float32)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.UnitNormalization()]
    )
    loss = ClusteringLoss(margin_multiplier=1.0, margin_type="nmi")
    model.compile(optimizer=keras.optimizers.RMSprop(1e-2), loss=loss, jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, ClusteringLoss)
    assert restored.get_config() == loss.get_config()
    emb = model.predict(x, verbose=0)
    assert float(restored(y, emb)) == pytest.approx(float(loss(y, emb)))
