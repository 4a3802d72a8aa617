"""Presenting evaluation results: a table as in the paper's and a JSON record."""

import json
from typing import Any

from fl_embed.io import atomic_write_text


def metrics_table(metrics: dict[str, float]) -> str:
    """A two-row text table of metrics in percent, columns in the dict's order (paper tables 1-3).

    Args:
      metrics: metric name -> fraction in [0, 1], as returned by `evaluate`.

    Returns:
      str, a header line and a value line.
    """
    names = [name.upper() if name == "nmi" else name for name in metrics]
    widths = [max(len(name), 6) for name in names]
    header = "  ".join(name.rjust(width) for name, width in zip(names, widths))
    values = "  ".join(
        f"{100.0 * value:.2f}".rjust(width)
        for value, width in zip(metrics.values(), widths)
    )
    return f"{header}\n{values}"


def write_metrics_json(path: str, metrics: dict[str, float], **context: Any) -> None:
    """Write {"metrics": metrics, **context} as JSON, creating the parent directory.

    Args:
      path: output file.
      metrics: metric name -> fraction in [0, 1].
      **context: JSON-serialisable facts about the run (input path, sizes, ks, seed).
    """
    # A failure (e.g. a value JSON cannot hold) leaves the previous file as it was.
    text = json.dumps({**context, "metrics": metrics}, indent=2, sort_keys=False)
    atomic_write_text(path, text + "\n")
