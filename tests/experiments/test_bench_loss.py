"""experiments/bench_loss.py prints its table (a smoke run; its timings are not checked)."""

import pytest

from tests.experiments.conftest import run_module


def test_bench_loss_prints_a_row_per_size_and_ratio_with_the_numpy_comparison():
    result = run_module(
        "experiments.bench_loss",
        "--sizes=12,16",
        "--ratios=0.25",
        "--repeats=2",
        "--numpy_max_m=12",
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1")]
    assert len(rows) == 2, result.stdout
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[:3] for c in cells] == [["12", "3", "12"], ["16", "4", "16"]]
    for c in cells:
        assert all(float(v) > 0 for v in c[3:6])
    assert float(cells[0][6]) > 0 and cells[0][7].endswith("x")
    assert cells[1][6:] == ["-", "-"]  # above --numpy_max_m


@pytest.mark.parametrize(
    "flag, named",
    [
        ("--sizes=abc", "--sizes"),
        ("--sizes=0", "--sizes"),
        ("--ratios=1.5", "--ratios"),
    ],
)
def test_bench_loss_refuses_bad_sizes_and_ratios_naming_the_flag(flag, named):
    result = run_module("experiments.bench_loss", flag, check=False)
    assert result.returncode != 0
    assert f"{named} takes" in result.stderr
    assert "Traceback" not in result.stderr
