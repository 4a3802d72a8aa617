"""Raw-pixel floor of the glyph (or Hangul) test split: the evaluation protocol on L2-normalised pixels.

Usage: python -m data_prep.glyphs.baseline [--dataset=hangul] [--seed=0]
"""

import importlib

import numpy as np
from absl import app, flags, logging

KS = (1, 2, 4, 8)
# Shipped sets with a raw-pixel floor (`data_prep.SHIPPED_SETS`), and their Recall@K cut-offs for
# the command line (the trainer passes its config's).
DATASET_KS = {"glyphs": KS, "hangul": (1, 10, 100)}
DATASETS = tuple(DATASET_KS)


def pixel_embeddings(images: np.ndarray) -> np.ndarray:
    """Flattened pixels scaled to unit L2 norm, the embedding a model must beat.

    Args:
        images: uint8 [n, H, W, 1].

    Returns:
        float32 [n, H * W]; an all-background image stays zero.
    """
    flat = images.reshape(images.shape[0], -1).astype(np.float32)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def raw_pixel_baseline(
    split: str = "test", seed: int = 0, dataset: str = "glyphs", ks=KS
) -> dict[str, float]:
    """NMI (k-means, k = classes of the split) and Recall@K of raw pixels of a split.

    Args:
        split: "train" or "test".
        seed: k-means seed.
        dataset: "glyphs" or "hangul" (a package of `data_prep` with `load_arrays`).
        ks: the Recall@K cut-offs.

    Returns:
        `fl_embed.evaluation.evaluate`'s dict ("nmi", "recall@K", "map@r", "r_precision").

    Raises:
        ValueError: for an unknown split or data set.
    """
    from fl_embed.evaluation import evaluate

    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}: use one of {DATASETS}")
    shipped = importlib.import_module(f"data_prep.{dataset}")
    images, labels = shipped.load_arrays(split)
    return evaluate(pixel_embeddings(images), labels, ks=ks, seed=seed)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so importing the module
    next to other command lines does not clash on flag names)."""
    flags.DEFINE_enum("split", "test", ["train", "test"], "Split to evaluate.")
    flags.DEFINE_integer("seed", 0, "k-means seed.")
    flags.DEFINE_enum("dataset", "glyphs", list(DATASETS), "Shipped data set.")


def main(argv: list[str]) -> None:
    """Prints the raw-pixel metrics as a Markdown row."""
    del argv
    ks = DATASET_KS[FLAGS.dataset]
    metrics = raw_pixel_baseline(FLAGS.split, FLAGS.seed, FLAGS.dataset, ks)
    logging.info(
        "raw-pixel baseline on %s/%s (seed %d): %s",
        FLAGS.dataset,
        FLAGS.split,
        FLAGS.seed,
        metrics,
    )
    header = ["NMI"] + [f"R@{k}" for k in ks]
    values = [metrics["nmi"]] + [metrics[f"recall@{k}"] for k in ks]
    print("| embedding | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    print("| raw pixels | " + " | ".join(f"{100 * v:.2f}" for v in values) + " |")


if __name__ == "__main__":
    define_flags()
    app.run(main)
