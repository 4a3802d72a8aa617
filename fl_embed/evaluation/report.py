"""The JSON record of evaluation results (tables: `experiments/reporting.py`)."""

import json
from typing import Any

from fl_embed.io import atomic_write_text


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
