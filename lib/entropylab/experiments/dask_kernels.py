"""The warm kernels of a Dask worker: one per thread that executes a sweep's tasks, kept for that sweep only.

The Dask engine sends each task with its sweep's token and ``$ENTROPYLAB_KERNEL_RUNS`` as the sweep's process reads
it. A thread of a Dask worker executes its tasks one after the other in one :class:`~.kernels.WarmKernel` (the same
rules as a local worker's: reset between runs, replaced after a failure, a change of folder or environment, or
``runs`` notebooks). A kernel serves one sweep: the first task of another sweep on that thread starts a fresh kernel,
so a long-lived cluster never runs a new sweep in modules imported for an old one (code edited in between), and
when a sweep ends :func:`close` shuts its idle kernels down on every worker, so an idle cluster holds no kernel
(nor the memory of a GPU). A kernel still executing a task when :func:`close` runs (the task of an interrupted sweep)
finishes it and is replaced later. Kernels of threads that ended are closed, and all of them when the worker
process exits; a killed worker takes its kernels with it (they die with the thread that started them).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

from .execute import KERNEL_ARGUMENTS, Outcome, Task, die_with_parent, execute_task
from .kernels import WarmKernel


@dataclass
class _ThreadKernel:
    kernel: WarmKernel
    sweep: str
    busy: threading.Lock


_LOCK = threading.Lock()
_KERNELS: dict[int, _ThreadKernel] = {}  # thread ident -> its kernel


def execute(task: Task, sweep: str, runs: int) -> Outcome:
    """:func:`~.execute.execute_task` in the calling thread's warm kernel for ``sweep`` (started if needed, with at
    most ``runs`` notebooks per kernel)."""
    ident = threading.get_ident()
    with _LOCK:
        live = {thread.ident for thread in threading.enumerate()}
        stale = [_KERNELS.pop(i) for i in list(_KERNELS) if i not in live]  # their kernels died with the thread
        mine = _KERNELS.get(ident)
        if mine is not None and mine.sweep != sweep:
            stale.append(_KERNELS.pop(ident))
            mine = None
        if mine is None:
            mine = _KERNELS[ident] = _ThreadKernel(WarmKernel(KERNEL_ARGUMENTS, die_with_parent, max_runs=runs),
                                                   sweep, threading.Lock())
    for old in stale:
        old.kernel.close()
    with mine.busy:
        return execute_task(task, mine.kernel)


def close(sweep: str) -> int:
    """Shut down this worker's idle kernels of ``sweep`` (a sweep's end, on every worker); how many."""
    with _LOCK:
        closing = [_KERNELS.pop(ident) for ident, entry in list(_KERNELS.items())
                   if entry.sweep == sweep and entry.busy.acquire(blocking=False)]
    _close_apart(closing)
    return len(closing)


def close_all() -> None:
    """Shut down every kernel of this process (at its exit)."""
    with _LOCK:
        closing = list(_KERNELS.values())
        _KERNELS.clear()
    _close_apart(closing)


atexit.register(close_all)


def _close_apart(entries: list[_ThreadKernel]) -> None:
    """Close the kernels in a thread of their own: the caller may be an event loop's thread (``Client.run``), where
    the kernel managers' synchronous calls cannot run their own loop."""
    if not entries:
        return
    closer = threading.Thread(target=lambda: [entry.kernel.close() for entry in entries], name="close-kernels")
    closer.start()
    closer.join()
