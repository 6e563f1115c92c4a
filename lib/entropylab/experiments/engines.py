"""Where a sweep's tasks run: local worker processes (a dead one fails only its own task) or a Dask cluster.

Both engines run :func:`entropylab.experiments.execute.execute_task` for each task and call ``finished(outcome)``
as tasks end, refreshing ``progress`` about every second while they run.

* :func:`run_local`: one process per task, ``workers`` at a time. A process killed from outside (SIGKILL, out of
  memory) fails its own task only (recorded in its run folder under the run's lock); the others go on.
* :func:`run_dask`: each task a Dask task on a ``distributed`` cluster (a scheduler address, or a ``LocalCluster``
  started here). Dask reschedules the task of a lost worker on another worker; the run folder's rules (``COMPLETE``
  written last, the run lock, a run trained again from scratch when unfinished) keep a retried task from leaving a
  half-written run that looks finished.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .execute import Outcome, Task, die_with_parent, execute_task, record_lost_worker

POLL_SECONDS = 1.0


class Progress(Protocol):
    def start(self, task: Task) -> None: ...
    def refresh(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# Local worker processes
# ---------------------------------------------------------------------------------------------------------

def _worker_main(task: Task, connection: Any) -> None:
    """A worker process: dies with the sweep, ignores Ctrl-C (the sweep stops it), runs one task, sends its outcome."""
    die_with_parent()
    signal.signal(signal.SIGINT, lambda signum, frame: None)  # a handler, not SIG_IGN, which kernels would inherit
    connection.send(execute_task(task))
    connection.close()


def _exit_text(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def run_local(todo: list[Task], workers: int, finished: Callable[[Outcome], None], progress: Progress) -> None:
    """Each task in its own spawned process, ``workers`` at a time (see the module docstring)."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    queue = list(todo)
    running: dict[Any, tuple[Task, Any]] = {}  # receiving end -> (task, process)
    try:
        while queue or running:
            while queue and len(running) < workers:
                task = queue.pop(0)
                receiving, sending = context.Pipe(duplex=False)
                process = context.Process(target=_worker_main, args=(task, sending), name=f"sweep-{task.name}")
                process.start()
                sending.close()
                running[receiving] = (task, process)
                progress.start(task)
            ready = wait(list(running), timeout=POLL_SECONDS)
            for receiving in ready:
                task, process = running.pop(receiving)
                try:
                    outcome = receiving.recv()
                except (EOFError, OSError):  # the process died before it could answer
                    outcome = None
                receiving.close()
                process.join()
                finished(outcome if outcome is not None else record_lost_worker(task, _exit_text(process.exitcode)))
            progress.refresh()
    except BaseException:  # Ctrl-C or an error here: stop the workers now (their kernels die with them)
        for _, process in running.values():
            with contextlib.suppress(Exception):
                process.kill()
        raise


# ---------------------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def dask_client(scheduler: str | None = None, local_workers: int | None = None,
                threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``scheduler`` (``tcp://HOST:PORT``), or of a ``LocalCluster``
    of ``local_workers`` worker processes started here (and closed afterwards)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise RuntimeError("the Dask engine needs the package 'distributed': pip install 'distributed'") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with "
                                  f"`dask scheduler` (see docs/scaling.md) or check the address") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=local_workers or 1, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=":0")
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def describe_client(client: Any) -> str:
    """``4 Dask worker(s) at tcp://…, dashboard http://…``."""
    workers = len(client.scheduler_info().get("workers", {}))
    return f"{workers} Dask worker(s) at {client.scheduler.address}, dashboard {client.dashboard_link}"


def run_dask(todo: list[Task], client: Any, finished: Callable[[Outcome], None], progress: Progress) -> None:
    """Each task as a Dask task (see the module docstring); the lost worker's task is rescheduled by Dask."""
    from distributed import wait

    pending = {}
    for task in todo:
        future = client.submit(execute_task, task, key=f"entropylab-{task.name}-{time.time_ns()}", pure=False)
        pending[future] = task
        progress.start(task)
    try:
        while pending:
            with contextlib.suppress(TimeoutError):
                wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            for future in [f for f in pending if f.done()]:
                task = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the task failed on every worker Dask tried (e.g. workers kept dying)
                    outcome = record_lost_worker(task, f"Dask: {type(exc).__name__}: {exc}")
                finished(outcome)
            progress.refresh()
    except BaseException:
        for future in pending:
            with contextlib.suppress(Exception):
                future.cancel()
        raise
