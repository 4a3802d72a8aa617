"""The JSON record of evaluation results (tables: `experiments/reporting.py`)."""

import json
import math
import numbers
import os
from typing import Any

from fl_embed.io import atomic_write_text


def write_metrics_json(path: str, metrics: dict[str, float], **context: Any) -> None:
    """Write {"metrics": metrics, **context} as JSON, creating the parent directory.

    Args:
      path: output file.
      metrics: metric name -> fraction in [0, 1].
      **context: JSON-serialisable facts about the run (input path, sizes, ks, seed).

    Raises:
      ValueError: a metric that is not a finite number.
      IsADirectoryError: `path` is a directory.
      TypeError: a context value JSON cannot hold.
    """
    for name, value in metrics.items():
        # JSON has no NaN; a non-finite or non-numeric metric means the evaluation went wrong.
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(
                f"write_metrics_json: metric {name!r} must be a finite number, got {value!r}."
            )
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"write_metrics_json: {path!r} is a directory, not a file."
        )
    # A failure (e.g. a value JSON cannot hold) leaves the previous file as it was.
    text = json.dumps(
        {**context, "metrics": {k: float(v) for k, v in metrics.items()}},
        indent=2,
        sort_keys=False,
        allow_nan=False,
    )
    atomic_write_text(path, text + "\n")
