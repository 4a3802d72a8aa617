"""Retrieval on test images scaled about their centre: the raw-pixel floor and trained runs (issue 17).

    python -m experiments.scale_robustness --dataset=hangul --runs=runs/hangul

Each scale (default 0.75 .. 1.25) resamples every test image of the shipped set (bilinear, as the
training augmentation does), then evaluates raw pixels and each run's embedding on it. A row that
falls off away from 1.0 says the training augmentation should span that scale range.
"""

import importlib

import numpy as np
import tensorflow as tf
from absl import app, flags

from data_prep.glyphs import augment, baseline
from experiments import configs, run_dir
from fl_embed.evaluation import evaluate

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "hangul", list(baseline.DATASETS), "Shipped data set.")
flags.DEFINE_list(
    "runs", [], "Run directories (experiments.train --output_dir) to evaluate."
)
flags.DEFINE_list(
    "scales",
    ["0.75", "0.875", "1.0", "1.125", "1.25"],
    "Scale factors of the test images.",
)


def rescale(images: np.ndarray, factor: float) -> np.ndarray:
    """Scales uint8 [n, H, W, 1] images about their centre by `factor`, keeping their size.

    Args:
        images: uint8 [n, H, W, 1], ink high.
        factor: > 0; above 1 enlarges (ink may leave the canvas), below 1 shrinks.

    Returns:
        uint8 [n, H, W, 1].
    """
    if factor <= 0:
        raise ValueError(f"scale factor must be > 0, got {factor}")
    warped = augment.warp(tf.cast(images, tf.float32), 0.0, factor, tf.zeros([2]))
    return tf.cast(tf.round(tf.clip_by_value(warped, 0.0, 255.0)), tf.uint8).numpy()


def main(argv):
    del argv
    ks = configs.get_config(FLAGS.dataset).ks
    images, labels = importlib.import_module(f"data_prep.{FLAGS.dataset}").load_arrays(
        "test"
    )
    embedders = {"raw pixels": baseline.pixel_embeddings}
    for path in FLAGS.runs:
        config, model, _ = run_dir.load_run(path)
        embed = run_dir.embed_fn(model, config.backbone)
        embedders[f"{config.loss} ({path})"] = lambda x, embed=embed: np.concatenate(
            [embed(tf.constant(x[i : i + 512])).numpy() for i in range(0, len(x), 512)]
        )
    columns = [f"R@{k}" for k in ks] + ["NMI", "MAP@R"]
    print(f"{FLAGS.dataset} test split, images scaled about their centre")
    print("| embedding | scale | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for name, embed in embedders.items():
        for scale in (float(s) for s in FLAGS.scales):
            embeddings = embed(rescale(images, scale))
            metrics = evaluate(embeddings, labels, ks=ks, seed=0)
            values = [metrics[f"recall@{k}"] for k in ks] + [
                metrics["nmi"],
                metrics["map@r"],
            ]
            print(
                f"| {name} | {scale:g} | "
                + " | ".join(f"{100 * v:.2f}" for v in values)
                + " |"
            )


if __name__ == "__main__":
    app.run(main)
