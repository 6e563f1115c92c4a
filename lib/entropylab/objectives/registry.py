"""The registry of training objectives: what an objective states (:class:`Objective`), :func:`register`, look-ups.

No Keras here, nor in any objective module: an objective's Keras formula is a function of the ``keras.ops``
namespace, which the caller passes (:mod:`entropylab.objectives.keras_losses`), so configs, parameter files, the
command line and the explorer validate against the registry without loading TensorFlow.

An objective has at most one parameter, named for what it is (:data:`PARAMETERS`):

* ``weight``: a penalty weight ``w >= 0`` (the paper's entropy and KL penalties, the confidence penalty,
  entropy minimisation);
* ``smoothing``: the label-smoothing amount in ``[0, 1)``;
* ``exponent``: the power divergences' ``a``, ``b``, ``g`` (``> 0``; 1 is cross-entropy) and the generalized
  cross-entropy's ``q`` in ``(0, 1]``.

In configs and result tables the value is always the field ``weight`` (one numeric column across objectives);
the column ``parameter`` says which of the three it is. Its range is stated once, here, by the objective
(:meth:`Objective.check`); the Keras losses check values through it.

An objective may be *fused* (its runs of different values, and of other objectives of its family, share one
compiled program in the fused engine, :mod:`entropylab.training.fused`) only when it names a :class:`Family`,
one formula ``f(t, o; c)`` with per-run coefficients ``c``, and its coefficients as a function of its value.
By default it names none: its runs then share a program only with runs of the same value.

An objective that is a function of more than the outputs may also need the model's **head kernel** ``K`` (the
``d x V`` kernel of its last Dense layer, whose transpose ``E = K^T`` holds one output embedding per word): it says
so with ``needs_kernel=True``, and its ``per_example`` and ``reference`` then take ``K`` as a fifth argument (EMO,
:mod:`.emo`, whose transport cost comes from ``E``). The callers hand it the current kernel at every step
(:func:`entropylab.objectives.keras_loss`'s ``kernel``); such an objective names no family.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: The names an objective's parameter may have (``None``: it has none).
PARAMETERS = ("weight", "smoothing", "exponent")
HEADS = ("linear", "softmax")

#: ``(ops, labels, outputs, value) -> per-example values``: ``ops`` is :mod:`keras.ops`, ``labels`` int32 of shape
#: ``(B,)``, ``outputs`` ``(B, V)``, ``value`` the objective's parameter (0.0 without one); with ``needs_kernel``
#: a fifth argument, the head kernel ``K`` of shape ``(d, V)``.
PerExample = Callable[..., Any]
#: ``(labels, outputs, value) -> per-example values`` in float64 NumPy, the naive textbook formula (with
#: ``needs_kernel``, ``(labels, outputs, value, kernel)``).
Reference = Callable[..., np.ndarray]
#: ``(ops, labels, outputs, coefficients) -> per-example values`` of a family's formula.
Formula = Callable[[Any, Any, Any, Any], Any]


@dataclass(frozen=True, kw_only=True)
class Objective:
    """One objective, as every part of the project sees it.

    ``per_example`` is its Keras formula in a numerically stable form (a function of ``keras.ops``; its docstring
    gives the formula), ``reference`` the same formula written plainly in NumPy (what the tests check
    ``per_example`` against). ``family`` and ``coefficients`` (both or neither) make it fusable (module docstring).
    ``needs_kernel``: both formulas take the model's head kernel ``K`` (``d x V``) as a fifth argument.
    """

    name: str
    head: str
    per_example: PerExample
    reference: Reference | None
    parameter: str | None = None
    default: float = 0.0
    low: float = 0.0
    high: float = math.inf
    high_inclusive: bool = False
    low_inclusive: bool = True
    label: str = ""
    family: str | None = None
    coefficients: Callable[[float], tuple[float, ...]] | None = None
    needs_kernel: bool = False

    @property
    def takes_parameter(self) -> bool:
        return self.parameter is not None

    @property
    def fusable(self) -> bool:
        """Whether runs of different values (and of its family's other objectives) may share a compiled program."""
        return self.family is not None

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


@dataclass(frozen=True, kw_only=True)
class Family:
    """Several objectives as one formula ``formula(ops, labels, outputs, c)`` with per-run coefficients ``c``.

    Each member gives its coefficients as a function of its value (:attr:`Objective.coefficients`), and the formula
    at a member's coefficients computes exactly (bit for bit) that member's own ``per_example``. The formula uses
    ``c`` only in tensor arithmetic (no Python branch on it), so a fused group may give each run its own ``c``.
    """

    name: str
    head: str
    formula: Formula


#: Every registered objective by name, in registration order (the paper's first); a live mapping.
OBJECTIVES: dict[str, Objective] = {}
#: Every registered family by name; a live mapping.
FAMILIES: dict[str, Family] = {}


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


def _same_source(a: Callable, b: Callable) -> bool:
    """Two registrations of one name from the same module (a module imported again), not a clash."""
    return getattr(a, "__module__", None) == getattr(b, "__module__", None)


def register_family(family: Family) -> Family:
    """Add ``family`` (before the objectives that name it); returns it. A bad spec is a ``ValueError``."""
    if family.head not in HEADS:
        raise ValueError(f"family {family.name!r}: head must be one of {', '.join(HEADS)}, got {family.head!r}")
    if not callable(family.formula):
        raise ValueError(f"family {family.name!r}: formula must be a function (ops, labels, outputs, coefficients)")
    known = FAMILIES.get(family.name)
    if known is not None and not _same_source(known.formula, family.formula):
        raise ValueError(f"family {family.name!r} is registered twice ({known.formula.__module__} and "
                         f"{family.formula.__module__}); rename one")
    FAMILIES[family.name] = family
    return family


def register(objective: Objective) -> Objective:
    """Add ``objective`` to the registry; returns it (with its label defaulting to its name).

    Refused with a ``ValueError`` naming the fix: an unknown head or parameter name, a missing ``per_example`` or
    NumPy ``reference``, a default outside its range, a family not registered yet or of another head, a family
    without coefficients (or the reverse), a family for an objective that needs the head kernel, a name another
    module registered already.
    """
    name = objective.name
    if not (isinstance(name, str) and name.isidentifier() and name.islower()):
        raise ValueError(f"objective name {name!r}: use lower-case letters, digits and '_' (e.g. 'focal_loss')")
    if objective.head not in HEADS:
        raise ValueError(f"objective {name!r}: head must be one of {', '.join(HEADS)}, got {objective.head!r}")
    if objective.parameter is not None and objective.parameter not in PARAMETERS:
        raise ValueError(f"objective {name!r}: parameter must be None or one of {', '.join(PARAMETERS)}, "
                         f"got {objective.parameter!r}")
    if not callable(objective.per_example):
        raise ValueError(f"objective {name!r}: per_example must be a function (ops, labels, outputs, value)")
    if not callable(objective.reference):
        raise ValueError(f"objective {name!r} has no NumPy reference; give reference=(labels, outputs, value) -> "
                         f"per-example values, the plain textbook formula the tests check per_example against")
    if objective.takes_parameter:
        objective.check(objective.default)
    if (objective.family is None) != (objective.coefficients is None):
        raise ValueError(f"objective {name!r}: a fusable objective gives both family and coefficients (its "
                         f"coefficients in the family's formula as a function of its value); give both or neither")
    if objective.needs_kernel and objective.family is not None:
        raise ValueError(f"objective {name!r} needs the head kernel, which a family's formula does not receive; "
                         f"give it no family (its runs then share a program with runs of the same value)")
    if objective.family is not None:
        family = FAMILIES.get(objective.family)
        if family is None:
            raise ValueError(f"objective {name!r} names the family {objective.family!r}, which is not registered; "
                             f"register it first (families: {', '.join(FAMILIES) or 'none'})")
        if family.head != objective.head:
            raise ValueError(f"objective {name!r} ({objective.head} head) cannot join the family {family.name!r} "
                             f"({family.head} head)")
    known = OBJECTIVES.get(name)
    if known is not None and not _same_source(known.per_example, objective.per_example):
        raise ValueError(f"objective {name!r} is registered twice ({known.per_example.__module__} and "
                         f"{objective.per_example.__module__}); rename one")
    if not objective.label:
        objective = replace(objective, label=name.replace("_", " "))
    OBJECTIVES[name] = objective
    return objective


def unregister(name: str) -> None:
    """Remove the objective ``name`` (and nothing else); an unknown name is a ``ValueError``."""
    get(name)
    del OBJECTIVES[name]


@contextmanager
def temporary() -> Iterator[None]:
    """Within the block, registrations (objectives and families) may be added or removed; on exit the registry is
    as it was before (for tests and scratch objectives)."""
    objectives, families = dict(OBJECTIVES), dict(FAMILIES)
    try:
        yield
    finally:
        OBJECTIVES.clear()
        OBJECTIVES.update(objectives)
        FAMILIES.clear()
        FAMILIES.update(families)


def names() -> list[str]:
    """Every objective's name, the paper's first."""
    return list(OBJECTIVES)


def get(name: str) -> Objective:
    """The objective called ``name``; an unknown name is a ``ValueError`` that lists the known ones."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective (loss) {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def family(name: str) -> Family:
    """The family called ``name``; an unknown name is a ``ValueError`` that lists the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of(name: str) -> str | None:
    """The family the objective ``name`` belongs to (``None``: it is not fusable)."""
    return get(name).family


def family_coefficients(name: str, value: float) -> tuple[float, ...]:
    """The objective ``name``'s coefficients at ``value`` in its family's formula."""
    objective = get(name)
    if objective.coefficients is None:
        raise ValueError(f"objective {name!r} belongs to no family; fusable objectives: "
                         f"{', '.join(n for n, o in OBJECTIVES.items() if o.fusable)}")
    return tuple(objective.coefficients(value))


def parameter_name(name: str) -> str:
    """What the objective's number is (``weight``, ``smoothing``, ``exponent``; ``none`` without one)."""
    return get(name).parameter or "none"


def describe(name: str, value: float) -> str:
    """See :meth:`Objective.describe`; unknown objectives are described as ``name value``."""
    return OBJECTIVES[name].describe(value) if name in OBJECTIVES else f"{name} {float(value):g}"
