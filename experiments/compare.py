"""The paper's comparison (Table 1's shape) under equal budgets, over several seeds.

    python -m experiments.compare --dataset=glyphs --train_steps=500 --output_dir=runs/compare

Trains every loss with every seed through `experiments.train` (same data set config, steps, batch
size, learning rate), then writes `compare.md` (mean ± standard deviation over seeds of NMI and
Recall@K, and the commands run), `commands.txt` and `tsne.png` (test embeddings of the first
seed, the paper's Figure 4). Runs already finished in --output_dir are reused.
"""

import json
import os
import shlex
import subprocess
import sys
import time

from absl import app, flags, logging

import data_prep
from experiments import configs, run_dir
from experiments.reporting import markdown_table
from fl_embed.losses.registry import LOSS_NAMES, get_loss
from fl_embed.training.visualize import save_tsne_grid, tsne_points

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "glyphs", configs.DATASETS, "Data set of the comparison.")
flags.DEFINE_list(
    "losses", list(LOSS_NAMES), "Losses to compare, rows in the paper's order."
)
flags.DEFINE_list(
    "seeds", ["0", "1", "2"], "Seeds; every loss is trained once per seed."
)
flags.DEFINE_integer(
    "train_steps", 500, "Steps of every run (the equal budget).", lower_bound=1
)
flags.DEFINE_string(
    "output_dir", None, "Directory of the runs, compare.md, commands.txt, tsne.png."
)
flags.DEFINE_string(
    "data_dir", None, "TFDS data directory (default ~/tensorflow_datasets)."
)
flags.DEFINE_boolean(
    "tsne", True, "Write the t-SNE picture of the first seed's test embeddings."
)
flags.mark_flag_as_required("output_dir")
flags.register_validator(
    "losses",
    lambda names: bool(names) and all(name in LOSS_NAMES for name in names),
    message=f"--losses must be a comma-separated subset of {','.join(LOSS_NAMES)}.",
)
flags.register_validator(
    "seeds",
    lambda seeds: bool(seeds) and all(s.isdigit() for s in seeds),
    message="--seeds must be a comma-separated list of non-negative integers.",
)


def train_command(loss: str, seed: int, directory: str) -> list[str]:
    """The trainer command of one run: final evaluation only, so every run costs the same."""
    command = [sys.executable, "-m", "experiments.train", f"--dataset={FLAGS.dataset}"]
    command += [
        f"--loss={loss}",
        f"--seed={seed}",
        f"--train_steps={FLAGS.train_steps}",
    ]
    command += [
        f"--output_dir={directory}",
        "--eval_every=0",
        "--noeval_at_start",
        "--noshow_floor",
    ]
    return command + ([f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else [])


def run_metrics(command: list[str], directory: str) -> dict[str, float]:
    """Runs the trainer unless the run already finished; returns its final metrics."""
    path = os.path.join(directory, run_dir.METRICS_FILE)
    if not _finished(path):
        start = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        logging.info("%s finished in %.0fs", directory, time.monotonic() - start)
    with open(path) as f:
        return json.load(f)["metrics"]


def _finished(metrics_path: str) -> bool:
    """Whether a metrics.json exists for the comparison's step budget."""
    if not os.path.isfile(metrics_path):
        return False
    with open(metrics_path) as f:
        return json.load(f).get("step") == FLAGS.train_steps


def tsne_panels(run_dirs: dict[str, str]) -> dict[str, tuple]:
    """t-SNE points of each loss's test embeddings (restored from its run)."""
    panels = {}
    for loss, directory in run_dirs.items():
        config, model, _ = run_dir.load_run(directory)
        embed = run_dir.embed_fn(model, config.backbone)
        embeddings, labels = run_dir.embed_split(
            embed, FLAGS.dataset, "test", FLAGS.data_dir
        )
        panels[get_loss(loss).title] = tsne_points(embeddings, labels)
    return panels


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    seeds = [int(s) for s in FLAGS.seeds]
    results, commands, first_runs = {}, [], {}
    for loss in FLAGS.losses:
        for seed in seeds:
            directory = os.path.join(FLAGS.output_dir, f"{loss}_seed{seed}")
            command = train_command(loss, seed, directory)
            commands.append(shlex.join(["python"] + command[1:]))
            results.setdefault(get_loss(loss).title, []).append(
                run_metrics(command, directory)
            )
            first_runs.setdefault(loss, directory)
    ks = configs.get_config(FLAGS.dataset).ks
    table = markdown_table(results, ks)
    floor = data_prep.floor_metrics(FLAGS.dataset)
    report = [
        f"# {FLAGS.dataset}: {FLAGS.train_steps} steps per run, seeds {FLAGS.seeds} (mean ± std)",
        "",
        table,
    ]
    if floor is not None:
        report += [
            "",
            "Floor (no training):",
            "",
            markdown_table({"raw pixels": floor}, ks),
        ]
    report += ["", "Commands:", "", "```", *commands, "```", ""]
    with open(os.path.join(FLAGS.output_dir, "compare.md"), "w") as f:
        f.write("\n".join(report))
    with open(os.path.join(FLAGS.output_dir, "commands.txt"), "w") as f:
        f.write("\n".join(commands) + "\n")
    print(table)
    if FLAGS.tsne:
        path = os.path.join(FLAGS.output_dir, "tsne.png")
        try:
            save_tsne_grid(tsne_panels(first_runs), path)
            logging.info("Wrote %s", path)
        except ImportError:
            logging.error(
                "No t-SNE picture: matplotlib is missing (pip install matplotlib)."
            )


if __name__ == "__main__":
    app.run(main)
