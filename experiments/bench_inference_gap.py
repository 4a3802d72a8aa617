"""How close greedy (Algorithm 1) and greedy + PAM (Algorithm 2) get to the true maximum of (*).

    python -m experiments.bench_inference_gap                      # m = 18, K = 2..6, 20 batches
    python -m experiments.bench_inference_gap --sources=random --batches=5

(*) is the loss-augmented inference of paper eq. 6: max over |S| = K of
A(S) = F(X, S) + gamma * Delta(g(S), y*), with F the facility energy (eq. 4), g(S) the
nearest-medoid clustering (eq. 7) and Delta = 1 - NMI (eq. 8). For batches small enough to try
every S (C(18, 6) = 18,564), the library's medoids (`loss_augmented_inference`) are scored by an
independent numpy objective and compared with the exhaustive maximum A*:

- solved exactly: A(S) >= A* - 1e-5 (|A*| + 1), the inference's own tie tolerance;
- objective gap: (A* - A(S)) / |A*|, mean and worst over the batches (|A*| can be small when
  gamma * Delta offsets F, which inflates this ratio);
- loss missed: (L* - L(S)) / L* with L = [A - F~(X, y*)]_+ the loss of eq. 6, over the batches
  whose true loss L* is positive: the fraction of the loss the approximation does not see;
- hinge changed: the fraction of batches where the approximate S gives a zero loss while the
  true maximum does not (the reverse cannot happen: A(S) <= A*).

Sources: random unit embeddings (d = --dim), and batches of glyph test images embedded by a
small_cnn trained here for --train_steps steps with the triplet loss (a few minutes on a 2-core
CPU); --train_steps=0 embeds with the untrained network.
"""

import itertools

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from data_prep.glyphs import load_arrays
from fl_embed.losses import TripletSemiHardLoss, loss_augmented_inference
from fl_embed.models import build_embedder
from fl_embed.models.preprocessing import preprocess_for

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The benchmark's flags (defined only when run as a program: its functions are imported
    by the tests next to the trainer, whose flags share some names)."""
    flags.DEFINE_integer(
        "m", 18, "Batch size (every |S| = K subset is tried).", lower_bound=2
    )
    flags.DEFINE_list(
        "ks", ["2", "3", "4", "5", "6"], "Classes (= clusters) per batch K."
    )
    flags.DEFINE_list("gammas", ["1", "10", "100"], "Margin multipliers gamma.")
    flags.DEFINE_integer("batches", 20, "Batches per (source, K).", lower_bound=1)
    flags.DEFINE_list("sources", ["random", "glyphs"], "Embedding sources.")
    flags.DEFINE_integer(
        "dim", 64, "Dimension of the random unit embeddings.", lower_bound=1
    )
    flags.DEFINE_integer(
        "train_steps", 300, "Triplet-loss steps of the glyph embedder.", lower_bound=0
    )
    flags.DEFINE_integer("pam_iterations", 5, "Algorithm 2 sweeps T.", lower_bound=1)
    flags.DEFINE_string("inference", "xla", "Backend of loss_augmented_inference.")
    flags.DEFINE_integer("seed", 0, "Seed of batches and training.")
    flags.register_validator(
        "ks",
        lambda v: all(s.isdigit() and int(s) >= 2 for s in v),
        message="--ks takes integers >= 2.",
    )
    flags.register_validator(
        "sources",
        lambda v: set(v) <= {"random", "glyphs"} and bool(v),
        message="--sources takes random and/or glyphs.",
    )


_TOLERANCE = 1e-5
ALGORITHMS = {"greedy": False, "greedy + PAM": True}


def exhaustive_objective(
    d: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F(X, S) and NMI(g(S), y) of every |S| = K subset, K = number of classes, in numpy.

    Args:
      d: float64 [m, m] Euclidean distances.
      y: int [m], classes 0..K-1.

    Returns:
      (subsets int [N, K] in increasing index order, F float [N], NMI float [N]).
    """
    m, k = d.shape[0], int(y.max()) + 1
    subsets = np.array(list(itertools.combinations(range(m), k)))
    to_slots = d[subsets]  # [N, K, m]
    energy = -to_slots.min(axis=1).sum(axis=1)
    clusters = _assign(to_slots, subsets)
    return subsets, energy, _nmi_rows(clusters, y, k)


