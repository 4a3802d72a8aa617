"""Tests of experiments/reporting.py: the progress line and the Markdown tables."""

import numpy as np
import pytest

from experiments.reporting import Progress, format_duration, markdown_table


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_rate_and_eta_come_from_the_last_window():
    clock = FakeClock()
    progress = Progress(total_steps=1000, start_step=200, clock=clock)
    clock.now += 10.0
    line = progress.line(250, {"loss": 1.5})
    assert "step 250/1000 (25%)" in line and "loss 1.5" in line
    assert "5.00 steps/s" in line and "ETA 2m30s" in line
    clock.now += 1.0
    assert "50.00 steps/s" in progress.line(300, {})


def test_format_duration():
    assert format_duration(7.2) == "7s"
    assert format_duration(245) == "4m05s"
    assert format_duration(3723) == "1h02m03s"
    assert format_duration(-3) == "0s"


def test_mean_spread_matches_numpy():
    runs = [
        {"nmi": 0.5, "recall@1": 0.7},
        {"nmi": 0.6, "recall@1": 0.8},
        {"nmi": 0.7, "recall@1": 0.6},
    ]
    table = markdown_table({"clustering": runs}, ks=(1,))
    nmi = 100 * np.array([0.5, 0.6, 0.7])
    expected = (
        f"| clustering | {nmi.mean():.2f} ± {nmi.std(ddof=1):.2f} | 70.00 ± 10.00 |"
    )
    assert table.splitlines()[0] == "| | NMI | R@1 |"
    assert table.splitlines()[2] == expected


def test_markdown_table_rows_in_percent():
    table = markdown_table({"a": {"nmi": 0.12345, "recall@1": 1.0}}, ks=(1,))
    assert table.splitlines()[2] == "| a | 12.35 | 100.00 |"


def test_without_ks_every_metric_is_a_column_in_order():
    table = markdown_table({"run": {"nmi": 0.5, "recall@8": 0.25, "map@r": 0.125}})
    assert table.splitlines()[0] == "| | NMI | recall@8 | map@r |"
    assert table.splitlines()[2] == "| run | 50.00 | 25.00 | 12.50 |"


def test_ci95_spread_is_the_t_interval_and_extra_columns_follow_recall():
    runs = [
        {"nmi": v, "recall@1": v, "map@r": v / 2, "r_precision": v / 2}
        for v in (0.1, 0.2, 0.3)
    ]
    table = markdown_table({"loss": runs}, ks=(1,), spread="ci95", extra=("map@r",))
    header, _, row = table.splitlines()
    assert header == "| | NMI | R@1 | MAP@R |"
    # t_{0.975, 2} = 4.3027 (tables); s = 10 points, n = 3.
    assert (
        row
        == f"| loss | 20.00 ± {4.3027 * 10 / 3**0.5:.2f} | 20.00 ± 24.84 | 10.00 ± 12.42 |"
    )
    with pytest.raises(ValueError, match="Unknown spread"):
        markdown_table({"loss": runs}, ks=(1,), spread="sem")
