"""Tests of fl_embed.training.tables: the Markdown tables of the comparison."""

import numpy as np

from fl_embed.training import markdown_table, mean_spread_table


def test_mean_spread_matches_numpy():
    runs = [
        {"nmi": 0.5, "recall@1": 0.7},
        {"nmi": 0.6, "recall@1": 0.8},
        {"nmi": 0.7, "recall@1": 0.6},
    ]
    table = mean_spread_table({"clustering": runs}, ks=(1,))
    nmi = 100 * np.array([0.5, 0.6, 0.7])
    expected = (
        f"| clustering | {nmi.mean():.2f} ± {nmi.std(ddof=1):.2f} | 70.00 ± 10.00 |"
    )
    assert table.splitlines()[0] == "| | NMI | R@1 |"
    assert table.splitlines()[2] == expected


def test_markdown_table_rows_in_percent():
    table = markdown_table({"a": {"nmi": 0.12345, "recall@1": 1.0}}, ks=(1,))
    assert table.splitlines()[2] == "| a | 12.35 | 100.00 |"
