"""Confidence intervals and Welch's test against hand-computed textbook values."""

import math

import numpy as np
import pytest

from fl_embed.evaluation.statistics import confidence_interval, welch_test


def test_interval_matches_the_t_formula():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    interval = confidence_interval(values)
    # s = sqrt(2.5), t_{0.975, 4} = 2.7764451 (tables).
    assert interval.mean == pytest.approx(3.0)
    assert interval.half_width == pytest.approx(
        2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6
    )
    assert interval.n == 5


def test_interval_of_one_run_has_no_width():
    interval = confidence_interval([0.7])
    assert interval.mean == 0.7 and math.isnan(interval.half_width)


def test_welch_matches_a_hand_computation():
    a = np.array(
        [
            27.5,
            21.0,
            19.0,
            23.6,
            17.0,
            17.9,
            16.9,
            20.1,
            21.9,
            22.6,
            23.1,
            19.6,
            19.0,
            21.7,
            21.4,
        ]
    )
    b = np.array(
        [
            27.1,
            22.0,
            20.8,
            23.4,
            23.4,
            23.5,
            25.8,
            22.0,
            24.8,
            20.2,
            21.9,
            22.1,
            22.9,
            20.5,
            24.4,
        ]
    )
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    result = welch_test(a, b)
    # Welch (1947): t = -2.46 on these samples (Wikipedia's worked example 1), p = 0.021.
    assert result.t == pytest.approx(t)
    assert result.t == pytest.approx(-2.46, abs=0.01)
    assert result.p_value == pytest.approx(0.021, abs=0.001)
    assert result.significant
    assert not welch_test(a, b, alpha=0.01).significant


def test_welch_of_identical_constant_runs_is_no_difference():
    result = welch_test([0.5, 0.5], [0.5, 0.5])
    assert result.p_value == 1.0 and not result.significant


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: confidence_interval([]), "non-empty"),
        (lambda: confidence_interval([1.0, float("nan")]), "NaN"),
        (lambda: confidence_interval([1.0, 2.0], level=1.5), "level"),
        (lambda: welch_test([1.0], [1.0, 2.0]), "at least 2"),
        (lambda: welch_test([1.0, 2.0], [[1.0, 2.0]]), "1-D"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
