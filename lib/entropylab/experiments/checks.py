"""The checks a sweep makes before it trains anything (and ``--dry-run`` makes too): the counts, the outputs folder,
the command line against the parameter file, each point's split, and the file's study sections
(:data:`SECTION_CHECKS`). Each mistake is one line naming the file, key or option and the fix;
:func:`entropylab.experiments.sweep.validate` runs them all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .. import paths
from .addresses import scheduler_address_problem
from .execute import write_error
from .params import ParamSet, Point

__all__ = ["SECTION_CHECKS", "OutputsError", "check_counts", "check_options", "check_outputs", "check_splits",
           "check_writable", "where_to_run"]

#: The checks of a parameter file's study sections, by top-level key: ``module:function``, called with the file's
#: plan before anything runs (its sweep, a study's stages) and by ``--dry-run``; each raises a one-line error.
SECTION_CHECKS: dict[str, str] = {"decoding": "entropylab.studies.decoding.study:check_stage"}

def check_counts(workers: int | None, threads: int | None) -> None:
    """``--workers`` and ``--threads``, when given, are integers >= 1 (a ``ValueError`` otherwise)."""
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be an integer >= 1, got {value}")


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a file in it, or raise :class:`OutputsError` naming the folder and the fix."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise OutputsError(write_error(exc, folder)) from None


class OutputsError(ValueError):
    """The outputs folder cannot be written; the message names it and the fix."""


def check_outputs(output_root: str | os.PathLike | None = None) -> Path:
    """The outputs folder (``output_root``, else ``$ENTROPYLAB_OUTPUTS``, else ``<project>/outputs``), or an
    :class:`OutputsError` naming it and the fix when it, or the nearest existing folder above it, is a file or
    cannot be written. Creates nothing (``--dry-run`` calls it too)."""
    root = paths.outputs_dir(output_root).expanduser().absolute()
    fix = "give --output-root (or $ENTROPYLAB_OUTPUTS) a writable folder"
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        if existing == root:
            raise OutputsError(f"the outputs path {root} is a file, not a folder; {fix}")
        raise OutputsError(f"the outputs path {root} lies under {existing}, which is a file, not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputsError(f"cannot write the outputs folder {root} ({existing} is not writable); {fix}")
    return root


def check_options(param_set: ParamSet, *, scheduler: str | None = None, cluster: str | None = None,
                  engine: str | None = None) -> str:
    """Where the points would run (see :func:`where_to_run`) after checking the command line against the file: not
    ``--scheduler`` with ``--cluster``, and an engine that can train here (``fused`` needs JAX and no Dask); a
    ``ValueError`` naming the option and the fix otherwise. Probes no device."""
    from ..training.config import sweep_backend
    from .engines import resolve_engine

    where_to = where_to_run(scheduler, cluster, param_set.cluster)
    resolve_engine(engine or param_set.engine or "auto", sweep_backend(param_set.backend),
                   dask=where_to != "local-processes", probe=False)
    return where_to


def check_splits(path: Path, points: list[Point]) -> None:
    """Every point with a sequence cap must leave every side of its split non-empty (checked before any run)."""
    capped = [p for p in points if p.parameters.get("max_sequences") is not None]
    if not capped:
        return
    from ..data import DataError, load_corpus
    from ..training.config import SPLIT_SEED_FROM_SEED, SYNTHETIC_DATASETS

    corpora: dict[tuple, Any] = {}
    for point in capped:
        p = point.parameters
        options = (p.get("synthetic") or {}) if p["dataset"] in SYNTHETIC_DATASETS else {}
        key = (p["dataset"], p.get("data_dir"), tuple(sorted(options.items())))
        if key not in corpora:
            try:
                corpora[key] = load_corpus(p["dataset"], p.get("data_dir"), **options)
            except TypeError as exc:
                raise DataError(f"{path}: runs[{point.entry}]: synthetic: {exc}; use the options of the "
                                f"{p['dataset']!r} source (entropylab.data)") from None
        split_seed = p.get("split_seed", 0)
        split_seed = p.get("seed", 0) if split_seed == SPLIT_SEED_FROM_SEED else split_seed
        try:
            corpora[key].subset(p["max_sequences"]).split(p["split"], p["val_fraction"], split_seed,
                                                          p.get("test_fraction", 0.0))
        except (DataError, ValueError) as exc:
            raise DataError(f"{path}: runs[{point.entry}]: max_sequences {p['max_sequences']} is too small for the "
                            f"{p['split']!r} split ({exc}); raise max_sequences") from None


def where_to_run(scheduler: str | None, cluster: str | None, from_file: str | None) -> str:
    """``"local-processes"``, ``"local"`` (a Dask LocalCluster) or a scheduler address; the command line wins."""
    if scheduler and cluster:
        raise ValueError("give either --scheduler ADDRESS or --cluster local, not both")
    if cluster is not None and cluster != "local":
        raise ValueError(f"--cluster must be 'local' (a Dask LocalCluster here), got {cluster!r}; for a running "
                         f"cluster give its scheduler with --scheduler tcp://HOST:PORT")
    if scheduler is not None and (problem := scheduler_address_problem(scheduler)):
        raise ValueError(f"--scheduler: got {scheduler!r}; expected a Dask scheduler address tcp://HOST:PORT such as "
                         f"tcp://10.0.0.5:8786 (here: {problem})")
    return scheduler or cluster or from_file or "local-processes"
