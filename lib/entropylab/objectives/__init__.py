"""The training objectives: one registry (:mod:`.registry`), one module per family of objectives that registers them.

Importing this package imports every module in its folder (:func:`discover`), the paper's objectives first
(:mod:`.paper`, :mod:`.softmax`, :mod:`.power`, then the rest by file name), so adding an objective is one new
file here that calls :func:`register` (plus its lines in the parameter files). Nothing here imports Keras: an
objective's Keras formula is a function of ``keras.ops``, which :mod:`.keras_losses` passes when a loss is built
(:func:`keras_loss`, :func:`family_loss`, :class:`ObjectiveLoss`: loaded, with Keras, on first use).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any

from .registry import (
    FAMILIES,
    OBJECTIVES,
    PARAMETERS,
    Family,
    Objective,
    check_number,
    describe,
    family,
    family_coefficients,
    family_of,
    get,
    names,
    parameter_name,
    register,
    register_family,
    temporary,
    unregister,
)
from .terms import EPSILON, paper_entropy, paper_kl, paper_mse, softmax_cross_entropy, softmax_entropy

#: Imported first, in this order (the order of :func:`names`); then every other module of the folder by name.
FIRST = ("paper", "softmax", "power")
#: Modules of the folder that are not imported on discovery (they import Keras).
KERAS_MODULES = ("keras_losses",)
#: What :mod:`.keras_losses` provides, loaded with Keras on first access (``from entropylab.objectives import ...``).
_KERAS_NAMES = ("keras_loss", "family_loss", "ObjectiveLoss", "FamilyLoss", "PerExampleLoss")


def discover(package: str, path: Iterable[str], first: Iterable[str] = (), skip: Iterable[str] = ()) -> list[str]:
    """Import every module of ``package`` (its folder(s) ``path``): ``first`` in order, then the others by name,
    none of ``skip``; each registers its objectives on import. Returns the modules' names in import order."""
    found = sorted(m.name for m in pkgutil.iter_modules(list(path)) if not m.ispkg and not m.name.startswith("_"))
    first = [name for name in first if name in found]
    order = [*first, *(name for name in found if name not in first and name not in set(skip))]
    for name in order:
        importlib.import_module(f"{package}.{name}")
    return order


discover(__name__, __path__, FIRST, KERAS_MODULES)

from .paper import CONTROL, ENTROPY, KL, PAPER_OBJECTIVES  # noqa: E402 (registered by discover)
from .softmax import CROSS_ENTROPY  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _KERAS_NAMES:
        from . import keras_losses

        return getattr(keras_losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONTROL", "CROSS_ENTROPY", "ENTROPY", "EPSILON", "FAMILIES", "FIRST", "KL", "OBJECTIVES", "PAPER_OBJECTIVES",
    "PARAMETERS", "Family", "Objective", "check_number", "describe", "discover", "family", "family_coefficients",
    "family_of", "get", "names", "paper_entropy", "paper_kl", "paper_mse", "parameter_name", "register",
    "register_family", "softmax_cross_entropy", "softmax_entropy", "temporary", "unregister",
]  # not the Keras names: a star import loads no Keras
