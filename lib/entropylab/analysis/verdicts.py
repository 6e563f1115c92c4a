"""The verdict of a comparison that holds up: a paired test corrected for the table's other comparisons, and an
effect size that is worth reporting, both fixed before the run.

For one comparison, the seed-by-seed differences ``d_s = x_s - b_s`` (the objective minus the baseline, each pair
sharing a seed and its split seed) give ``n``, the mean ``d̄``, ``se = sd(d) / sqrt(n)`` and the paired t-test's
two-sided p-value ``p = 2 · P(T_{n-1} >= |d̄| / se)``. Over the ``m`` comparisons of one table the p-values are
corrected by Holm and Bonferroni's step-down rule: sorted ascending, ``p_(i)`` becomes
``max_{j <= i} min(1, (m - j + 1) · p_(j))``. With ``δ`` the smallest effect worth reporting for the metric (stated
in the parameter file) and ``α`` the level (5 %):

* ``better`` (``worse``): the corrected ``p < α`` and ``|d̄| >= δ`` on the better (worse) side;
* ``no difference``: the 95 % t-interval of ``d̄`` lies inside ``[-δ, δ]``, so any real difference is smaller than
  worth reporting (this includes a small difference that the test finds significant);
* ``inconclusive``: anything else (the interval reaches past ``δ`` but the corrected test or the effect does not
  say better or worse: more seeds would be needed);
* ``too few seeds``: fewer than ``min_pairs`` finite pairs; the verdict is refused, not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .stats import paired_difference

#: The significance level of every corrected test.
ALPHA = 0.05
#: The fewest seeds (pairs) a verdict is given on.
MIN_PAIRS = 5
VERDICTS = ("better", "worse", "no difference", "inconclusive", "too few seeds")


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: the mean difference ``d̄`` with its 95 % t-interval, ``n`` pairs and the paired
    t-test's uncorrected two-sided p-value (NaN with fewer than two pairs or no spread)."""

    mean: float
    low: float
    high: float
    n: int
    p: float


def paired_test(values: Sequence[float], baseline: Sequence[float]) -> Comparison:
    """The paired t-test of ``values`` against ``baseline``, seed by seed (module docstring). Differences with no
    spread at all give ``p = 0`` when their mean is not 0 (every seed agrees exactly) and 1 when it is."""
    from scipy import stats

    mean, low, high, n = paired_difference(values, baseline)
    if n < 2:
        return Comparison(mean, low, high, n, math.nan)
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return Comparison(mean, low, high, n, 0.0 if mean != 0.0 else 1.0)
    t = abs(mean) / (sd / math.sqrt(n))
    return Comparison(mean, low, high, n, float(2.0 * stats.t.sf(t, n - 1)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order (NaN stays NaN and does not count in ``m``)."""
    p = np.asarray(pvalues, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    m = len(finite)
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def verdict(comparison: Comparison, corrected_p: float, smallest_effect: float, lower_is_better: bool = True,
            alpha: float = ALPHA, min_pairs: int = MIN_PAIRS) -> str:
    """One of :data:`VERDICTS` for ``comparison`` given its corrected p-value and the metric's smallest effect
    worth reporting ``smallest_effect`` (``δ >= 0``; module docstring)."""
    if not (smallest_effect >= 0 and math.isfinite(smallest_effect)):
        raise ValueError(f"the smallest effect must be a finite number >= 0, got {smallest_effect!r}")
    if comparison.n < min_pairs:
        return "too few seeds"
    if corrected_p < alpha and abs(comparison.mean) >= smallest_effect and comparison.mean != 0:
        return "better" if (comparison.mean < 0) == lower_is_better else "worse"
    if -smallest_effect <= comparison.low and comparison.high <= smallest_effect:
        return "no difference"
    return "inconclusive"


def table_verdicts(comparisons: Sequence[Comparison], smallest_effects: Sequence[float],
                   lower_is_better: Sequence[bool], alpha: float = ALPHA, min_pairs: int = MIN_PAIRS
                   ) -> list[tuple[float, str]]:
    """``(corrected p, verdict)`` of each comparison of one table, Holm's correction taken over all of them."""
    if not len(comparisons) == len(smallest_effects) == len(lower_is_better):
        raise ValueError("one smallest effect and one direction per comparison")
    corrected = holm([c.p if c.n >= min_pairs else math.nan for c in comparisons])
    return [(p, verdict(c, p, effect, lower, alpha, min_pairs))
            for c, p, effect, lower in zip(comparisons, corrected, smallest_effects, lower_is_better, strict=True)]
