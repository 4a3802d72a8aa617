"""Markdown tables of metrics in percent, in the shape of the paper's Tables 1-3."""

from collections.abc import Sequence

import numpy as np


def metric_columns(ks: Sequence[int]) -> list[tuple[str, str]]:
    """(metric key, column title) pairs: NMI then Recall@K, as the paper's tables."""
    return [("nmi", "NMI")] + [(f"recall@{k}", f"R@{k}") for k in ks]


def markdown_table(rows: dict[str, dict[str, float]], ks: Sequence[int]) -> str:
    """One row per named metrics dict, values in percent with two decimals.

    Args:
      rows: row name -> `fl_embed.evaluation.evaluate` dict (fractions).
      ks: the Recall@K columns.

    Returns:
      A Markdown table.
    """
    columns = metric_columns(ks)
    lines = [
        "| | " + " | ".join(title for _, title in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, metrics in rows.items():
        cells = [f"{100.0 * metrics[key]:.2f}" for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_spread_table(
    rows: dict[str, list[dict[str, float]]], ks: Sequence[int]
) -> str:
    """Mean ± spread over seeds per row, in percent; the spread is the sample standard deviation.

    Args:
      rows: row name -> one metrics dict per seed.
      ks: the Recall@K columns.

    Returns:
      A Markdown table with cells "mean ± std" (std 0 for a single seed).
    """
    columns = metric_columns(ks)
    lines = [
        "| | " + " | ".join(title for _, title in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, runs in rows.items():
        cells = []
        for key, _ in columns:
            values = 100.0 * np.array([run[key] for run in runs])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.2f} ± {spread:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
