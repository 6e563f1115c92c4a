"""nbval on the reference notebooks: a fresh outputs folder, and the references of the corpus this machine has.

The reference notebooks (``make nbval-refresh``) were executed on the smoke profile with a fixed number of
TensorFlow threads (set here too, since the numbers depend on it), once on the NYT headlines (``nyt/``) and once on
the project's synthetic corpus (``synthetic/``); their checked cells (``# NBVAL_CHECK_OUTPUT``) hold the corpus
counts, metric tables and generated words, which only the same data reproduces. Where the NYT files are found the
NYT references are checked, else the synthetic ones (so every machine checks its notebooks). They must train into
an empty outputs folder: a finished run folder would be reused and nothing recomputed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

OUTPUTS_ENV_VAR = "ENTROPYLAB_OUTPUTS"
_created: list[Path] = []


def _nbval_on(config: pytest.Config) -> bool:
    return bool(config.getoption("nbval", False) or config.getoption("nbval_lax", False))


def _smoke_threads() -> int:
    import importlib.util

    spec = importlib.util.spec_from_file_location("nbval_refresh", Path(__file__).with_name("refresh.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.smoke_threads()


def pytest_configure(config: pytest.Config) -> None:
    if not _nbval_on(config):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the numbers depend on TensorFlow's thread count: the references' count, whatever the machine's cores
    os.environ["ENTROPYLAB_THREADS"] = str(_smoke_threads())
    given = os.environ.get(OUTPUTS_ENV_VAR)
    if not given:
        folder = Path(tempfile.mkdtemp(prefix="entropylab-nbval-"))
        _created.append(folder)
        os.environ[OUTPUTS_ENV_VAR] = str(folder)
    elif Path(given).is_dir() and any((Path(given) / "runs").glob("*/*")):
        raise pytest.UsageError(
            f"${OUTPUTS_ENV_VAR}={given} already holds runs: nbval would reuse them and recompute nothing. "
            f"Point it to an empty folder, e.g. {OUTPUTS_ENV_VAR}=$(mktemp -d), or leave it unset.")


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _created:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _nbval_on(config):
        return
    from entropylab.data import find_nyt_dir

    other = "synthetic" if find_nyt_dir(None) is not None else "nyt"
    reason = ("the NYT files are here: their references are checked instead" if other == "synthetic" else
              "no NYT files here: the synthetic corpus's references are checked instead")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" and path.parent.name == other:
            item.add_marker(skip)
