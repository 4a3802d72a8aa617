"""Pure numpy loss-augmented inference: Algorithms 1 and 2 as written in the paper.

The fallback behind `cluster_loss(..., inference="numpy")` (`numpy_medoids`, run through
`tf.numpy_function`) and the reference the benchmark measures against. A(S) is recomputed from scratch for every
candidate, as the algorithms are written; ties follow the same rules as the TensorFlow version
(scores within RTOL tied, lowest index wins; distance ties to the lowest slot; medoids in their
own slot).
"""

import numpy as np
import tensorflow as tf
from sklearn.metrics import adjusted_mutual_info_score

from fl_embed.losses.candidates import RTOL
from fl_embed.losses.margins import check_margin_type


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def clustering_score_np(
    y_true: np.ndarray, y_pred: np.ndarray, margin_type: str
) -> float:
    """The agreement score of `margins.clustering_score`, in numpy (dense ids expected)."""
    if margin_type == "ami":
        return float(adjusted_mutual_info_score(y_true, y_pred))
    m = len(y_true)
    table = np.zeros((y_pred.max() + 1, y_true.max() + 1))
    np.add.at(table, (y_pred, y_true), 1.0)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    n_a, n_c = table.sum(1), table.sum(0)
    if margin_type == "const":
        return float((table > 0).sum() == len(n_a) == len(n_c))
    if margin_type == "ari":
        comb = lambda x: 0.5 * x * (x - 1.0)
        s_ac, s_a, s_c = comb(table).sum(), comb(n_a).sum(), comb(n_c).sum()
        expected = s_a * s_c / max(0.5 * m * (m - 1.0), 1.0)
        denom = 0.5 * (s_a + s_c) - expected
        return 1.0 if abs(denom) < 1e-12 else float((s_ac - expected) / denom)
    h_pred = max(np.log(m) - _xlogx(n_a).sum() / m, 0.0)
    h_true = max(np.log(m) - _xlogx(n_c).sum() / m, 0.0)
    mi = max(
        (_xlogx(table).sum() - _xlogx(n_a).sum() - _xlogx(n_c).sum()) / m + np.log(m),
        0.0,
    )
    flat_pred, flat_true = h_pred < 1e-6, h_true < 1e-6
    if margin_type == "vmeasure":
        h = 1.0 if flat_true else 1.0 - (h_true - mi) / h_true
        c = 1.0 if flat_pred else 1.0 - (h_pred - mi) / h_pred
        return 0.0 if h + c <= 0 else float(2 * h * c / (h + c))
    if flat_pred and flat_true:
        return 1.0
    if flat_pred or flat_true:
        return 0.0
    return float(min(mi / np.sqrt(h_pred * h_true), 1.0))


def assignment_np(d: np.ndarray, medoids: np.ndarray) -> np.ndarray:
    """g(S), eq. 7: nearest slot (lowest on ties), each medoid in its own slot."""
    medoids = np.asarray(medoids)
    asg = np.argmin(d[medoids], axis=0)  # numpy's argmin returns the first minimum
    asg[medoids] = np.arange(len(medoids))
    return asg


def augmented_score_np(d, y, medoids, gamma, margin_type) -> float:
    """A(S) = F(X, S) + gamma Delta(g(S), y*)."""
    energy = -d[medoids].min(axis=0).sum()
    return energy + gamma * (
        1.0 - clustering_score_np(y, assignment_np(d, medoids), margin_type)
    )


def _pick(scores: np.ndarray, valid: np.ndarray) -> int:
    scores = np.where(valid, scores, -np.inf)
    best = scores.max()
    return int(np.flatnonzero(valid & (scores >= best - RTOL * (abs(best) + 1.0)))[0])


def greedy_facilities_np(d, y, gamma, margin_type="nmi") -> np.ndarray:
    """Algorithm 1: i* = argmax_i A(S u {i}), K = number of classes times."""
    m = len(y)
    medoids: list[int] = []
    for _ in range(y.max() + 1):
        valid = np.ones(m, bool)
        valid[medoids] = False
        scores = np.full(m, -np.inf)
        for i in np.flatnonzero(valid):
            scores[i] = augmented_score_np(
                d, y, np.array(medoids + [i]), gamma, margin_type
            )
        medoids.append(_pick(scores, valid))
    return np.array(medoids, np.int32)


def pam_refine_np(d, y, medoids, gamma, margin_type="nmi", iterations=5) -> np.ndarray:
    """Algorithm 2: per sweep, freeze g(S); for each cluster k swap in its best member."""
    medoids = np.array(medoids, np.int32)
    for _ in range(iterations):
        frozen = assignment_np(d, medoids)
        for k in range(len(medoids)):
            members = np.flatnonzero(frozen == k)
            scores = np.empty(len(members))
            for n, j in enumerate(members):
                trial = medoids.copy()
                trial[k] = j
                margin = 1.0 - clustering_score_np(
                    y, assignment_np(d, trial), margin_type
                )
                scores[n] = -d[j, members].sum() + gamma * margin
            medoids[k] = members[_pick(scores, np.ones(len(members), bool))]
    return medoids


def loss_augmented_inference_np(
    distances,
    labels,
    margin_multiplier,
    enable_pam_finetuning=True,
    margin_type="nmi",
    pam_iterations=5,
) -> np.ndarray:
    """Algorithm 1 then (optionally) Algorithm 2 on a distance matrix; labels dense 0..C-1.

    Args:
      distances: float [m, m].
      labels: int [m], any integer class ids.
      margin_multiplier: gamma.

    Returns:
      int32 [C], medoids in slot order.
    """
    check_margin_type(margin_type)
    d = np.asarray(distances, np.float64)
    y = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    gamma = float(margin_multiplier)
    medoids = greedy_facilities_np(d, y, gamma, margin_type)
    if enable_pam_finetuning:
        medoids = pam_refine_np(d, y, medoids, gamma, margin_type, int(pam_iterations))
    return medoids.astype(np.int32)


def numpy_medoids(distances, labels, gamma, enable_pam, margin_type, iterations):
    """`loss_augmented_inference_np` as a TensorFlow op: int32 [K], medoids in slot order."""
    medoids = tf.numpy_function(
        lambda d, y, g: loss_augmented_inference_np(
            d, y, g, enable_pam, margin_type, iterations
        ),
        [distances, labels, gamma],
        tf.int32,
        stateful=False,
    )
    return tf.ensure_shape(medoids, [None])
