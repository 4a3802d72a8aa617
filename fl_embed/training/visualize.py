"""t-SNE pictures of test embeddings (the paper's Figures 4-6)."""

import numpy as np
from sklearn.manifold import TSNE


def tsne_points(
    embeddings: np.ndarray, labels: np.ndarray, max_classes: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D Barnes-Hut t-SNE of the items of at most `max_classes` classes (chosen at random).

    Args:
      embeddings: float [n, d].
      labels: int [n].
      max_classes: classes to keep, so the picture stays readable.
      seed: picks the classes and seeds t-SNE.

    Returns:
      (points float [k, 2], their labels int [k]).
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    kept = rng.choice(classes, size=min(max_classes, classes.size), replace=False)
    mask = np.isin(labels, kept)
    tsne = TSNE(n_components=2, init="pca", perplexity=30.0, random_state=seed)
    return tsne.fit_transform(embeddings[mask]), labels[mask]


def save_tsne_grid(panels: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> None:
    """Writes one scatter panel per name (points coloured by class) as a PNG.

    Args:
      panels: title -> (points [k, 2], labels [k]) from `tsne_points`.
      path: output .png.

    Raises:
      ImportError: matplotlib is not installed (`pip install matplotlib`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(6 * columns, 6 * rows), squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, (points, labels)) in zip(axes.flat, panels.items()):
        codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
        ax.scatter(points[:, 0], points[:, 1], c=codes, cmap="tab20", s=4)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
