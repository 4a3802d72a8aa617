"""experiments/bench_inference_gap: its exhaustive objective against tests/losses/reference.py, and
a tiny run end to end."""

import numpy as np
import pytest

from experiments import bench_inference_gap as bench
from tests.experiments.conftest import run_module
from tests.losses import reference


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("gamma", [1.0, 10.0])
def test_exhaustive_maximum_matches_the_reference_enumeration(seed, gamma):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 4))
    y = np.arange(8) % 3
    d = bench.distances(x)
    subsets, energy, nmi = bench.exhaustive_objective(d, y)
    values = energy + gamma * (1.0 - nmi)
    assert values.max() == pytest.approx(reference.exact_max(d, y, gamma), rel=1e-9)
    for row in (0, len(subsets) // 2, len(subsets) - 1):
        expected = reference.augmented(d, y, list(subsets[row]), gamma, "nmi")
        assert values[row] == pytest.approx(expected, rel=1e-9)
        assert bench.objective(d, y, subsets[row], gamma) == pytest.approx(expected)
    assert bench.oracle_score(d, y) == pytest.approx(reference.oracle(d, y))


def test_tiny_run_prints_a_row_per_source_gamma_and_algorithm():
    result = run_module(
        "experiments.bench_inference_gap",
        "--m=6",
        "--ks=2,3",
        "--gammas=1,100",
        "--batches=2",
        "--train_steps=1",
        "--inference=graph",
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2 * 2 * 2  # header, then source x gamma x algorithm
    assert any(row.startswith("| glyphs | 100 | greedy + PAM |") for row in rows)
