"""Statistics over seeds: the 95 % t-interval of a mean (linear and log scale), the geometric mean, and the paired
comparison of two configurations seed by seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``, the two-sided 95% quantile of Student's t."""
    if df < 1:
        raise ValueError("a t-interval needs at least two values (df >= 1)")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def seed_band(values: Sequence[float]) -> tuple[float, float]:
    """95% t-interval of the mean of ``values`` (one per seed): ``mean ± t_{0.975, n-1} · sd / sqrt(n)``.

    A single value gives the degenerate interval ``(value, value)``.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean
    half = t_quantile_975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean - half, mean + half


def geometric_mean(values: Sequence[float]) -> float:
    """``exp(mean(log x))``: the centre of a band drawn on a log axis."""
    x = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.log(x))))


def log_seed_band(values: Sequence[float]) -> tuple[float, float]:
    """:func:`seed_band` of ``log x``, exponentiated: a positive band around the geometric mean (log axes)."""
    low, high = seed_band(np.log(np.asarray(values, dtype=np.float64)))
    return math.exp(low), math.exp(high)


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of the seed-by-seed differences ``d_s = values_s - baseline_s`` (pairs where both
    are finite): their mean and its 95 % t-interval ``mean(d) ± t_{0.975, n-1} · sd(d) / sqrt(n)``, the paired
    t-test's interval (it excludes 0 exactly when the two-sided paired t-test rejects at 5 %)."""
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need one per seed on both sides, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    low, high = seed_band(d)
    return (float(d.mean()) if len(d) else math.nan), low, high, len(d)


def paired_verdict(values: Sequence[float], baseline: Sequence[float], lower_is_better: bool = True,
                   min_pairs: int = 3) -> str:
    """``better``, ``worse`` or ``no difference`` against ``baseline``, seed by seed: better (worse) when the 95 %
    t-interval of the mean paired difference lies entirely on the better (worse) side of 0; ``too few seeds``
    with fewer than ``min_pairs`` finite pairs."""
    _, low, high, n = paired_difference(values, baseline)
    if n < min_pairs:
        return "too few seeds"
    if high < 0 or low > 0:
        return "better" if (high < 0) == lower_is_better else "worse"
    return "no difference"