def _assign(to_slots: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """g(S), eq. 7: nearest medoid (lowest slot on ties), each medoid in its own slot."""
    clusters = np.argmin(to_slots, axis=1)
    rows = np.arange(subsets.shape[0])[:, None]
    clusters[rows, subsets] = np.arange(subsets.shape[1])[None, :]
    return clusters


def _nmi_rows(clusters: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """NMI with the geometric mean (paper eq. 9) of every row of clusters [N, m] against y."""
    n, m = clusters.shape
    table = np.zeros((n, k, k))
    np.add.at(
        table, (np.repeat(np.arange(n), m), clusters.reshape(-1), np.tile(y, n)), 1.0
    )
    p = table / m
    p_a, p_c = p.sum(axis=2), p.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p > 0, p / (p_a[:, :, None] * p_c[:, None, :]), 1.0)
        mi = np.sum(np.where(p > 0, p * np.log(ratio), 0.0), axis=(1, 2))
        h_a = -np.sum(np.where(p_a > 0, p_a * np.log(p_a), 0.0), axis=1)
        h_c = -np.sum(np.where(p_c > 0, p_c * np.log(p_c), 0.0), axis=1)
    return np.clip(mi / np.sqrt(h_a * h_c), 0.0, 1.0)


def objective(d: np.ndarray, y: np.ndarray, medoids, gamma: float) -> float:
    """A(S) = F(X, S) + gamma (1 - NMI(g(S), y)) of one S (slot order as given)."""
    medoids = np.asarray(medoids)[None, :]
    to_slots = d[medoids]
    energy = -to_slots.min(axis=1).sum()
    nmi = _nmi_rows(_assign(to_slots, medoids), y, int(y.max()) + 1)[0]
    return float(energy + gamma * (1.0 - nmi))


def oracle_score(d: np.ndarray, y: np.ndarray) -> float:
    """F~(X, y*), eq. 5: each class's best single medoid."""
    return float(
        sum(
            (-d[np.ix_(members, members)].sum(axis=0)).max()
            for members in (np.flatnonzero(y == c) for c in np.unique(y))
        )
    )


def distances(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))


def balanced_labels(m: int, k: int) -> np.ndarray:
    return np.arange(m) % k


def random_batches(rng, k: int):
    for _ in range(FLAGS.batches):
        x = rng.normal(size=(FLAGS.m, FLAGS.dim))
        yield x / np.linalg.norm(x, axis=1, keepdims=True), balanced_labels(FLAGS.m, k)


def train_glyph_embedder(rng) -> keras.Model:
    """small_cnn + 64-d head trained briefly with the triplet loss on the glyph train split."""
    images, labels = load_arrays("train")
    scale = preprocess_for("small_cnn")
    keras.utils.set_random_seed(FLAGS.seed)
    model = build_embedder("small_cnn", 64)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=TripletSemiHardLoss(0.2))
    if FLAGS.train_steps:
        batch = 64
        order = rng.permutation(len(labels))
        order = np.resize(order, FLAGS.train_steps * batch)
        x = scale(tf.constant(images[order])).numpy()
        model.fit(
            x, labels[order], batch_size=batch, epochs=1, shuffle=False, verbose=0
        )
    return model


def glyph_batches(rng, k: int, model: keras.Model, images, labels):
    classes = np.unique(labels)
    scale = preprocess_for("small_cnn")
    for _ in range(FLAGS.batches):
        chosen = rng.choice(classes, size=k, replace=False)
        y = balanced_labels(FLAGS.m, k)
        picks = np.concatenate(
            [
                rng.choice(np.flatnonzero(labels == chosen[c]), (y == c).sum(), False)
                for c in range(k)
            ]
        )
        order = np.argsort(np.concatenate([np.flatnonzero(y == c) for c in range(k)]))
        x = model(scale(tf.constant(images[picks[order]])), training=False).numpy()
        yield x, y


