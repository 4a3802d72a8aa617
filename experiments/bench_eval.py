"""Benchmark of the evaluation protocol at Stanford Online Products size (paper section 4).

    python -m experiments.bench_eval

Synthetic embeddings of SOP's test split (60,502 x 64, 11,316 classes of 2-12 items), then the
retrieval metrics (Recall@1/10/100/1000, MAP@R, R-precision) by both paths of `evaluate` in
the same run: "knn", the previous path (the K_max = 1000 nearest neighbours of every query from
`exact_knn`), and "ranks", the current default (`ranked_matches`: one screened pass, no
neighbour list), with a block per core and, as before, one block at a time. Then k-means + NMI and `evaluate()` end to end. For each stage: wall time and
the peak resident memory of the process during the stage (Linux VmHWM, reset before each stage
through /proc/self/clear_refs, so it includes what the process already held: TensorFlow,
which `import fl_embed` loads, and the data). The benchmark fails if the two paths' metrics
differ. Target (issue 16): under 30 s and 4 GiB end to end on a 2-core machine.
"""

import time

import numpy as np
from absl import app, flags, logging

from fl_embed.evaluation import (
    PRODUCTS_KS,
    evaluate,
    exact_knn,
    kmeans_clusters,
    map_at_r,
    neighbour_matches,
    nmi,
    r_precision,
    recall_at_k,
    same_class_counts,
)
from fl_embed.evaluation.ranking import ranked_matches

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_items", 60502, "Test items (SOP: 60,502).")
flags.DEFINE_integer("num_classes", 11316, "Test classes (SOP: 11,316).")
flags.DEFINE_integer("dim", 64, "Embedding dimension (paper: 64).")
flags.DEFINE_list(
    "ks", [str(k) for k in PRODUCTS_KS], "Recall@K cut-offs (SOP: 1,10,100,1000)."
)
flags.DEFINE_float(
    "spread", 1.0, "Within-class noise relative to the spread of class centres."
)
flags.DEFINE_integer("seed", 0, "Seed of the synthetic data and of k-means.")
flags.DEFINE_bool(
    "end_to_end", True, "Also time evaluate() as a whole after the separate stages."
)
flags.DEFINE_list(
    "knn_backends",
    ["numpy"],
    "Backends of the previous path's exact_knn to time (numpy, faiss); empty: skip it.",
)
flags.register_validator(
    "num_classes", lambda c: c >= 1, message="--num_classes must be positive."
)


def synthetic_embeddings(
    num_items: int, num_classes: int, dim: int, spread: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised Gaussian clusters; every class gets at least two items, like SOP's."""
    if num_items < 2 * num_classes:
        raise app.UsageError("--num_items must be at least twice --num_classes.")
    rng = np.random.default_rng(seed)
    labels = np.concatenate(
        [
            np.repeat(np.arange(num_classes), 2),
            rng.integers(0, num_classes, num_items - 2 * num_classes),
        ]
    )
    centres = rng.normal(size=(num_classes, dim)).astype(np.float32)
    x = centres[labels] + spread * rng.normal(size=(num_items, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


def _peak_rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def timed(rows: list, stage: str, fn, *args, **kwargs):
    _reset_peak_rss()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    rows.append((stage, time.perf_counter() - start, _peak_rss_gib()))
    logging.info("%s: %.1f s", stage, rows[-1][1])
    return result


def retrieval_metrics(
    labels: np.ndarray, matches: np.ndarray, ks: tuple[int, ...]
) -> dict[str, float]:
    num_relevant = same_class_counts(labels)
    metrics = {f"recall@{k}": recall_at_k(matches, k) for k in ks}
    metrics["map@r"] = map_at_r(matches, num_relevant)
    metrics["r_precision"] = r_precision(matches, num_relevant)
    return metrics


def by_neighbour_list(x, labels, depth, ks, backend):
    """The previous path: the depth nearest neighbours of every query, then their flags."""
    _, indices = exact_knn(x, depth, backend=backend)
    return retrieval_metrics(labels, neighbour_matches(labels, indices), ks)


def by_ranks(x, labels, depth, ks, workers=None):
    return retrieval_metrics(
        labels, ranked_matches(x, labels, depth, workers=workers), ks
    )


def main(argv):
    del argv
    ks = tuple(int(k) for k in FLAGS.ks)
    rows = []
    x, labels = timed(
        rows,
        "synthetic data",
        synthetic_embeddings,
        FLAGS.num_items,
        FLAGS.num_classes,
        FLAGS.dim,
        FLAGS.spread,
        FLAGS.seed,
    )
    depth = max(max(ks), int(same_class_counts(labels).max()))
    paths = {
        "ranks (new)": timed(
            rows, "retrieval, ranks (new)", by_ranks, x, labels, depth, ks
        ),
        "ranks, 1 worker (old)": timed(
            rows, "retrieval, ranks, 1 worker (old)", by_ranks, x, labels, depth, ks, 1
        ),
    }
    for backend in FLAGS.knn_backends:
        name = f"kNN {backend} (old, k={depth})"
        paths[name] = timed(
            rows, f"retrieval, {name}", by_neighbour_list, x, labels, depth, ks, backend
        )
    clusters = timed(
        rows,
        f"k-means (k={FLAGS.num_classes})",
        kmeans_clusters,
        x,
        FLAGS.num_classes,
        FLAGS.seed,
    )
    nmi_value = timed(rows, "NMI", nmi, labels, clusters)
    metrics = {"nmi": nmi_value, **paths["ranks (new)"]}
    if FLAGS.end_to_end:
        end_to_end = timed(
            rows, "evaluate() (ranks)", evaluate, x, labels, ks=ks, seed=FLAGS.seed
        )
        if end_to_end != metrics:
            raise RuntimeError(
                f"evaluate() disagrees with its stages: {end_to_end} vs {metrics}"
            )

    print(
        f"{FLAGS.num_items} x {FLAGS.dim} embeddings, {FLAGS.num_classes} classes, ks={ks}"
    )
    print(f"{'stage':<40}{'wall s':>9}{'peak RSS GiB':>14}")
    for stage, seconds, peak in rows:
        print(f"{stage:<40}{seconds:>9.1f}{peak:>14.2f}")
    names = list(paths)
    print(f"{'metric':<14}" + "".join(f"{name:>26}" for name in names))
    for metric in paths[names[0]]:
        print(f"{metric:<14}" + "".join(f"{paths[p][metric]:>26.6f}" for p in names))
    print(f"nmi {nmi_value:.6f}")
    for name in names[1:]:
        if paths[name] != paths[names[0]]:
            raise RuntimeError(f"{name} and {names[0]} give different metrics.")
    print("identical retrieval metrics on every path" if len(names) > 1 else "")


if __name__ == "__main__":
    app.run(main)
