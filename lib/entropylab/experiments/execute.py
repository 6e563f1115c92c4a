"""Executing one notebook with papermill: atomic output, a run-folder lock, the kernel's own log kept off the terminal.

A kernel's process writes TensorFlow's start-up lines (absl, oneDNN) to its stderr whatever
``TF_CPP_MIN_LOG_LEVEL`` says; they go to a log file beside the executed notebook (``<stem>.kernel.log``),
so a terminal shows the sweep's progress and results only. What the notebook's cells print stays in the
executed notebook, as papermill records it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training import store

NOTEBOOK = "notebook.ipynb"
FAILED_NOTEBOOK = "notebook.failed.ipynb"
LOCK = ".sweep.lock"
#: The kernels' own log level: only errors (no TCP-encryption notice per run).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Task:
    """One grid point ready to execute (plain values only: it is sent to a worker process)."""

    notebook: str
    parameters: dict[str, Any]
    run_dir: str
    name: str
    identity: dict[str, Any]
    epochs: int = 1


@dataclass
class Outcome:
    """What became of one point: ``"done"`` (skipped), ``"complete"``, ``"failed"`` or ``"busy"`` (another
    sweep is executing it)."""

    name: str
    run_dir: str
    status: str
    error: str | None = None
    seconds: float = 0.0


def error_text(exc: BaseException) -> str:
    """An exception as one clean text (no terminal colour codes)."""
    return _ANSI.sub("", f"{type(exc).__name__}: {exc}").strip()


def _logged_kernel_manager(log_path: Path) -> type:
    """A jupyter_client kernel manager whose kernel process writes its stdout and stderr to ``log_path``."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
            command, kw = await super()._async_pre_start_kernel(**kw)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_path, "ab")  # noqa: SIM115 - the kernel process owns it; closed when it exits
            kw["stdout"] = kw["stderr"] = handle
            return command, kw

    return LoggedKernelManager


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any]) -> str | None:
    """Execute ``notebook`` with papermill into ``output`` (written under a temporary name, renamed on success).

    Returns ``None`` on success, else the error (one text); the partly executed notebook is then kept as
    ``<output stem>.failed.ipynb``. The kernel runs in the notebook's folder; its own log goes to
    ``<output stem>.kernel.log``.
    """
    import papermill

    output = Path(output)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    log = output.with_name(f"{output.stem}.kernel.log")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters=parameters, kernel_name="python3",
                                   language="python", progress_bar=False, log_output=False,
                                   cwd=str(Path(notebook).parent), extra_arguments=KERNEL_ARGUMENTS,
                                   kernel_manager_class=_logged_kernel_manager(log))
    except Exception as exc:  # the caller records it; a failing notebook never stops the others
        if partial.is_file():
            os.replace(partial, failed)
        return error_text(exc)
    os.replace(partial, output)
    failed.unlink(missing_ok=True)
    return None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[bool]:
    """An exclusive lock on the run folder (``True`` when acquired); released when the process dies."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-sweep protection
        yield True
        return
    with open(run_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def execute_task(task: Task) -> Outcome:
    """Execute one point's notebook into its run folder; a failure is recorded there, never raised."""
    started = time.perf_counter()
    run_dir = Path(task.run_dir)
    with run_lock(run_dir) as locked:
        if not locked:
            return Outcome(task.name, task.run_dir, "busy", f"{run_dir} is being executed by another sweep")
        error = execute_notebook(task.notebook, run_dir / NOTEBOOK, task.parameters)
        if error is None and not store.is_complete(run_dir):
            (run_dir / NOTEBOOK).unlink()
            error = f"the notebook finished but {run_dir} has no {store.COMPLETE} marker"
        if error is not None:
            reason = store.failure_reason(run_dir)  # what the run itself recorded (e.g. a NaN loss)
            if reason and reason.splitlines()[0] not in error:
                error = f"{reason.splitlines()[0]} ({error.splitlines()[0]})"
            store.mark_failed(run_dir, f"notebook {Path(task.notebook).name} failed: {error}")
            return Outcome(task.name, task.run_dir, "failed", error, time.perf_counter() - started)
    return Outcome(task.name, task.run_dir, "complete", None, time.perf_counter() - started)
