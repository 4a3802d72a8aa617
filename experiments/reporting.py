"""What a command line shows of a run: the progress line, TensorBoard scalars and the Markdown
tables of metrics in the shape of the paper's Tables 1-3."""

import itertools
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from fl_embed.evaluation.statistics import confidence_interval, welch_test

# `tf.summary.scalar` lives in the `tensorboard` package, which `tensorflow-cpu` does not install;
# `tf.summary.write` with the scalars plugin's metadata writes the same event records.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


def write_scalars(
    writer: tf.summary.SummaryWriter, step: int, values: dict[str, float]
) -> None:
    """Writes one TensorBoard scalar per entry of `values` at `step`, then flushes.

    Args:
      writer: from `tf.summary.create_file_writer`.
      step: the training step.
      values: tag -> number.
    """
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.write(
                tag, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA
            )
    writer.flush()


def format_duration(seconds: float) -> str:
    """`1h02m03s`, `4m05s` or `7s` for a number of seconds (negative counts as 0)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Measures steps per second since the previous report and projects the time left.

    Args:
      total_steps: the step the run ends at.
      start_step: the step the run (or its resumption) starts at.
      clock: seconds as a float; `time.monotonic` unless a test passes its own.
    """

    def __init__(self, total_steps: int, start_step: int = 0, clock=time.monotonic):
        self.total_steps = int(total_steps)
        self._clock = clock
        self._last_step = int(start_step)
        self._last_time = clock()

    def line(self, step: int, values: dict[str, float]) -> str:
        """`step 200/1500 (13%) | loss 1.234 | 5.1 steps/s | ETA 4m15s`, then restarts the window.

        Args:
          step: the step just finished.
          values: scalars to show (name -> value).

        Returns:
          The progress line.
        """
        now = self._clock()
        elapsed = now - self._last_time
        rate = (step - self._last_step) / elapsed if elapsed > 0 else float("inf")
        self._last_step, self._last_time = step, now
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        shown = " | ".join(f"{name} {value:.4g}" for name, value in values.items())
        percent = 100.0 * step / self.total_steps
        parts = [f"step {step}/{self.total_steps} ({percent:.0f}%)"]
        parts += [shown] if shown else []
        eta_text = format_duration(eta) if eta != float("inf") else "?"
        parts += [f"{rate:.2f} steps/s", f"ETA {eta_text}"]
        return " | ".join(parts)


SPREADS = ("std", "ci95")
_TITLES = {"nmi": "NMI", "map@r": "MAP@R", "r_precision": "R-precision"}


def _title(key: str, paper: bool) -> str:
    """NMI, and R@K as the paper writes Recall@K; without `paper` every other metric keeps its key."""
    if key == "nmi" or (paper and key in _TITLES):
        return _TITLES[key]
    if paper and key.startswith("recall@"):
        return "R@" + key.removeprefix("recall@")
    return key


def markdown_table(
    rows: dict[str, dict[str, float] | list[dict[str, float]]],
    ks: Sequence[int] | None = None,
    spread: str = "std",
    extra: Sequence[str] = (),
) -> str:
    """A Markdown table of metrics in percent with two decimals, one row per name.

    Args:
      rows: row name -> an `fl_embed.evaluation.evaluate` dict (fractions), or a list of them
        (one per seed), shown as "mean ± spread" (a spread of 0 for a single seed).
      ks: the Recall@K columns after NMI, titled as the paper's tables (R@K); None for every
        metric of the first row, in its order, titled by its key (NMI aside).
      spread: for lists, "std" (the sample standard deviation) or "ci95" (the half-width of
        the 95% confidence interval of the mean, Student's t).
      extra: metric keys shown after the R@K columns (e.g. "map@r", "r_precision").

    Returns:
      The table.
    """
    first = next(iter(rows.values()), {})
    first = first[0] if isinstance(first, list) else first
    if spread not in SPREADS:
        raise ValueError(f"Unknown spread {spread!r}; use one of {', '.join(SPREADS)}.")
    keys = ["nmi"] + [f"recall@{k}" for k in ks] if ks is not None else list(first)
    keys += [key for key in extra if key not in keys]
    lines = [
        "| | " + " | ".join(_title(key, ks is not None) for key in keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for name, metrics in rows.items():
        if isinstance(metrics, list):
            cells = [
                _mean_spread([run[key] for run in metrics], spread) for key in keys
            ]
        else:
            cells = [f"{100.0 * metrics[key]:.2f}" for key in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_spread(fractions: list[float], spread: str) -> str:
    values = 100.0 * np.array(fractions)
    if not len(values):
        return "–"
    if len(values) < 2:
        width = 0.0
    elif spread == "ci95":
        width = confidence_interval(values).half_width
    else:
        width = values.std(ddof=1)
    return f"{values.mean():.2f} ± {width:.2f}"


def significance_lines(results: dict[str, list[dict]], alpha: float) -> list[str]:
    """One line per pair of losses: the MAP@R and NMI differences and Welch's p-values."""
    pairs = list(itertools.combinations(results, 2))
    tests = 2 * len(pairs)
    lines = [
        (
            f"Welch's two-sided t-test over seeds, alpha = {alpha}; {tests} tests, so with a "
            f"Bonferroni correction a difference needs p < {alpha / max(1, tests):.4f}."
        ),
        "",
    ]
    for a, b in pairs:
        cells = []
        for key, name in (("map@r", "MAP@R"), ("nmi", "NMI")):
            if min(len(results[a]), len(results[b])) < 2:
                cells.append(f"{name}: fewer than 2 seeds, not tested")
                continue
            test = welch_test(
                [100 * r[key] for r in results[a]],
                [100 * r[key] for r in results[b]],
                alpha,
            )
            verdict = "significant" if test.significant else "not significant"
            cells.append(
                f"{name} {test.difference:+.2f} points (p = {test.p_value:.3g}, {verdict})"
            )
        lines.append(f"- {a} vs {b}: " + "; ".join(cells))
    return lines
