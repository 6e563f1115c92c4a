"""Import paths of the flat layout (before the studies layout) as aliases of the modules that now hold them.

``import entropylab.train`` gives :mod:`entropylab.training` (``RunConfig``, ``run``, ``load_trained``),
``entropylab.generate`` gives :mod:`entropylab.decoding`, and so on (:data:`ALIASES`), so a user's notebook or
script written for the old paths keeps working; new code uses the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: Old module -> the module that holds its public names now.
ALIASES = {
    "entropylab.train": "entropylab.training",
    "entropylab.runs": "entropylab.training.store",
    "entropylab.generate": "entropylab.decoding",
    "entropylab.synthetic": "entropylab.data.synthetic",
    "entropylab.download": "entropylab.data.download",
    "entropylab.params": "entropylab.experiments.params",
    "entropylab.sweep": "entropylab.experiments.sweep",
    "entropylab.reproduce": "entropylab.experiments.reproduce",
    "entropylab.widgets": "entropylab.explorer",
    "entropylab.naive": "entropylab.bench.naive",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:  # the target module is already executed
        return None


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in ALIASES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
