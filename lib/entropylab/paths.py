"""Where the project's folders are, wherever a notebook or command is started from."""

from __future__ import annotations

import os
from pathlib import Path

OUTPUTS_ENV_VAR = "ENTROPYLAB_OUTPUTS"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with ``params/`` and
    ``pyproject.toml``; else the checkout this package was installed from; else the working directory."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "params").is_dir():
            return folder
    source_checkout = Path(__file__).resolve().parents[2]
    if (source_checkout / "pyproject.toml").is_file():
        return source_checkout
    return here


def outputs_dir(output_root: str | os.PathLike | None = None) -> Path:
    """``output_root`` if given, else ``$ENTROPYLAB_OUTPUTS``, else ``<project root>/outputs``."""
    if output_root is not None:
        return Path(output_root)
    env = os.environ.get(OUTPUTS_ENV_VAR)
    return Path(env) if env else project_root() / "outputs"


def runs_dir(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the runs of one experiment: ``<outputs>/runs/<experiment>``."""
    return outputs_dir(output_root) / "runs" / experiment
