"""The training objectives by name: their head, what their one parameter is and its range (no Keras import).

This is the one place that names the objectives; :mod:`entropylab.losses` implements them as Keras losses,
and configs, parameter files, the command line and the explorer validate against this table without
loading TensorFlow. The formulas are in each loss's docstring (:mod:`entropylab.losses`).

An objective has at most one parameter, named for what it is:

* ``weight``: a penalty weight ``w >= 0`` (the paper's entropy and KL penalties, the confidence penalty,
  entropy minimisation);
* ``smoothing``: the label-smoothing amount in ``[0, 1)``;
* ``exponent``: the power divergences' ``a``, ``b``, ``g`` (``> 0``; 1 is cross-entropy) and the generalized
  cross-entropy's ``q`` in ``(0, 1]``.

In configs and result tables the value is always the field ``weight`` (one numeric column across
objectives); the column ``parameter`` says which of the three it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EPSILON = 1e-7  # Keras' epsilon

#: The paper's objectives (§4.1-§4.3), named once for the whole project.
CONTROL = "mse"
ENTROPY = "entropy_regularized"
KL = "kl_regularized"
CROSS_ENTROPY = "cross_entropy"
PAPER_OBJECTIVES = (CONTROL, ENTROPY, KL)


@dataclass(frozen=True)
class Objective:
    """One objective: its name, the head its outputs come from, and its parameter (``None``: it has none)."""

    name: str
    head: str
    parameter: str | None = None
    default: float = 0.0
    low: float = 0.0
    high: float = math.inf
    high_inclusive: bool = False
    low_inclusive: bool = True
    label: str = ""

    @property
    def takes_parameter(self) -> bool:
        return self.parameter is not None

    def range_text(self) -> str:
        left = "[" if self.low_inclusive else "("
        right = "]" if self.high_inclusive else ")"
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"{left}{self.low:g}, {high}{right}"

    def check(self, value: Any) -> float:
        """``value`` as a float inside this objective's range; a ``ValueError`` naming the fix otherwise."""
        number = check_number(value, self.parameter or "weight")
        if not self.takes_parameter:
            if number != 0.0:
                raise ValueError(f"objective {self.name!r} has no parameter (got {number:g}); objectives with one: "
                                 f"{', '.join(n for n, o in OBJECTIVES.items() if o.takes_parameter)}")
            return 0.0
        below = number < self.low if self.low_inclusive else number <= self.low
        above = number > self.high if self.high_inclusive else number >= self.high
        if below or above:
            raise ValueError(f"{self.name}: {self.parameter} must be in {self.range_text()}, got {number:g}")
        return number

    def describe(self, value: float) -> str:
        """``kl_regularized weight=10``, ``alpha_divergence exponent=1.5``, ``mse``: a run's objective in words."""
        return f"{self.name} {self.parameter}={float(value):g}" if self.takes_parameter else self.name


def check_number(value: Any, name: str = "weight") -> float:
    """A finite number as a float; NaN, infinite, negative and non-numbers are refused with the fix."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{name} must be finite, got {number}; use a non-negative number such as 10")
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number:g}; the sign of each penalty is fixed by its objective")
    return number


_EXPONENT = {"parameter": "exponent", "default": 1.0, "low": 0.0, "low_inclusive": False}
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective(CONTROL, "linear", label="control (MSE)"),
    Objective(ENTROPY, "linear", "weight", 1e-7, label="entropy penalty"),
    Objective(KL, "linear", "weight", 10.0, label="KL penalty"),
    Objective(CROSS_ENTROPY, "softmax", label="cross-entropy"),
    Objective("confidence_penalty", "softmax", "weight", 0.1, label="confidence penalty"),
    Objective("entropy_minimization", "softmax", "weight", 0.1, label="entropy minimisation"),
    Objective("label_smoothing", "softmax", "smoothing", 0.1, 0.0, 1.0, label="label smoothing"),
    Objective("alpha_divergence", "softmax", **_EXPONENT, label="alpha divergence"),
    Objective("beta_divergence", "softmax", **_EXPONENT, label="beta divergence"),
    Objective("gamma_divergence", "softmax", **_EXPONENT, label="gamma divergence"),
    Objective("generalized_cross_entropy", "softmax", "exponent", 0.5, 0.0, 1.0, high_inclusive=True,
              low_inclusive=False, label="generalized cross-entropy"),
)}


def names() -> list[str]:
    """Every objective's name, the paper's first."""
    return list(OBJECTIVES)


def get(name: str) -> Objective:
    """The objective called ``name``; an unknown name is a ``ValueError`` that lists the known ones."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective (loss) {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def parameter_name(name: str) -> str:
    """What the objective's number is (``weight``, ``smoothing``, ``exponent``; ``none`` without one)."""
    return get(name).parameter or "none"


def describe(name: str, value: float) -> str:
    """See :meth:`Objective.describe`; unknown objectives are described as ``name value``."""
    return OBJECTIVES[name].describe(value) if name in OBJECTIVES else f"{name} {float(value):g}"
