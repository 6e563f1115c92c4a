"""A study's steps beside its sweep (the decoding grid's jobs, hyperfitting), with the sweep's guarantees.

A :class:`Step` is one call ``module.function(argument)`` that writes its own files (resumably: a rerun redoes only
what is missing). :func:`run_steps` runs each step in a **process of its own** (``python -m
entropylab.experiments.steps``, started afresh for every step, so nothing a former step did in a process can change
its numbers), ``workers`` at a time here or, given a Dask client, each as a Dask task that starts that process on a
worker. Every step gets:

* **its lock** (``Step.lock``, a file locked with ``flock`` and holding the owner's pid): a second study that reaches
  the same step waits until the first has finished it (or died: the lock dies with its process), then finds its
  files written and redoes only what is missing; two writers never share a step's files;
* **isolation**: a step whose process is killed (SIGKILL, out of memory) or raises fails alone, with one line
  saying why; the other steps go on;
* **no orphan**: the step's process dies with the thread that started it (``PR_SET_PDEATHSIG``), and a study
  stopped with Ctrl-C kills the steps it runs here, so a killed study never leaves a process writing its files. On
  a Dask cluster, Ctrl-C cancels the steps not yet started; a step already running on a worker finishes (under its
  lock, its files written whole), as a Dask task does.

What a step writes must be atomic with its completion marker last (the step's own rule), so that a killed step
leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How often a running study looks at its steps' processes, and a waiting step at a busy lock (seconds).
POLL_SECONDS = 0.2
LOCK_POLL_SECONDS = 1.0
#: The longest error text a step sends back (the rest is cut).
MAX_ERROR_CHARS = 8_000


@dataclass(frozen=True)
class Step:
    """One call ``target(argument)`` (``target`` as ``"package.module:function"``; ``argument`` picklable), shown
    as ``name``, exclusive through the lock file ``lock``, in a process whose environment adds ``env`` (e.g. the
    Keras backend of the model it decodes)."""

    name: str
    lock: str
    target: str
    argument: Any
    env: dict[str, str] = field(default_factory=dict)  # set in the step's process on top of this one's environment


@dataclass(frozen=True)
class StepOutcome:
    """What became of a step: ``done`` (``value`` is what its function returned) or ``failed`` (``error``)."""

    name: str
    status: str
    value: Any = None
    error: str = ""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created with its folder), waiting while another process
    holds it (``on_wait`` is told once, with the holder's pid); the file then records this process's pid. The lock
    is released when the block ends or this process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if not told and on_wait is not None:
                    handle.seek(0)
                    on_wait(handle.read().strip() or "?")
                    told = True
                time.sleep(LOCK_POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(path: str | os.PathLike) -> bool:
    """Whether another process holds the ``flock`` of the file ``path`` now."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def log_path(step: Step) -> Path:
    """Where a step's process writes its stderr: ``<lock>.log`` beside its lock file."""
    return Path(f"{step.lock}.log")


def call_step(step: Step) -> Any:
    """Run ``step`` here under its lock (waiting for another holder to finish); what its function returns."""
    module, function = step.target.split(":")
    target = getattr(importlib.import_module(module), function)

    def waiting(pid: str) -> None:
        print(f"{step.name}: running elsewhere (process {pid}); waiting for it to finish", flush=True)

    with exclusive_lock(step.lock, waiting):
        return target(step.argument)


# ---------------------------------------------------------------------------------------------------------
# One process per step
# ---------------------------------------------------------------------------------------------------------

def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"its process was killed by {signal.Signals(-code).name}"
    return f"its process exited with code {code} before reporting"


class _Running:
    """A step's process (``python -m entropylab.experiments.steps FD PARENT``): the step goes in by stdin, its
    outcome comes back pickled through the pipe ``FD``; what it prints goes to this process's terminal, its stderr
    (libraries' start-up lines, warnings) to the end of the log :func:`log_path` beside its lock, after a line naming
    the step, the time and this process."""

    def __init__(self, step: Step) -> None:
        self.step = step
        log = log_path(step)
        log.parent.mkdir(parents=True, exist_ok=True)
        reading, writing = os.pipe()
        try:
            # appended to, never emptied: a second study reaching this step starts its process (which then waits
            # for the lock) while the first one's process may still be writing its stderr here
            with open(log, "ab") as stderr:
                stderr.write(f"--- {step.name}: a process started {time.strftime('%Y-%m-%d %H:%M:%S')} by "
                             f"process {os.getpid()} ---\n".encode())
                stderr.flush()
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "entropylab.experiments.steps", str(writing), str(os.getpid())],
                    stdin=subprocess.PIPE, stderr=stderr, pass_fds=(writing,), env={**os.environ, **step.env})
        finally:
            os.close(writing)
        self._reading = reading
        self._answer = bytearray()
        os.set_blocking(reading, False)
        assert self.process.stdin is not None
        self.process.stdin.write(pickle.dumps(step))
        self.process.stdin.close()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._reading, 65536):
                self._answer += chunk

    def poll(self) -> StepOutcome | None:
        """The step's outcome once its process has ended, else ``None``."""
        self._drain()
        code = self.process.poll()
        if code is None:
            return None
        self._drain()
        os.close(self._reading)
        if code == 0 and self._answer:
            with contextlib.suppress(Exception):
                return pickle.loads(bytes(self._answer))
        return StepOutcome(self.step.name, "failed", error=f"{_exit_text(code)} (its log: {log_path(self.step)})")

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self._reading)


