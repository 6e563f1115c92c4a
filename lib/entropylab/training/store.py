"""Run folders on disk: atomic writes, the completion marker written last, identity checks, reading runs back.

A run folder holds ``config.json`` (the run's resolved config: its identity and where its data was),
``history.csv``, ``metrics.json``, ``model.weights.h5``, ``progress.json`` while it trains and, written last,
``COMPLETE`` (or ``FAILED`` with the reason), then, only with ``ENTROPYLAB_PHASE_TIMES=1``, ``phases.json``
(:mod:`entropylab.training.phases`). A folder without ``COMPLETE`` is never a finished run, and a
folder is the run of exactly one identity (:func:`identity_state`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

COMPLETE = "COMPLETE"
FAILED = "FAILED"
CONFIG = "config.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
WEIGHTS = "model.weights.h5"
PROGRESS = "progress.json"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``; when that fails the temporary
    file is removed and the ``OSError`` names ``path`` (:func:`naming_path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file is as readable as any other
    try:
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:  # a full disk's error names no file: name this one
            raise naming_path(exc, path) from exc
        raise


def naming_path(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` as an ``OSError`` that names ``path`` when it names no file (h5py's and a write's ``ENOSPC`` do not),
    with the system's one-line reason for its ``errno`` (h5py's own text spans lines); else ``exc`` itself."""
    if exc.filename:
        return exc
    reason = os.strerror(exc.errno) if isinstance(exc.errno, int) else (exc.strerror or str(exc) or type(exc).__name__)
    return OSError(exc.errno, reason.splitlines()[0] if reason else type(exc).__name__, str(path))


def atomic_save_weights(model: Any, path: str | os.PathLike) -> None:
    """Save ``model``'s weights to ``.partial-<name>`` beside ``path``, then rename it over ``path``: a reader sees
    the old file or the whole new one. When saving fails (a full disk) the partial file is removed and the
    ``OSError`` names ``path`` (:func:`naming_path`)."""
    path = Path(path)
    partial = path.with_name(f".partial-{path.name}")
    try:
        model.save_weights(partial)
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:
            raise naming_path(exc, path) from exc
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf8"))


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def is_complete(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / COMPLETE).is_file()


def is_failed(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / FAILED).is_file()


def clear_markers(run_dir: str | os.PathLike) -> None:
    for name in (COMPLETE, FAILED):
        (Path(run_dir) / name).unlink(missing_ok=True)


def mark_complete(run_dir: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)
    write_json(Path(run_dir) / COMPLETE, info or {})


def mark_failed(run_dir: str | os.PathLike, reason: str) -> None:
    """Record why the last attempt failed. A finished run (``COMPLETE``) is never unmarked: what failed after
    its training finished (its notebook, a worker) is retried without retraining it."""
    write_json(Path(run_dir) / FAILED, {"reason": reason})


def stored_identity(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The identity in a run folder's ``config.json`` (everything but ``data_dir``), ``None`` if unreadable."""
    try:
        stored = read_json(Path(run_dir) / CONFIG)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    stored.pop("data_dir", None)
    from .config import LATER_FIELDS

    for name, default in LATER_FIELDS.items():  # as RunConfig.identity leaves them out
        if name in stored and stored[name] == default:
            stored.pop(name)
    return stored


def identity_state(run_dir: str | os.PathLike, identity: dict[str, Any]) -> str:
    """How a folder relates to a run of ``identity``: ``"empty"`` (no config yet), ``"same"`` (this run, finished
    or not) or ``"other"`` (another config's run: never reuse or overwrite it silently)."""
    if not (Path(run_dir) / CONFIG).is_file():
        return "empty"
    return "same" if stored_identity(run_dir) == identity else "other"


def read_progress(run_dir: str | os.PathLike) -> float:
    """Epochs done (fractional) of a training run, from its ``progress.json``; 0 when there is none yet."""
    try:
        data = read_json(Path(run_dir) / PROGRESS)
        return (int(data["epoch"]) - 1) + int(data["step"]) / max(1, int(data["steps"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def failure_reason(run_dir: str | os.PathLike) -> str | None:
    path = Path(run_dir) / FAILED
    return read_json(path).get("reason") if path.is_file() else None


@dataclass
class RunRecord:
    """A run read back from its folder."""

    run_dir: Path
    config: dict[str, Any]
    history: pd.DataFrame
    metrics: dict[str, Any]
    status: str  # "complete", "failed" or "incomplete"

    @property
    def label(self) -> str:
        return self.run_dir.name


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    run_dir = Path(run_dir)
    status = "complete" if is_complete(run_dir) else "failed" if is_failed(run_dir) else "incomplete"
    config = read_json(run_dir / CONFIG) if (run_dir / CONFIG).is_file() else {}
    history = pd.read_csv(run_dir / HISTORY) if (run_dir / HISTORY).is_file() else pd.DataFrame()
    metrics = read_json(run_dir / METRICS) if (run_dir / METRICS).is_file() else {}
    return RunRecord(run_dir, config, history, metrics, status)


def iter_run_dirs(root: str | os.PathLike) -> Iterator[Path]:
    """Every folder under ``root`` that holds a ``config.json`` (at any depth), sorted."""
    root = Path(root)
    if not root.is_dir():
        return
    yield from sorted(p.parent for p in root.rglob(CONFIG))


def completed_runs(root: str | os.PathLike) -> list[RunRecord]:
    return [load_run(d) for d in iter_run_dirs(root) if is_complete(d)]
