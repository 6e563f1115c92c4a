"""Run folders on disk: atomic writes, the completion marker written last, identity checks, reading runs back.

A run folder holds ``config.json`` (the run's resolved config: its identity and where its data was),
``history.csv``, ``metrics.json``, ``model.weights.h5``, ``progress.json`` while it trains and, written last,
``COMPLETE`` (or ``FAILED`` with the reason), then, only with ``ENTROPYLAB_PHASE_TIMES=1``, ``phases.json``
(:mod:`entropylab.training.phases`). A folder without ``COMPLETE`` is never a finished run, and a
folder is the run of exactly one identity (:func:`identity_state`).

Damaged files (cut by a full disk, a crash of the machine, a bad copy) are never read silently. A CSV written with
``write_csv(..., checked=True)`` (a run's ``history.csv``, the sweep's results tables) gets a sidecar
``<name>.csv.sha256`` written after it (both atomically): the SHA-256 of its bytes, in the format of ``sha256sum``
(``sha256sum -c history.csv.sha256`` checks it), with its row and byte counts on a ``#`` line. :func:`read_csv`
compares the file with it; a file written before the sidecars existed is still read, and is refused only when it
is empty, does not end with a whole line or does not parse. :func:`read_json` refuses a JSON file that does not
parse. Either way the error is a :class:`DamagedFileError`: one line naming the file, what is wrong and the fix. A
finished run whose ``config.json``, ``history.csv`` or ``metrics.json`` is damaged (:func:`run_damage`) counts as
unfinished for the sweep and for :func:`entropylab.training.train.run`, which train it again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
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
#: The suffix of a checked CSV's sidecar: ``history.csv`` -> ``history.csv.sha256``.
CHECKSUM_SUFFIX = ".sha256"
#: The files of a run folder whose damage makes a finished run count as unfinished.
RUN_FILES = (CONFIG, HISTORY, METRICS, COMPLETE, FAILED, PROGRESS)


class DamagedFileError(ValueError):
    """A file the project wrote that is not what it wrote (cut, emptied, changed) or does not parse.

    The message is one line: ``<path> is damaged (<what>); <fix>``; ``path``, ``what`` and ``fix`` are kept apart
    so a caller that repairs it itself (the sweep trains a damaged run again) can say so instead of the fix."""

    def __init__(self, path: str | os.PathLike, what: str, fix: str) -> None:
        self.path, self.what, self.fix = Path(path), what, fix
        super().__init__(f"{path} is damaged ({what}); {fix}")


def run_fix(run_dir: str | os.PathLike) -> str:
    """The fix for a damaged file of a run folder: the sweep (or ``entropylab train``) trains a damaged run again."""
    return f"run the sweep again, which trains a damaged run again, or delete the run folder {run_dir}"


def _default_fix(path: Path) -> str:
    if path.name in RUN_FILES or (path.parent / CONFIG).is_file():
        return run_fix(path.parent)
    return "delete it and run the step that wrote it again"


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
    """``data`` as indented JSON, written atomically (:func:`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike, *, fix: str | None = None) -> Any:
    """The JSON in ``path``; a file that is empty, not UTF-8 or not valid JSON (e.g. cut mid-way) is a
    :class:`DamagedFileError` naming it and ``fix`` (default: for a run folder's file, :func:`run_fix`)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return json.loads(data.decode("utf8"))
    except UnicodeDecodeError as exc:
        what = f"not UTF-8 text at byte {exc.start}"
    except json.JSONDecodeError as exc:
        what = "0 bytes" if not data.strip() else f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        if data.strip() and exc.pos >= len(data.rstrip()):
            what += ", cut short"
    raise DamagedFileError(path, what, fix or _default_fix(path))


def checksum_path(path: str | os.PathLike) -> Path:
    """The sidecar of a checked CSV: ``<name>.csv.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _digest(data: bytes) -> str:
    """SHA-256 of a text file's bytes, hex, with CRLF read as LF (a checkout that converts line ends is intact)."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def _parse(data: bytes) -> pd.DataFrame:
    """The CSV in ``data``; a file of blank lines (what :func:`write_csv` writes for a frame without columns) is
    an empty frame."""
    if not data.strip():
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(data))


def _whole_rows(data: bytes) -> int:
    """Data rows among the whole lines of ``data`` (a cut last line left out); 0 when they do not parse."""
    end = data.rfind(b"\n")
    try:
        return len(_parse(data[: end + 1])) if end >= 0 else 0
    except (ValueError, UnicodeDecodeError):
        return max(0, data[: end + 1].count(b"\n") - 1)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, *, checked: bool = False) -> None:
    """``frame`` (without its index) as CSV, written atomically; with ``checked``, then its sidecar
    (:func:`checksum_path`: SHA-256 of the bytes, rows and bytes; atomically too) for :func:`read_csv` to verify.

    Two processes writing one file at once (two sweeps collecting one experiment) never leave a sidecar of the
    other's bytes: after writing the sidecar a writer reads the file again and, if it was replaced meanwhile,
    writes the sidecar of what is there (whole files only: every writer renames a whole file into place).
    Without ``checked`` an older sidecar is removed (it would vouch for other bytes).
    """
    path = Path(path)
    text = frame.to_csv(index=False)
    atomic_write_text(path, text)
    sidecar = checksum_path(path)
    if not checked:
        sidecar.unlink(missing_ok=True)
        return
    ours = _digest(text.encode("utf8"))
    for _ in range(10):
        data = path.read_bytes()
        digest = _digest(data)
        rows = len(frame) if digest == ours else _whole_rows(data)
        atomic_write_text(sidecar, f"# rows={rows} bytes={len(data)} (SHA-256 of the bytes of {path.name}; "
                                   f"check: sha256sum -c {sidecar.name})\n{digest}  {path.name}\n")
        if _digest(path.read_bytes()) == digest:
            return


@dataclass(frozen=True)
class _Checksum:
    sha256: str
    rows: int
    size: int


def _read_checksum(path: Path, fix: str) -> _Checksum | None:
    """The sidecar of ``path`` (``None`` when it has none); an unreadable one is a :class:`DamagedFileError`."""
    sidecar = checksum_path(path)
    try:
        text = sidecar.read_text(encoding="utf8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = ""
    fields: dict[str, str] = {}
    digest = name = None
    for line in text.splitlines():
        if line.startswith("#"):
            fields.update(part.split("=", 1) for part in line[1:].split() if "=" in part)
        elif line.strip():
            digest, _, name = line.partition("  ")
    try:
        if name != path.name or digest is None or len(digest) != 64:
            raise ValueError(name)
        int(digest, 16)
        return _Checksum(digest, int(fields["rows"]), int(fields["bytes"]))
    except (KeyError, ValueError):
        raise DamagedFileError(sidecar, f"not the checksum of {path.name}", fix) from None


def _changes(data: bytes, expected: _Checksum) -> str:
    """What differs between ``data`` and what was written: ``3 of 5 rows, cut mid-row``."""
    if not data:
        return f"0 bytes; it had {expected.rows} rows"
    if b"\n" not in data:
        return f"0 of {expected.rows} rows, cut in its header line"
    cut = "" if data.endswith(b"\n") else ", cut mid-row"
    rows = _whole_rows(data)
    if len(data) < expected.size:
        return f"{rows} of {expected.rows} rows{cut}"
    return (f"changed since it was written: {rows} rows{cut} in {len(data)} bytes, written as {expected.rows} rows "
            f"in {expected.size} bytes (SHA-256 differs)")


def read_csv(path: str | os.PathLike, *, fix: str | None = None) -> pd.DataFrame:
    """The CSV in ``path``, verified: against its sidecar when it has one (:func:`write_csv` with ``checked``), else
    (a file written before the sidecars) it must not be empty, must end with a whole line and must parse. Anything
    else is a :class:`DamagedFileError` naming the file, what is wrong (``3 of 5 rows, cut mid-row``) and ``fix``
    (default: for a run folder's file, :func:`run_fix`).

    A file that differs from its sidecar is read again twice over 0.3 s first: another process may
    be between writing the file and writing its sidecar.
    """
    path = Path(path)
    fix = fix or _default_fix(path)
    for pause in (0.0, 0.05, 0.25):
        time.sleep(pause)
        data = path.read_bytes()
        expected = _read_checksum(path, fix)
        if expected is None or _digest(data) == expected.sha256:
            break
    else:
        raise DamagedFileError(path, _changes(data, expected), fix)
    if expected is None and not data:
        raise DamagedFileError(path, "0 bytes", fix)
    if expected is None and not data.endswith(b"\n"):
        raise DamagedFileError(path, f"{_whole_rows(data)} whole rows, cut mid-row", fix)
    try:
        return _parse(data)
    except UnicodeDecodeError as exc:
        raise DamagedFileError(path, f"not UTF-8 text at byte {exc.start}", fix) from None
    except ValueError as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise DamagedFileError(path, f"not a CSV table: {' '.join(str(exc).split())}", fix) from None


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
    """The reason in a run folder's ``FAILED`` marker (``None`` without one; a damaged marker says so)."""
    path = Path(run_dir) / FAILED
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except DamagedFileError as exc:
        return str(exc)
    return data.get("reason") if isinstance(data, dict) else str(data)


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
    """A run folder read back; its files are verified (:func:`read_csv`, :func:`read_json`), and for a finished run
    the history must hold the epochs its ``metrics.json`` says ran (at least one). A damaged file is a
    :class:`DamagedFileError` naming it and the fix (:func:`run_fix`)."""
    run_dir = Path(run_dir)
    status = "complete" if is_complete(run_dir) else "failed" if is_failed(run_dir) else "incomplete"
    fix = run_fix(run_dir)
    config = read_json(run_dir / CONFIG, fix=fix) if (run_dir / CONFIG).is_file() else {}
    history = read_csv(run_dir / HISTORY, fix=fix) if (run_dir / HISTORY).is_file() else pd.DataFrame()
    metrics = read_json(run_dir / METRICS, fix=fix) if (run_dir / METRICS).is_file() else {}
    if status == "complete":
        _check_finished(run_dir, config, history, metrics, fix)
    return RunRecord(run_dir, config, history, metrics, status)


def _check_finished(run_dir: Path, config: Any, history: pd.DataFrame, metrics: Any, fix: str) -> None:
    """What a finished run's files must be beyond parsing: objects, a history of at least one epoch and, when its
    metrics say how many epochs ran, that many rows."""
    for name, value in ((CONFIG, config), (METRICS, metrics)):
        if not isinstance(value, dict):
            raise DamagedFileError(run_dir / name, f"holds {type(value).__name__}, not a JSON object", fix)
    if (run_dir / HISTORY).is_file() and history.empty:
        raise DamagedFileError(run_dir / HISTORY, "no rows; a finished run has at least one epoch", fix)
    ran = metrics.get("epochs_run")
    if isinstance(ran, int) and not isinstance(ran, bool) and (run_dir / HISTORY).is_file() and len(history) != ran:
        raise DamagedFileError(run_dir / HISTORY, f"{len(history)} of {ran} rows ({METRICS} says {ran} epochs ran)",
                               fix)


def run_damage(run_dir: str | os.PathLike) -> DamagedFileError | None:
    """Why a finished run folder's files cannot be read back (:func:`load_run`), ``None`` when they can or the
    folder holds no finished run: such a run counts as unfinished (the sweep and ``train.run`` train it again)."""
    if not is_complete(run_dir):
        return None
    try:
        load_run(run_dir)
    except DamagedFileError as exc:
        return exc
    return None


def iter_run_dirs(root: str | os.PathLike) -> Iterator[Path]:
    """Every folder under ``root`` that holds a ``config.json`` (at any depth), sorted."""
    root = Path(root)
    if not root.is_dir():
        return
    yield from sorted(p.parent for p in root.rglob(CONFIG))


def completed_runs(root: str | os.PathLike,
                   on_damaged: Callable[[DamagedFileError], None] | None = None) -> list[RunRecord]:
    """Every finished run under ``root`` (:func:`iter_run_dirs`), read back (:func:`load_run`). A damaged one is a
    :class:`DamagedFileError`, or with ``on_damaged`` is passed to it and left out."""
    records = []
    for run_dir in iter_run_dirs(root):
        if not is_complete(run_dir):
            continue
        try:
            records.append(load_run(run_dir))
        except DamagedFileError as exc:
            if on_damaged is None:
                raise
            on_damaged(exc)
    return records