def run_here(steps: list[Step], workers: int, report: Callable[[StepOutcome], None] | None = None
             ) -> list[StepOutcome]:
    """Each step in a process of its own, ``workers`` at a time, on this machine (module docstring); their
    outcomes in the steps' order. ``report`` is told of each as it ends."""
    queue = list(steps)
    running: list[_Running] = []
    outcomes: dict[str, StepOutcome] = {}
    try:
        while queue or running:
            while queue and len(running) < max(1, workers):
                running.append(_Running(queue.pop(0)))
            for item in list(running):
                outcome = item.poll()
                if outcome is not None:
                    running.remove(item)
                    outcomes[item.step.name] = outcome
                    if report is not None:
                        report(outcome)
            time.sleep(POLL_SECONDS)
    except BaseException:  # Ctrl-C or an error here: the steps' processes stop with this study
        for item in running:
            item.kill()
        raise
    return [outcomes[step.name] for step in steps]


def _run_on_dask_worker(step: Step) -> StepOutcome:
    """A Dask task: the step in a process of its own on the worker that runs this task."""
    return run_here([step], 1)[0]


def run_on_dask(steps: list[Step], client: Any, report: Callable[[StepOutcome], None] | None = None
                ) -> list[StepOutcome]:
    """Each step as a Dask task on ``client``'s cluster, each in a process of its own there; Dask retries the task of
    a lost worker elsewhere (the step's lock and its resumable files make that safe)."""
    from distributed import as_completed

    futures = {client.submit(_run_on_dask_worker, step, key=f"entropylab-step-{step.name}-{time.time_ns()}",
                             pure=False): step for step in steps}
    outcomes: dict[str, StepOutcome] = {}
    try:
        for future in as_completed(list(futures)):
            step = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the task failed on every worker Dask tried
                outcome = StepOutcome(step.name, "failed", error=f"Dask: {type(exc).__name__}: {exc}")
            outcomes[step.name] = outcome
            if report is not None:
                report(outcome)
    except BaseException:
        for future in futures:
            with contextlib.suppress(Exception):
                future.cancel()
        raise
    return [outcomes[step.name] for step in steps]


def run_steps(steps: list[Step], workers: int, client: Any = None,
              report: Callable[[StepOutcome], None] | None = None) -> list[StepOutcome]:
    """The steps on ``client``'s Dask cluster when given, else here ``workers`` at a time (module docstring)."""
    if len({step.name for step in steps}) != len(steps):
        raise ValueError("two steps share a name; give each step its own")
    if client is not None:
        return run_on_dask(steps, client, report)
    return run_here(steps, workers, report)


def _child(answer_fd: int, parent: int) -> int:
    """The step's process: dies with its parent, ignores Ctrl-C (the parent stops it), runs the step it reads from
    stdin and writes its outcome to ``answer_fd``."""
    from .execute import die_with_parent, error_text

    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above: nothing to run for
        return 1
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    step: Step = pickle.loads(sys.stdin.buffer.read())
    try:
        outcome = StepOutcome(step.name, "done", value=call_step(step))
    except Exception as exc:  # the step failed: its error goes back as one text
        outcome = StepOutcome(step.name, "failed", error=error_text(exc)[:MAX_ERROR_CHARS])
    sys.stdout.flush()
    with os.fdopen(answer_fd, "wb") as answer:
        try:
            answer.write(pickle.dumps(outcome))
        except Exception as exc:  # a value that cannot be pickled: the step still ran
            answer.write(pickle.dumps(StepOutcome(step.name, "done", value=repr(exc))))
    return 0


if __name__ == "__main__":  # the outcome must be pickled as the package's class, not as this script's copy
    from entropylab.experiments.steps import _child as child

    sys.exit(child(int(sys.argv[1]), int(sys.argv[2])))
