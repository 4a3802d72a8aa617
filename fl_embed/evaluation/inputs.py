"""Checks of what the evaluation functions take: clear errors instead of numpy, scikit-learn or
silently wrong results."""

import numbers

import numpy as np

# Embeddings whose largest |x| lies outside [2**-32, 2**32] are rescaled by a power of two before
# float32 arithmetic: their squared distances would otherwise overflow to Inf (k-means then puts
# everything in one cluster) or underflow to 0. A power of two is exact, and neighbours and
# k-means clusters do not change under a uniform scale.
_SAFE_EXPONENT = 32


def check_embeddings(embeddings, caller: str) -> np.ndarray:
    """Embeddings as a float array [n, d]: real numbers, d >= 1, n >= 1, all finite.

    Args:
      embeddings: array-like [n, d] of integers or floats.
      caller: the public function's name, used in error messages.

    Returns:
      float64 [n, d] for float64 input, float32 [n, d] otherwise.

    Raises:
      ValueError: another rank, a dtype that is not a real number (bool, complex, strings,
        objects), d = 0, no rows, or NaN / Inf entries.
    """
    x = np.asarray(embeddings)
    real = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if x.ndim != 2 or not real:
        raise ValueError(
            f"{caller}: embeddings must be a numeric [n, d] array of real numbers, got shape "
            f"{x.shape}, dtype {x.dtype}."
        )
    if x.shape[1] == 0:
        raise ValueError(
            f"{caller}: embeddings have dimension d = 0 (shape {x.shape}); nothing to compare."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{caller}: no embeddings (shape {x.shape}).")
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{caller}: embeddings contain NaN or Inf "
            f"({np.count_nonzero(~np.isfinite(x))} entries)."
        )
    return x


def in_float32_range(x: np.ndarray) -> np.ndarray:
    """`x` (finite) times the power of two that brings its largest |x| near 1 when it is outside
    [2**-32, 2**32], else `x` itself; as float32."""
    largest = float(np.max(np.abs(x)))
    exponent = np.frexp(largest)[1] if largest > 0.0 else 0
    if abs(exponent) > _SAFE_EXPONENT:
        x = np.ldexp(x, -exponent)
    return x.astype(np.float32, copy=False)


def check_seed(seed, caller: str) -> None:
    """Raises ValueError unless `seed` is None or an integer in [0, 2**32) (k-means' range)."""
    valid = seed is None or (
        isinstance(seed, numbers.Integral)
        and not isinstance(seed, bool)
        and 0 <= seed < 2**32
    )
    if not valid:
        raise ValueError(
            f"{caller}: seed must be None or an integer in [0, 2**32), got {seed!r}."
        )


def check_positive_int(value, name: str, caller: str) -> None:
    """Raises ValueError unless `value` is an integer >= 1 (bools refused)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{caller}: {name} must be an integer >= 1, got {value!r}.")
