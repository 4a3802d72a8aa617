"""Independent numpy readings of the baselines (paper eqs. 1-3), written as loops in float64,
and the small helpers their tests share."""

import numpy as np
import tensorflow as tf
from scipy.special import logsumexp


def reference_triplet_semihard(
    labels: np.ndarray, x: np.ndarray, margin: float
) -> float:
    """Paper section 2.1 written as loops, in float64."""
    m = len(labels)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    hinges = []
    for i in range(m):
        negatives = [k for k in range(m) if labels[k] != labels[i]]
        if not negatives:
            continue
        for j in range(m):
            if j == i or labels[j] != labels[i]:
                continue
            semihard = [k for k in negatives if d2[i, k] > d2[i, j]]
            if semihard:
                k_star = min(semihard, key=lambda k: d2[i, k])
            else:
                k_star = max(negatives, key=lambda k: d2[i, k])
            hinges.append(max(d2[i, j] + margin - d2[i, k_star], 0.0))
    return float(np.mean(hinges)) if hinges else 0.0


def reference_lifted_struct(labels: np.ndarray, x: np.ndarray, margin: float) -> float:
    """Paper eq. 2 written as loops over positive pairs, in float64."""
    m = len(labels)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    terms = []
    for i in range(m):
        for j in range(m):
            if j == i or labels[j] != labels[i]:
                continue
            exponents = [
                margin - dist[i, k] for k in range(m) if labels[k] != labels[i]
            ]
            exponents += [
                margin - dist[j, k] for k in range(m) if labels[k] != labels[j]
            ]
            if not exponents:
                continue
            objective = logsumexp(exponents) + dist[i, j]
            terms.append(max(objective, 0.0) ** 2)
    return float(np.sum(terms) / (2 * len(terms))) if terms else 0.0


def reference_npairs(labels: np.ndarray, x: np.ndarray, reg_lambda: float) -> float:
    """Paper eq. 3 written as loops over ordered positive pairs, in float64."""
    m = len(labels)
    sim = x @ x.T
    terms = []
    for i in range(m):
        negatives = [sim[i, k] for k in range(m) if labels[k] != labels[i]]
        if not negatives:
            continue
        for j in range(m):
            if j == i or labels[j] != labels[i]:
                continue
            # -log(exp(S_ij) / (exp(S_ij) + sum_k exp(S_ik))), via logsumexp so large S do not overflow.
            terms.append(logsumexp([sim[i, j], *negatives]) - sim[i, j])
    if not terms:
        return 0.0
    return float(np.mean(terms) + reg_lambda / m * np.linalg.norm(x, axis=1).sum())


def numeric_gradient(fn, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return grad


def autodiff(loss_fn, labels, x: np.ndarray, **kwargs):
    embeddings = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, embeddings, **kwargs)
    return loss.numpy(), tape.gradient(loss, embeddings).numpy()


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# Registry name -> (reference, the knob it takes, the loss's default for that knob).
REFERENCES = {
    "triplet": (reference_triplet_semihard, "margin", 1.0),
    "lifted": (reference_lifted_struct, "margin", 1.0),
    "npairs": (reference_npairs, "reg_lambda", 0.002),
}
