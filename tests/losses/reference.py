"""Independent references for the clustering loss, written straight from the paper.

Nothing here is shared with `fl_embed`: margins come from scikit-learn, A(S) is recomputed from
scratch for every candidate exactly as Algorithms 1 and 2 are written, and `exact_max` tries every
subset. Slow on purpose; for tiny batches only.
"""

import itertools

import numpy as np
from sklearn import metrics

RTOL = 1e-5


def distances(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))


def dense(labels) -> np.ndarray:
    _, inv = np.unique(np.asarray(labels).reshape(-1), return_inverse=True)
    return inv


def score(y_true, y_pred, margin_type: str) -> float:
    if margin_type == "nmi":
        if len(set(y_true)) == 1 and len(set(y_pred)) == 1:
            return 1.0
        return metrics.normalized_mutual_info_score(
            y_true, y_pred, average_method="geometric"
        )
    if margin_type == "ami":
        return metrics.adjusted_mutual_info_score(y_true, y_pred)
    if margin_type == "ari":
        return metrics.adjusted_rand_score(y_true, y_pred)
    if margin_type == "vmeasure":
        return metrics.v_measure_score(y_true, y_pred)
    if margin_type == "const":
        pairs = set(zip(y_true, y_pred))
        return float(len(pairs) == len(set(y_true)) == len(set(y_pred)))
    raise ValueError(margin_type)


def assign(d: np.ndarray, medoids) -> np.ndarray:
    """g(S), eq. 7: nearest medoid, lowest slot on ties, medoids in their own slot."""
    medoids = list(medoids)
    out = np.empty(d.shape[0], int)
    for i in range(d.shape[0]):
        if i in medoids:
            out[i] = medoids.index(i)
        else:
            out[i] = int(np.argmin([d[j, i] for j in medoids]))
    return out


def energy(d, medoids) -> float:
    return -sum(min(d[j, i] for j in medoids) for i in range(d.shape[0]))


def augmented(d, y, medoids, gamma, margin_type) -> float:
    """A(S) = F(X, S) + gamma (1 - score(g(S), y))."""
    return energy(d, medoids) + gamma * (
        1.0 - score(y, assign(d, medoids), margin_type)
    )


def oracle(d, y) -> float:
    total = 0.0
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        total += max(-sum(d[i, j] for i in members) for j in members)
    return total


def pick(scores: dict) -> int:
    best = max(scores.values())
    tol = RTOL * (abs(best) + 1.0)
    return min(j for j, s in scores.items() if s >= best - tol)


def greedy(d, y, gamma, margin_type="nmi") -> list:
    """Algorithm 1."""
    medoids: list = []
    for _ in range(len(np.unique(y))):
        scores = {
            i: augmented(d, y, medoids + [i], gamma, margin_type)
            for i in range(len(y))
            if i not in medoids
        }
        medoids.append(pick(scores))
    return medoids


def pam(d, y, medoids, gamma, margin_type="nmi", iterations=5, trace=None) -> list:
    """Algorithm 2; `trace`, if a list, receives A(S) after every swap."""
    medoids = list(medoids)
    for _ in range(iterations):
        frozen = assign(d, medoids)
        for k in range(len(medoids)):
            members = np.flatnonzero(frozen == k)
            scores = {}
            for j in members:
                trial = medoids.copy()
                trial[k] = int(j)
                fac = -sum(d[i, j] for i in members)
                scores[int(j)] = fac + gamma * (
                    1.0 - score(y, assign(d, trial), margin_type)
                )
            medoids[k] = pick(scores)
            if trace is not None:
                trace.append(augmented(d, y, medoids, gamma, margin_type))
    return medoids


def loss(
    d, y, gamma, margin_type="nmi", enable_pam=True, iterations=5
) -> tuple[float, list]:
    medoids = greedy(d, y, gamma, margin_type)
    if enable_pam:
        medoids = pam(d, y, medoids, gamma, margin_type, iterations)
    value = augmented(d, y, medoids, gamma, margin_type) - oracle(d, y)
    return max(value, 0.0), medoids


def exact_max(d, y, gamma, margin_type="nmi") -> float:
    """max over all |S| = |Y| subsets of A(S), by enumeration."""
    k = len(np.unique(y))
    return max(
        augmented(d, y, list(s), gamma, margin_type)
        for s in itertools.combinations(range(len(y)), k)
    )
