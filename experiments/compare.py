"""The paper's comparison (Table 1's shape), each loss tuned the same way, over several seeds.

    python -m experiments.compare --dataset=glyphs --output_dir=runs/compare

For every loss of --losses: an Optuna study of --tune_trials trials over the learning rate and the
loss's own knobs (`experiments/tuning.py`), each trial a run of `experiments.train` on the first
train classes scored by MAP@R on the held-out last --validation_fraction of them (the test classes
are never read); then the chosen setting is trained on all train classes once per seed and
evaluated on the test classes, and so are the config's untuned defaults. Every run trains the same
--train_steps at the config's batch size, C/m, embedding size and backbone (the equal budget).

Writes to --output_dir: `compare.md` (the tuned table with 95% confidence intervals over seeds and
Welch's t-test for every pair of losses, then the untuned table), `tuning.json` (each loss's search
space, trials, chosen setting and the validation class ids), `commands.txt`, `tuning.png` (each
loss's validation score per trial) and `tsne.png` (test embeddings of the first seed's tuned runs,
the paper's Figure 4). A rerun of the same command resumes: finished trials and runs are reused.
--tune_trials=0 trains the untuned defaults only (the comparison before tuning).
"""

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Any

from absl import app, flags, logging

import data_prep
from experiments import configs, run_dir, tuning
from experiments.reporting import format_duration, markdown_table, significance_lines
from fl_embed.io import atomic_write_text
from fl_embed.losses.registry import LOSS_NAMES, get_loss
from fl_embed.training.visualize import save_tsne_grid, tsne_points

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "glyphs", configs.DATASETS, "Data set of the comparison.")
flags.DEFINE_list(
    "losses", list(LOSS_NAMES), "Losses to compare, rows in the paper's order."
)
flags.DEFINE_list(
    "seeds",
    ["0", "1", "2", "3", "4"],
    "Seeds of the final runs; each loss's tuned and untuned settings are trained once per seed.",
)
flags.DEFINE_integer(
    "train_steps",
    300,
    "Steps of every run, trials included (the equal budget). The default fits the default "
    "budget in about an hour on 2 CPU cores; the glyph main job trains 2000.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "tune_trials",
    6,
    "Optuna trials per loss (the first is the config's default setting); 0: no tuning, the "
    "untuned comparison only.",
    lower_bound=0,
)
flags.DEFINE_float(
    "validation_fraction",
    0.25,
    "Share of the train classes (the last ones) held out to score trials.",
    lower_bound=0.0,
    upper_bound=1.0,
)
flags.DEFINE_integer(
    "tune_seed", 0, "Seed of the TPE sampler and of every trial's run."
)
flags.DEFINE_float(
    "alpha", 0.05, "Significance level of the pairwise tests.", lower_bound=0.0
)
flags.DEFINE_string(
    "output_dir",
    None,
    "Directory of the runs, compare.md, tuning.json, commands.txt and the pictures.",
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

# Extra metrics of the tables, after NMI and R@K (Musgrave et al. 2020).
EXTRA_METRICS = ("map@r", "r_precision")


class Runs:
    """Trains runs through `experiments.train` as a user would (one process each), reusing
    finished ones, and keeps the commands, the progress and the time spent."""

    def __init__(self, output_dir: str, planned: int):
        self.output_dir = output_dir
        self.planned, self.done, self.trained, self.reused = planned, 0, 0, 0
        self.commands: list[str] = []
        self.start, self.training_seconds = time.monotonic(), 0.0

    def directory(
        self, kind: str, loss: str, setting: dict[str, Any], seed: int
    ) -> str:
        """runs/<kind>/<loss>/<hash of the setting>_seed<seed>: a setting's runs are shared,
        so an untuned run equal to the chosen one is trained once."""
        key = json.dumps(setting, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        return os.path.join(self.output_dir, kind, loss, f"{digest}_seed{seed}")

    def command(
        self,
        loss: str,
        setting: dict[str, Any],
        seed: int,
        directory: str,
        validate: bool,
    ) -> list[str]:
        """The trainer command of one run: final evaluation only, no export."""
        command = [
            sys.executable,
            "-m",
            "experiments.train",
            f"--dataset={FLAGS.dataset}",
        ]
        command += [
            f"--loss={loss}",
            f"--seed={seed}",
            f"--train_steps={FLAGS.train_steps}",
        ]
        command += [f"--{name}={value}" for name, value in setting.items()]
        if validate:
            command.append(f"--validation_fraction={FLAGS.validation_fraction}")
        command += [
            f"--output_dir={directory}",
            "--eval_every=0",
            "--noeval_at_start",
            "--noshow_floor",
            "--noexport",
        ]
        return command + ([f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else [])

    def metrics(
        self, loss: str, setting: dict[str, Any], seed: int, validate: bool
    ) -> dict[str, float]:
        """The final metrics of a run, training it unless it already finished.

        Raises:
          tuning.TrialFailed: the run ended without metrics (its log is named).
        """
        kind = "tune" if validate else "final"
        directory = self.directory(kind, loss, setting, seed)
        command = self.command(loss, setting, seed, directory, validate)
        self.commands.append(shlex.join(["python"] + command[1:]))
        path = os.path.join(directory, run_dir.METRICS_FILE)
        if _finished(path):
            self.reused += 1
        else:
            self._train(command, directory)
        self.done += 1
        self._log_progress(f"{loss} {kind} seed {seed}")
        with open(path) as f:
            return json.load(f)["metrics"]

    def _train(self, command: list[str], directory: str) -> None:
        log_path = directory + ".log"
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        start = time.monotonic()
        with open(log_path, "w") as log:
            result = subprocess.run(
                command, check=False, stdout=log, stderr=subprocess.STDOUT
            )
        self.training_seconds += time.monotonic() - start
        self.trained += 1
        if result.returncode != 0:
            with open(log_path) as f:
                last = [line.strip() for line in f if line.strip()][-1:]
            raise tuning.TrialFailed(
                f"{directory} failed (exit {result.returncode}): "
                f"{last[0] if last else 'no output'} (log: {log_path})"
            )

    def _log_progress(self, what: str) -> None:
        elapsed = time.monotonic() - self.start
        per_run = self.training_seconds / self.trained if self.trained else 0.0
        left = max(0, self.planned - self.done) * per_run
        logging.info(
            "run %d/%d done (%s): %s elapsed, ETA %s",
            self.done,
            self.planned,
            what,
            format_duration(elapsed),
            format_duration(left) if self.trained else "?",
        )

    def budget_line(self) -> str:
        return (
            f"{self.trained} runs trained and {self.reused} reused in "
            f"{format_duration(time.monotonic() - self.start)} wall time"
        )


def _finished(metrics_path: str) -> bool:
    """Whether a metrics.json exists for the comparison's step budget."""
    if not os.path.isfile(metrics_path):
        return False
    with open(metrics_path) as f:
        return json.load(f).get("step") == FLAGS.train_steps


def tune_loss(
    runs: Runs, loss: str, config: configs.Config, seed: int
) -> dict[str, Any]:
    """The loss's study, run (or resumed) to --tune_trials trials; its JSON record."""
    space = tuning.search_space(loss, FLAGS.train_steps)
    storage = (
        f"sqlite:///{os.path.abspath(os.path.join(FLAGS.output_dir, 'tuning.db'))}"
    )
    study = tuning.open_study(storage, loss, FLAGS.tune_seed, FLAGS.tune_trials)

    def run_trial(setting: dict[str, Any], number: int) -> float:
        return runs.metrics(loss, setting, seed, validate=True)[tuning.OBJECTIVE]

    tuning.tune(
        study, space, tuning.defaults(config, space), FLAGS.tune_trials, run_trial
    )
    return tuning.study_record(study, space)


def final_runs(
    runs: Runs, loss: str, setting: dict[str, Any], seeds: list[int]
) -> tuple[list[dict[str, float]], list[str]]:
    """(metrics of every seed that finished, the failures) of a setting on the test classes."""
    results, failures = [], []
    for seed in seeds:
        try:
            results.append(runs.metrics(loss, setting, seed, validate=False))
        except tuning.TrialFailed as err:
            logging.error("%s", err)
            failures.append(f"seed {seed}: {err}")
    return results, failures


def save_tuning_plot(records: dict[str, dict], path: str) -> None:
    """Each loss's validation score per trial (completed: dots, running best: line)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(
        1, len(records), figsize=(4 * len(records), 3.2), squeeze=False
    )
    for axis, (title, record) in zip(axes[0], records.items()):
        done = [t for t in record["trials"] if t["state"] == "COMPLETE"]
        numbers = [t["number"] for t in done]
        scores = [100 * t[tuning.OBJECTIVE] for t in done]
        best = [max(scores[: i + 1]) for i in range(len(scores))]
        axis.plot(numbers, scores, "o", label="trial")
        axis.step(numbers, best, where="post", label="best so far")
        chosen = record["chosen"]
        axis.plot(chosen["number"], 100 * chosen[tuning.OBJECTIVE], "r*", markersize=12)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(title)
        axis.set_xlabel("trial (0: the config's default)")
        axis.set_ylabel("validation MAP@R (%)")
    axes[0][0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def tsne_panels(run_dirs: dict[str, str]) -> dict[str, tuple]:
    """t-SNE points of each loss's test embeddings (restored from its run)."""
    panels = {}
    for loss, directory in run_dirs.items():
        _, model, _ = run_dir.load_run(directory)
        embed = run_dir.embed_fn(model, configs.get_config(FLAGS.dataset).backbone)
        embeddings, labels = run_dir.embed_split(
            embed, FLAGS.dataset, "test", FLAGS.data_dir
        )
        panels[get_loss(loss).title] = tsne_points(embeddings, labels)
    return panels


def report(
    tuned: dict,
    untuned: dict,
    settings: dict,
    failures: list[str],
    runs: Runs,
    ks,
    split: tuple,
) -> str:
    """compare.md: budget, tuned table, chosen settings, significance, untuned table, floor.
    `split`: (fit classes, validation classes)."""
    fit, validation = split
    lines = [
        f"# {FLAGS.dataset}: each loss tuned on validation classes, {len(FLAGS.seeds)} seeds",
        "",
        (
            f"Every run: {FLAGS.train_steps} steps, the `{FLAGS.dataset}` config otherwise. Budget "
            f"used: {runs.budget_line()}."
        ),
        "",
    ]
    if tuned:
        lines += [
            (
                f"## Tuned: {FLAGS.tune_trials} Optuna TPE trials per loss (seed {FLAGS.tune_seed}), "
                f"chosen by validation MAP@R"
            ),
            "",
            (
                f"Trials train on train classes {fit.min()}-{fit.max()} and are scored on the "
                f"held-out {validation.size} classes {validation.min()}-{validation.max()}; the test "
                "classes are never read while tuning. Mean ± 95% confidence interval (Student's t) "
                "over seeds, test classes:"
            ),
            "",
            markdown_table(tuned, ks, spread="ci95", extra=EXTRA_METRICS),
            "",
            "| Loss | chosen setting | validation MAP@R | trial |",
            "|---|---|---|---|",
        ]
        for title, record in settings.items():
            chosen = record["chosen"]
            lines.append(
                f"| {title} | {tuning.format_setting(chosen['params'])} | "
                f"{100 * chosen[tuning.OBJECTIVE]:.2f} | {chosen['number']} |"
            )
        lines += ["", *significance_lines(tuned, FLAGS.alpha), ""]
    lines += [
        "## Untuned: the config's defaults (paper values where the paper gives them)",
        "",
        "Mean ± 95% confidence interval over seeds, test classes:",
        "",
        markdown_table(untuned, ks, spread="ci95", extra=EXTRA_METRICS),
        "",
    ]
    if len(untuned) > 1:
        lines += [*significance_lines(untuned, FLAGS.alpha), ""]
    floor = data_prep.floor_metrics(FLAGS.dataset)
    if floor is not None:
        lines += [
            "Floor (no training):",
            "",
            markdown_table({"raw pixels": floor}, ks),
            "",
        ]
    if failures:
        lines += ["Runs that failed (left out of the means):", ""]
        lines += [f"- {failure}" for failure in failures] + [""]
    lines += ["Commands: see `commands.txt`.", ""]
    return "\n".join(lines)


def main(argv):
    del argv
    try:
        run_dir.check_output_dir(FLAGS.output_dir)
        fit, validation = data_prep.validation_split(
            FLAGS.dataset, FLAGS.validation_fraction
        )
    except ValueError as err:
        sys.exit(f"error: {err}")
    config = configs.get_config(FLAGS.dataset)
    seeds = [int(s) for s in FLAGS.seeds]
    planned = len(FLAGS.losses) * (FLAGS.tune_trials + 2 * len(seeds))
    runs = Runs(FLAGS.output_dir, planned)
    records, tuned, untuned, settings, failures, first_runs = {}, {}, {}, {}, [], {}
    for loss in FLAGS.losses:
        title = get_loss(loss).title
        space = tuning.search_space(loss, FLAGS.train_steps)
        default = tuning.defaults(config, space)
        if FLAGS.tune_trials:
            try:
                records[loss] = settings[title] = tune_loss(
                    runs, loss, config, seeds[0]
                )
            except ValueError as err:  # every trial failed
                sys.exit(f"error: {err}")
            setting = records[loss]["chosen"]["params"]
            tuned[title], failed = final_runs(runs, loss, setting, seeds)
            failures += [f"{title} tuned, {f}" for f in failed]
            first_runs[loss] = runs.directory("final", loss, setting, seeds[0])
        untuned[title], failed = final_runs(runs, loss, default, seeds)
        failures += [f"{title} untuned, {f}" for f in failed]
        first_runs.setdefault(loss, runs.directory("final", loss, default, seeds[0]))
    tuning_record = {
        "dataset": FLAGS.dataset,
        "train_steps": FLAGS.train_steps,
        "validation_fraction": FLAGS.validation_fraction,
        "fit_classes": fit.tolist(),
        "validation_classes": validation.tolist(),
        "losses": records,
    }
    out = FLAGS.output_dir
    atomic_write_text(
        os.path.join(out, "tuning.json"), json.dumps(tuning_record, indent=1) + "\n"
    )
    atomic_write_text(
        os.path.join(out, "commands.txt"), "\n".join(runs.commands) + "\n"
    )
    text = report(
        tuned, untuned, settings, failures, runs, config.ks, (fit, validation)
    )
    atomic_write_text(os.path.join(out, "compare.md"), text)
    print(text)
    logging.info("Budget used: %s", runs.budget_line())
    pictures = []
    if records:
        pictures.append(
            (
                "tuning.png",
                lambda p: save_tuning_plot(
                    {get_loss(loss).title: r for loss, r in records.items()}, p
                ),
            )
        )
    if FLAGS.tsne:
        finished = {
            loss: d
            for loss, d in first_runs.items()
            if _finished(os.path.join(d, run_dir.METRICS_FILE))
        }
        pictures.append(
            ("tsne.png", lambda p: save_tsne_grid(tsne_panels(finished), p))
        )
    for name, draw in pictures:
        try:
            draw(os.path.join(out, name))
            logging.info("Wrote %s", os.path.join(out, name))
        except ImportError:
            logging.error(
                "No %s: matplotlib is missing (pip install matplotlib).", name
            )


if __name__ == "__main__":
    app.run(main)
