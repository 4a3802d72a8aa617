"""Random batches shared by the tests of the inference."""

import numpy as np

from tests.losses import reference as ref


def random_batch(rng, m, num_classes, dim=3):
    y = ref.dense(
        np.concatenate(
            [np.arange(num_classes), rng.integers(0, num_classes, m - num_classes)]
        )
    )
    x = rng.normal(size=(m, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, y


def tie_heavy_batch(rng, m, num_classes):
    """Points drawn from six distinct unit vectors (exact duplicates, many equal distances),
    labels with singletons."""
    atoms = rng.normal(size=(6, 4)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    x = atoms[rng.integers(0, 6, m)]
    y = ref.dense(
        np.r_[np.arange(num_classes), rng.integers(0, num_classes, m - num_classes)]
    )
    return x, y


def tf_distances(x):
    return ref.distances(x).astype(np.float32)
