"""Benchmark of the evaluation protocol at Stanford Online Products size (paper section 4).

    python -m experiments.bench_eval

Synthetic embeddings of SOP's test split (60,502 x 64, 11,316 classes of 2-12 items), then the
stages `evaluate` runs, one by one, and `evaluate` itself end to end. For each: wall time and
the peak resident memory of the process during the stage (Linux VmHWM, reset before each stage
through /proc/self/clear_refs, so it includes what the process already held: TensorFlow,
which `import fl_embed` loads, and the data). Target from issue 3: under 3 minutes and 4 GiB
end to end on a 2-core machine; issue 16: under 30 s with faiss.

The nearest-neighbour search runs through both backends of `exact_knn` (numpy, and faiss when
installed) in the same run; the benchmark fails if their neighbour lists differ.
"""

import time

import numpy as np
from absl import app, flags, logging

from fl_embed.evaluation import (
    PRODUCTS_KS,
    evaluate,
    exact_knn,
    faiss_module,
    kmeans_clusters,
    map_at_r,
    neighbour_matches,
    nmi,
    r_precision,
    recall_at_k,
    same_class_counts,
)

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
    labels: np.ndarray, indices: np.ndarray, ks: tuple[int, ...]
) -> dict[str, float]:
    num_relevant = same_class_counts(labels)
    matches = neighbour_matches(labels, indices)
    metrics = {f"recall@{k}": recall_at_k(matches, k) for k in ks}
    metrics["map@r"] = map_at_r(matches, num_relevant)
    metrics["r_precision"] = r_precision(matches, num_relevant)
    return metrics


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
    backends = ["numpy"] + (["faiss"] if faiss_module() is not None else [])
    indices = None
    for backend in backends:
        _, found = timed(
            rows,
            f"exact kNN, {backend} (k={depth})",
            exact_knn,
            x,
            depth,
            backend=backend,
        )
        if indices is not None and not np.array_equal(found, indices):
            raise RuntimeError("exact_knn: faiss and numpy neighbour lists differ.")
        indices = found
    if len(backends) == 1:
        logging.warning("faiss is not installed: only the numpy kNN is timed.")
    metrics = timed(
        rows, "Recall@K, MAP@R, R-precision", retrieval_metrics, labels, indices, ks
    )
    del indices
    clusters = timed(
        rows,
        f"k-means (k={FLAGS.num_classes})",
        kmeans_clusters,
        x,
        FLAGS.num_classes,
        FLAGS.seed,
    )
    metrics = {"nmi": timed(rows, "NMI", nmi, labels, clusters), **metrics}
    shared = sum(s for stage, s, _ in rows[1:] if not stage.startswith("exact kNN"))
    stage_totals = {
        backend: shared
        + sum(s for stage, s, _ in rows if stage.startswith(f"exact kNN, {backend}"))
        for backend in backends
    }
    end_to_end = {}
    if FLAGS.end_to_end:
        for backend in backends:
            end_to_end[backend] = timed(
                rows,
                f"evaluate(), {backend} kNN",
                evaluate,
                x,
                labels,
                ks=ks,
                seed=FLAGS.seed,
                knn_backend=backend,
            )
            if end_to_end[backend] != metrics:
                raise RuntimeError(
                    f"evaluate() with {backend} disagrees with its stages: "
                    f"{end_to_end[backend]} vs {metrics}"
                )

    print(
        f"{FLAGS.num_items} x {FLAGS.dim} embeddings, {FLAGS.num_classes} classes, ks={ks}"
    )
    print(f"{'stage':<32}{'wall s':>9}{'peak RSS GiB':>14}")
    for stage, seconds, peak in rows:
        print(f"{stage:<32}{seconds:>9.1f}{peak:>14.2f}")
    for backend, total in stage_totals.items():
        print(f"{'sum of stages, ' + backend + ' kNN':<32}{total:>9.1f}")
    for backend, values in end_to_end.items() or [("stages", metrics)]:
        print(
            f"metrics ({backend}): "
            + ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        )


if __name__ == "__main__":
    app.run(main)
