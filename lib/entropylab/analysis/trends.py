"""Trends of a metric over epochs: the relative least-squares slope, the first-to-last change, and their verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: A trend is "decreasing"/"increasing" when the least-squares slope over the epochs, relative to the mean
#: absolute value, is below -TREND_TOLERANCE / above +TREND_TOLERANCE per epoch; else "flat".
TREND_TOLERANCE = 0.01
#: "Roughly constant": the relative change from the first to the last epoch is within ±FLAT_CHANGE.
FLAT_CHANGE = 0.10
#: Two values are "the same" when they differ by at most SAME_RELATIVE (relative to the larger).
SAME_RELATIVE = 0.005


def relative_slope(epochs: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against ``epochs`` divided by ``mean |values|`` (fraction per epoch).

    ``nan`` with fewer than two epochs or a zero mean.
    """
    x = np.asarray(epochs, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or not np.all(np.isfinite(y)):
        return math.nan
    scale = float(np.mean(np.abs(y)))
    if scale == 0.0:
        return math.nan
    slope = float(np.polyfit(x, y, 1)[0])
    return slope / scale


def relative_change(values: Sequence[float]) -> float:
    """``(last - first) / |first|``; ``nan`` with fewer than two values or a zero first value."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) < 2 or y[0] == 0 or not np.all(np.isfinite(y)):
        return math.nan
    return float((y[-1] - y[0]) / abs(y[0]))


def trend(slope: float, tolerance: float = TREND_TOLERANCE) -> str | None:
    """``"decreasing"``, ``"increasing"`` or ``"flat"`` for a relative slope; ``None`` if it is ``nan``."""
    if not math.isfinite(slope):
        return None
    return "decreasing" if slope < -tolerance else "increasing" if slope > tolerance else "flat"

