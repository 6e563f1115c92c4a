"""Executing one notebook with papermill: atomic output, a run-folder lock, the kernel's own log kept off the terminal.

A kernel's process writes TensorFlow's start-up lines (absl, oneDNN) to its stderr whatever
``TF_CPP_MIN_LOG_LEVEL`` says; they go to a log file beside the executed notebook (``<stem>.kernel.log``),
so a terminal shows the sweep's progress and results only. What the notebook's cells print stays in the
executed notebook, as papermill records it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..training import store

if TYPE_CHECKING:
    from .kernels import WarmKernel

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
    env: dict[str, str] = field(default_factory=dict)  # the kernel's environment (threads), set by the task itself


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


def die_with_parent() -> None:
    """Ask Linux to kill this process when the process (thread) that started it dies (``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any],
                     kernel: WarmKernel | None = None, env: dict[str, str] | None = None) -> str | None:
    """Execute ``notebook`` with papermill into ``output`` (written under a temporary name, renamed on success).

    Returns ``None`` on success, else the error (one text); the partly executed notebook is then kept as
    ``<output stem>.failed.ipynb``. The kernel runs in the notebook's folder; its own log goes to
    ``<output stem>.kernel.log``. With ``kernel`` the notebook runs in that warm kernel (started with ``env`` if it
    must be started; :mod:`.kernels`), else in a kernel of its own, started and shut down here.
    """
    import papermill

    from .kernels import kernel_manager_class

    output = Path(output)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    log = output.with_name(f"{output.stem}.kernel.log")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    cwd = str(Path(notebook).parent)
    try:
        if kernel is not None:
            kernel_arguments: dict[str, Any] = {"km": kernel.manager(cwd, env or {})}
        else:
            kernel_arguments = {"kernel_manager_class": kernel_manager_class(log, die_with_parent),
                                "extra_arguments": KERNEL_ARGUMENTS}
        papermill.execute_notebook(str(notebook), str(partial), parameters=parameters, kernel_name="python3",
                                   language="python", progress_bar=False, log_output=False, cwd=cwd,
                                   **kernel_arguments)
    except Exception as exc:  # the caller records it; a failing notebook never stops the others
        if kernel is not None:
            kernel.finished(False, log)
        if partial.is_file():
            os.replace(partial, failed)
        return error_text(exc)
    if kernel is not None:
        kernel.finished(True, log)
    os.replace(partial, output)
    failed.unlink(missing_ok=True)
    return None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[bool]:
    """An exclusive lock on the run folder (``True`` when acquired), holding the owner's pid; released when the
    process dies."""
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
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")  # which process executes the run (to find it, e.g. to stop it)
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kernel_environment(threads: int, backend: str | None = None) -> dict[str, str]:
    """Variables the notebooks' kernels need: the TensorFlow threads (the numbers depend on them), the Keras
    ``backend`` when given (the sweep's, :func:`entropylab.training.config.sweep_backend`), quiet logs and, for JAX
    on a GPU, no up-front claim on most of its memory by each kernel (several run at once)."""
    env = {"ENTROPYLAB_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0"),
           "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false")}
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    if backend == "jax":  # set before JAX starts in the kernel, a fused process or a step, whatever this one runs
        from .. import deterministic_xla_flags

        env["XLA_FLAGS"] = deterministic_xla_flags(os.environ.get("XLA_FLAGS", ""))
    return env


@contextlib.contextmanager
def applied_environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` set (and ``MPLBACKEND`` unset, so kernels draw inline) in this process, restored afterwards."""
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_task(task: Task, kernel: WarmKernel | None = None) -> Outcome:
    """Execute one point's notebook into its run folder, in the task's environment (in ``kernel`` when given, else
    in a kernel of its own); a failure is recorded there, never raised (a folder that cannot be written is a failed
    outcome naming it)."""
    started = time.perf_counter()
    try:
        with applied_environment(task.env):
            return _execute_locked(task, started, kernel)
    except OSError as exc:
        return Outcome(task.name, task.run_dir, "failed", write_error(exc, task.run_dir), time.perf_counter() - started)


def write_error(exc: OSError, where: str | os.PathLike) -> str:
    """One line for a folder that cannot be written: the path, the reason and the fix (space for a full disk)."""
    path = exc.filename or where
    reason = (exc.strerror or "").strip().splitlines() or [type(exc).__name__]
    fix = ("free space on its disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else "make the outputs folder writable")
    return f"cannot write {path} ({reason[0]}); {fix} or choose another with --output-root or $ENTROPYLAB_OUTPUTS"


def _execute_locked(task: Task, started: float, kernel: WarmKernel | None) -> Outcome:
    run_dir = Path(task.run_dir)
    with run_lock(run_dir) as locked:
        if not locked:
            return Outcome(task.name, task.run_dir, "busy", f"{run_dir} is being executed by another sweep")
        (run_dir / store.FAILED).unlink(missing_ok=True)  # a reason read below is this attempt's, never an older one
        error = execute_notebook(task.notebook, run_dir / NOTEBOOK, task.parameters, kernel, task.env)
        if error is None and not store.is_complete(run_dir):
            if kernel is not None:
                kernel.discard()  # whatever kept the run from finishing is not carried into the next one
            (run_dir / NOTEBOOK).unlink()
            error = f"the notebook finished but {run_dir} has no {store.COMPLETE} marker"
        if error is not None:
            reason = store.failure_reason(run_dir)  # what the run itself recorded (e.g. a NaN loss) comes first
            if reason and reason.strip():
                error = f"{reason.strip().splitlines()[0]} ({error})"
            store.mark_failed(run_dir, f"notebook {Path(task.notebook).name} failed: {error}")
            return Outcome(task.name, task.run_dir, "failed", error, time.perf_counter() - started)
    return Outcome(task.name, task.run_dir, "complete", None, time.perf_counter() - started)


def record_lost_worker(task: Task, why: str) -> Outcome:
    """The outcome of a task whose worker process died: recorded as failed in its folder under the run's lock (a
    finished run is never unmarked: :func:`entropylab.training.store.mark_failed`)."""
    error = f"the worker process stopped ({why}) while executing this run; run the sweep again to retry it"
    try:
        with run_lock(Path(task.run_dir)) as locked:
            if locked:
                store.mark_failed(Path(task.run_dir), error)
    except OSError as exc:
        error += f"; {write_error(exc, task.run_dir)}"
    return Outcome(task.name, task.run_dir, "failed", error)
