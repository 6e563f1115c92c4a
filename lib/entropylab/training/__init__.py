"""Training one run: its config and identity, the training loop, its callbacks and its folder on disk.

``RunConfig``, ``RunResult``, ``run`` and ``load_trained`` are available from here; importing the package loads
nothing heavy until one of them is used (the command line's ``--help`` stays fast).
"""

from typing import Any

__all__ = ["RunConfig", "RunResult", "load_trained", "run"]


def __getattr__(name: str) -> Any:
    if name == "RunConfig":
        from .config import RunConfig

        return RunConfig
    if name in ("RunResult", "load_trained", "run"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module 'entropylab.training' has no attribute {name!r}")
