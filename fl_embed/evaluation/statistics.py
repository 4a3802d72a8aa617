"""Seed-to-seed statistics of a comparison: a mean with its 95% confidence interval, and Welch's
t-test for two methods ("A Metric Learning Reality Check", Musgrave et al. 2020, reports means and
confidence intervals over runs; the paper reports single runs).

Both use Student's t distribution of the seed means (scipy, which scikit-learn already needs):
with 5 seeds the interval is mean +- 2.776 s / sqrt(5), not the normal 1.96.
"""

from typing import NamedTuple

import numpy as np
from scipy import stats


class Interval(NamedTuple):
    """Mean of n runs and the half-width of its confidence interval (mean +- half_width)."""

    mean: float
    half_width: float
    n: int


class Difference(NamedTuple):
    """Welch's two-sided t-test of mean(a) - mean(b)."""

    difference: float
    t: float
    p_value: float
    significant: bool


def _values(values, name: str) -> np.ndarray:
    """`values` as a finite float64 vector, else ValueError naming `name`."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D list of values, got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or Inf: {array.tolist()}.")
    return array


def confidence_interval(values, level: float = 0.95) -> Interval:
    """Mean and the t-interval half-width t_{(1+level)/2, n-1} * s / sqrt(n) of the runs' values.

    Args:
      values: one metric of n >= 1 runs (e.g. seeds); with n = 1 the half-width is NaN.
      level: confidence level in (0, 1).

    Returns:
      Interval(mean, half_width, n).

    Raises:
      ValueError: empty or non-finite values, or a level outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    array = _values(values, "values")
    n = array.size
    if n < 2:
        return Interval(float(array[0]), float("nan"), 1)
    sem = array.std(ddof=1) / np.sqrt(n)
    return Interval(
        float(array.mean()), float(stats.t.ppf((1 + level) / 2, n - 1) * sem), n
    )


def welch_test(a, b, alpha: float = 0.05) -> Difference:
    """Welch's unequal-variance two-sided t-test of mean(a) = mean(b).

    Two methods' seeds are independent runs, their variances need not agree (Welch 1947).
    Identical constant samples give p = 1 (no difference), not NaN.

    Args:
      a, b: one metric of each method's runs, at least 2 each.
      alpha: significance level of the `significant` verdict.

    Returns:
      Difference(mean(a) - mean(b), t, two-sided p, p < alpha).

    Raises:
      ValueError: fewer than 2 runs on a side, non-finite values, or alpha outside (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    a, b = _values(a, "a"), _values(b, "b")
    if a.size < 2 or b.size < 2:
        raise ValueError(
            f"Welch's test needs at least 2 runs a side, got {a.size} and {b.size}."
        )
    difference = float(a.mean() - b.mean())
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        t, p = (
            (0.0, 1.0) if difference == 0 else (float("inf") * np.sign(difference), 0.0)
        )
        return Difference(difference, t, p, p < alpha)
    t, p = stats.ttest_ind(a, b, equal_var=False)
    return Difference(difference, float(t), float(p), bool(p < alpha))
