"""Presenting evaluation results: a table as in the paper's and a JSON record."""

import json
import os
import tempfile
from typing import Any


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
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    # Written to a temporary sibling and renamed: a reader never sees half a file, and a failure
    # (e.g. a value JSON cannot hold) leaves the previous file as it was.
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".metrics.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({**context, "metrics": metrics}, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