def measure(batches, gammas) -> dict:
    """{(gamma, algorithm): list of (exact, objective gap, loss missed or NaN, hinge changed)}."""
    results = {(g, a): [] for g in gammas for a in ALGORITHMS}
    for x, y in batches:
        d = distances(x)
        _, energy, nmi = exhaustive_objective(d, y)
        oracle = oracle_score(d, y)
        for gamma in gammas:
            best = float(np.max(energy + gamma * (1.0 - nmi)))
            for algorithm, pam in ALGORITHMS.items():
                medoids = loss_augmented_inference(
                    tf.constant(y, tf.int32),
                    tf.constant(x, tf.float32),
                    gamma,
                    enable_pam_finetuning=pam,
                    pam_iterations=FLAGS.pam_iterations,
                    inference=FLAGS.inference,
                ).numpy()
                value = objective(d, y, medoids, gamma)
                if value > best + _TOLERANCE * (abs(best) + 1.0):
                    raise RuntimeError(
                        f"A(S) = {value} above the exhaustive maximum {best}."
                    )
                tol = _TOLERANCE * (abs(best) + 1.0)
                exact = value >= best - tol
                gap = 0.0 if exact else (best - value) / abs(best)
                true_loss = max(best - oracle, 0.0)
                approx_loss = max(value - oracle, 0.0)
                missed = (
                    (true_loss - approx_loss) / true_loss if true_loss > tol else np.nan
                )
                hinge_changed = true_loss > tol and approx_loss <= tol
                results[(gamma, algorithm)].append((exact, gap, missed, hinge_changed))
    return results


def table(rows: list) -> str:
    lines = [
        (
            "| embeddings | gamma | inference | solved exactly | objective gap mean / worst "
            "| loss > 0 | loss missed mean / worst | hinge changed |"
        ),
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for source, gamma, algorithm, outcomes in rows:
        exact, gap, missed, changed = (np.array(v, float) for v in zip(*outcomes))
        positive = missed[~np.isnan(missed)]
        missed_cell = (
            f"{positive.mean():.1%} / {positive.max():.1%}" if positive.size else "-"
        )
        lines.append(
            f"| {source} | {gamma:g} | {algorithm} | {exact.mean():.0%} "
            f"| {gap.mean():.1e} / {gap.max():.1e} | {positive.size / exact.size:.0%} "
            f"| {missed_cell} | {changed.mean():.1%} |"
        )
    return "\n".join(lines)


def main(argv) -> None:
    del argv
    ks = [int(k) for k in FLAGS.ks]
    if max(ks) > FLAGS.m:
        raise app.UsageError("--m must be at least every K in --ks.")
    gammas = [float(g) for g in FLAGS.gammas]
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    for source in FLAGS.sources:
        if source == "glyphs":
            model = train_glyph_embedder(rng)
            images, labels = load_arrays("test")
        merged = {(g, a): [] for g in gammas for a in ALGORITHMS}
        for k in ks:
            batches = (
                random_batches(rng, k)
                if source == "random"
                else glyph_batches(rng, k, model, images, labels)
            )
            for key, outcomes in measure(batches, gammas).items():
                merged[key] += outcomes
            logging.info("%s, K = %d done", source, k)
        rows += [(source, g, a, merged[(g, a)]) for g in gammas for a in ALGORITHMS]
    print(
        f"\nm = {FLAGS.m}, K in {ks}, {FLAGS.batches} batches per (source, K), "
        f"T = {FLAGS.pam_iterations}, inference={FLAGS.inference}\n"
    )
    print(table(rows))


if __name__ == "__main__":
    define_flags()
    app.run(main)
