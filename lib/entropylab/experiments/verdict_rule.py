"""The ``verdicts`` section of a parameter file: the verdict rule a study fixes before its runs train."""

from __future__ import annotations

import math
from typing import Any

VERDICT_KEYS = ("smallest_effect", "min_seeds")


class VerdictRuleError(ValueError):
    """A mistake in the section: ``key`` names where (``verdicts.<...>``), the message what is expected."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def read_verdict_rule(value: Any) -> dict[str, Any] | None:
    """The section checked: ``smallest_effect`` (metric name -> the smallest difference worth reporting, a finite
    number >= 0 in the metric's units) and ``min_seeds`` (an integer >= 2: fewer pairs get no verdict); ``None``
    without a section."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise VerdictRuleError("verdicts", f"got {value!r}; expected a mapping with {' and '.join(VERDICT_KEYS)}")
    for name in value:
        if name not in VERDICT_KEYS:
            raise VerdictRuleError(f"verdicts.{name}", f"unknown key; expected one of {', '.join(VERDICT_KEYS)}")
    effects = value.get("smallest_effect") or {}
    if not isinstance(effects, dict):
        raise VerdictRuleError("verdicts.smallest_effect", f"got {effects!r}; expected a mapping of metric: effect")
    checked: dict[str, float] = {}
    for metric, effect in effects.items():
        try:
            number = float(effect) if not isinstance(effect, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise VerdictRuleError(f"verdicts.smallest_effect.{metric}", f"got {effect!r}; expected a finite number "
                                                                         f">= 0 (the smallest difference worth "
                                                                         f"reporting)")
        checked[str(metric)] = number
    min_seeds = value.get("min_seeds", 5)
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 2:
        raise VerdictRuleError("verdicts.min_seeds", f"got {min_seeds!r}; expected an integer >= 2 (fewer seeds get "
                                                     f"no verdict)")
    return {"smallest_effect": checked, "min_seeds": min_seeds}
