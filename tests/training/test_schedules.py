"""Tests of fl_embed.training.schedules: gamma's exponential decay (section 3.5)."""

import numpy as np
import pytest

from fl_embed.training import margin_multiplier_at, margin_multiplier_schedule


@pytest.mark.parametrize("step", [0, 1, 99, 100, 101, 250, 1000, 9999])
def test_staircase_decay_matches_closed_form(step):
    schedule = margin_multiplier_schedule(2.0, decay_steps=100, decay_rate=0.94)
    assert float(schedule(step)) == pytest.approx(2.0 * 0.94 ** (step // 100), rel=1e-6)


def test_smooth_decay_matches_closed_form():
    schedule = margin_multiplier_schedule(1.0, 1000, 0.94, staircase=False)
    steps = np.array([0, 500, 1500, 10_000])
    got = [float(schedule(int(s))) for s in steps]
    np.testing.assert_allclose(got, 0.94 ** (steps / 1000), rtol=1e-6)


def test_paper_budget_ends_at_the_documented_fraction():
    # BUILD_NOTES: the 1000-step default leaves 0.94**10 = 54% of gamma after CUB's 10k steps.
    assert margin_multiplier_at(10_000, 1.0, 1000) == pytest.approx(0.5386, abs=1e-4)


@pytest.mark.parametrize(
    "initial, steps, rate",
    [
        (-1.0, 10, 0.94),
        (1.0, 0, 0.94),
        (1.0, 2.5, 0.94),
        (1.0, 10, 0.0),
        (1.0, 10, 1.5),
    ],
)
def test_bad_arguments_raise(initial, steps, rate):
    with pytest.raises(ValueError):
        margin_multiplier_schedule(initial, steps, rate)
