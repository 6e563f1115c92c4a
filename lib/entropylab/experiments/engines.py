"""Where a sweep's tasks run: local worker processes (a dead one fails only its own task) or a Dask cluster.

Both engines run :func:`entropylab.experiments.execute.execute_task` for each task and call ``finished(outcome)``
as tasks end, refreshing ``progress`` about every second while they run.

* :func:`run_local`: ``workers`` worker processes, each executing one task at a time in a kernel it keeps warm
  across its tasks (:mod:`.kernels`: one start and one import of TensorFlow per worker, not per run; each run still
  writes its own executed notebook). A worker killed from outside (SIGKILL, out of memory) fails its current task
  only (recorded in its run folder under the run's lock) and is replaced; the others go on. Within
  :func:`shared_workers` (a sweep's stages: tuning, then the chosen runs, setting after setting) the workers and
  their warm kernels outlive one call and serve the next, instead of being started again for each stage.
* :func:`run_dask`: each task a Dask task on a ``distributed`` cluster (a scheduler address, or a ``LocalCluster``
  started here), executed in a kernel that each thread of a Dask worker keeps warm across the sweep's tasks
  (:mod:`.dask_kernels`: the same rules as the local workers' kernels, shut down when the sweep ends). Dask
  reschedules the task of a lost worker on another worker; the run folder's rules (``COMPLETE`` written last, the
  run lock, a run trained again from scratch when unfinished) keep a retried task from leaving a half-written run
  that looks finished.
* :func:`run_fused` (the ``fused`` engine, JAX): before the notebooks, the runs' training as a few compiled programs,
  one per group of runs that differ only in seed, weight and objective family (:mod:`entropylab.training.fused`),
  in one spawned process. Each run's notebook then finds its run finished and only reports it; a run that a group
  could not train is trained by its own notebook, as with the pool.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .execute import (
    Outcome,
    Task,
    applied_environment,
    die_with_parent,
    error_text,
    execute_task,
    record_lost_worker,
    run_lock,
)

POLL_SECONDS = 1.0


class Progress(Protocol):
    def start(self, task: Task) -> None: ...
    def refresh(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# Local worker processes
# ---------------------------------------------------------------------------------------------------------

def _worker_main(connection: Any) -> None:
    """A worker process: dies with the sweep, ignores Ctrl-C (the sweep stops it), then executes the tasks it
    receives one after the other in one warm kernel (:mod:`.kernels`), sending each outcome, until it receives
    ``None``."""
    from .execute import KERNEL_ARGUMENTS
    from .kernels import WarmKernel

    die_with_parent()
    signal.signal(signal.SIGINT, lambda signum, frame: None)  # a handler, not SIG_IGN, which kernels would inherit
    kernel = WarmKernel(KERNEL_ARGUMENTS, die_with_parent)
    try:
        while (task := connection.recv()) is not None:
            connection.send(execute_task(task, kernel))
    finally:
        kernel.close()
        connection.close()


def _exit_text(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


class _SharedWorkers:
    """Idle local workers handed from one :func:`run_local` call to the next (see :func:`shared_workers`)."""

    def __init__(self) -> None:
        self.idle: list[tuple[Any, Any]] = []  # (connection, process)
        self._started_in = (dict(os.environ), os.getcwd())

    def take(self, count: int) -> list[tuple[Any, Any]]:
        """Up to ``count`` live idle workers, none if this process's environment or folder changed since they
        were spawned (a worker keeps the environment it was started with)."""
        if (dict(os.environ), os.getcwd()) != self._started_in:
            self.close()
            self._started_in = (dict(os.environ), os.getcwd())
            return []
        for connection, process in [w for w in self.idle if not w[1].is_alive()]:
            self.idle.remove((connection, process))
            _stop(connection, process)
        taken, self.idle = self.idle[:count], self.idle[count:]
        return taken

    def close(self) -> None:
        """Each idle worker shuts its kernel down and exits."""
        idle, self.idle = self.idle, []
        _dismiss(idle)


_SHARED = threading.local()  # per thread: a worker dies with the thread that started it (``die_with_parent``)


def _shared_blocks() -> list[_SharedWorkers]:
    """The calling thread's open :func:`shared_workers` blocks (at most one)."""
    if not hasattr(_SHARED, "blocks"):
        _SHARED.blocks = []
    return _SHARED.blocks


@contextlib.contextmanager
def shared_workers() -> Iterator[None]:
    """Within this block the local workers of :func:`run_local` (each with its warm kernel) are kept between calls
    and reused by the next one, and shut down when the block ends; inside another such block it changes nothing.

    A sweep's stages (the tuning runs of a setting, then its chosen runs, then the next setting) are separate calls
    of :func:`run_local`; without this, each would start its workers and import TensorFlow again (about 12 s per
    stage on a 2-core machine). Outside such a block nothing is kept: a sweep started from a notebook leaves no
    process behind once it returns.
    """
    blocks = _shared_blocks()
    if blocks:
        yield
        return
    shared = _SharedWorkers()
    blocks.append(shared)
    try:
        yield
    finally:
        blocks.remove(shared)
        shared.close()


def release_shared_workers() -> None:
    """Shut down the idle workers of the calling thread's :func:`shared_workers` block now (before a stage that
    needs the machine's memory for itself: the fused engine's training); the next call starts new ones."""
    for shared in _shared_blocks():
        shared.close()


def _dismiss(workers: list[tuple[Any, Any]]) -> None:
    """Ask each idle worker to shut its kernel down and exit, then wait for it (killing it after 30 s)."""
    for connection, _ in workers:
        with contextlib.suppress(OSError):
            connection.send(None)
    for connection, process in workers:
        process.join(timeout=30)
        _stop(connection, process)


def run_local(todo: list[Task], workers: int, finished: Callable[[Outcome], None], progress: Progress) -> None:
    """The tasks on ``workers`` worker processes (spawned), each executing one task at a time in a warm kernel; a
    worker that dies fails its current task only and is replaced (see the module docstring). Within
    :func:`shared_workers` it starts with the idle workers a former call left and leaves its own to the next."""
    import multiprocessing
    from multiprocessing.connection import wait

    from .kernels import runs_per_kernel

    runs_per_kernel()  # a bad $ENTROPYLAB_KERNEL_RUNS: one clear error here, not a failure in every worker
    context = multiprocessing.get_context("spawn")
    queue = list(todo)
    blocks = _shared_blocks()
    shared = blocks[-1] if blocks else None
    idle: list[tuple[Any, Any]] = []  # (connection, process) of workers waiting for a task
    running: dict[Any, tuple[Task, Any]] = {}  # connection -> (task, process)

    def start_worker() -> tuple[Any, Any]:
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(target=_worker_main, args=(theirs,), name="sweep-worker")
        process.start()
        theirs.close()
        return ours, process

    try:
        if shared is not None:
            idle = shared.take(workers)
        while queue or running:
            while queue and len(running) < workers:
                connection, process = idle.pop() if idle else start_worker()
                task = queue.pop(0)
                try:
                    connection.send(task)
                except OSError:  # the idle worker died meanwhile: its task goes back, a new worker takes it
                    queue.insert(0, task)
                    _stop(connection, process)
                    continue
                running[connection] = (task, process)
                progress.start(task)
            for connection in wait(list(running), timeout=POLL_SECONDS):
                task, process = running.pop(connection)
                try:
                    outcome = connection.recv()
                except (EOFError, OSError):  # the process died before it could answer
                    process.join()
                    connection.close()
                    finished(record_lost_worker(task, _exit_text(process.exitcode)))
                    continue
                idle.append((connection, process))
                finished(outcome)
            progress.refresh()
        if shared is not None:  # all done: the workers wait for the next call, or shut down now
            shared.idle.extend(idle)
        else:
            _dismiss(idle)
    except BaseException:  # Ctrl-C or an error here: stop the workers now (their kernels die with them)
        for connection, process in [*idle, *((c, p) for c, (_, p) in running.items())]:
            _stop(connection, process)
        raise


def _stop(connection: Any, process: Any) -> None:
    """Kill ``process`` if it still runs (its kernel dies with it), wait for it and close ``connection``."""
    with contextlib.suppress(Exception):
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
    with contextlib.suppress(Exception):
        connection.close()


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
    import uuid

    from distributed import wait

    from . import dask_kernels
    from .kernels import runs_per_kernel

    sweep, runs = uuid.uuid4().hex, runs_per_kernel()  # the workers' kernels serve this sweep only
    pending = {}
    for task in todo:
        key = f"entropylab-{task.name}-{time.time_ns()}"
        future = client.submit(dask_kernels.execute, task, sweep, runs, key=key, pure=False)
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
    finally:
        with contextlib.suppress(Exception):  # a worker that cannot be reached keeps them until its next sweep
            client.run(dask_kernels.close, sweep)


# ---------------------------------------------------------------------------------------------------------
# Fused groups (JAX): the training of a sweep's runs as a few compiled programs, before their notebooks
# ---------------------------------------------------------------------------------------------------------

@functools.cache
def accelerator_platform() -> str:
    """The platform JAX would run on here (``cpu``, ``gpu``/``cuda``, ``tpu``), asked in a child process so that this
    one neither imports JAX nor takes the GPU's memory; ``none`` when JAX cannot start. Asked once per process (a
    study's stages would otherwise each pay a JAX start)."""
    import os
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    lines = proc.stdout.split()
    return lines[-1] if proc.returncode == 0 and lines else "none"


def resolve_engine(engine: str, backend: str, dask: bool, probe: bool = True) -> str:
    """``"fused"`` or ``"pool"`` for the sweep's choice (``auto``, ``fused`` or ``pool``), its Keras backend and
    whether it runs on Dask; a ``fused`` that cannot be is a ``ValueError`` naming the fix. ``auto`` asks JAX for a
    GPU only with ``probe`` (there is something to train)."""
    from .params import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "pool":
        return "pool"
    if engine == "fused":
        if backend != "jax":
            raise ValueError(f"engine 'fused' trains on JAX; start the sweep with KERAS_BACKEND=jax (this one runs "
                             f"{backend!r}) or use --engine pool")
        if dask:
            raise ValueError("engine 'fused' trains its groups on this machine; leave out --scheduler/--cluster or "
                             "use --engine pool")
        return "fused"
    if backend != "jax" or dask or not probe:
        return "pool"
    return "fused" if accelerator_platform() not in ("cpu", "none") else "pool"


def _fused_worker_main(groups: list[list[Task]], connection: Any) -> None:
    """The fused engine's process: each group's runs (those whose lock it gets) as one program, one group after
    another; sends :func:`run_fused`'s answer."""
    die_with_parent()
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    states: dict[str, tuple[str, str]] = {}
    with applied_environment(groups[0][0].env if groups and groups[0] else {}):
        for group in groups:
            states.update(_train_fused_group(group))
    connection.send(states)
    connection.close()


def _train_fused_group(group: list[Task]) -> dict[str, tuple[str, str]]:
    from pathlib import Path

    from ..training.fused import train_group

    states: dict[str, tuple[str, str]] = {}
    with contextlib.ExitStack() as stack:
        mine = []
        for task in group:
            if stack.enter_context(run_lock(Path(task.run_dir))):
                mine.append(task)
            else:
                states[task.run_dir] = ("busy", f"{task.run_dir} is being executed by another sweep")
        if not mine:
            return states
        print(f"fused group of {len(mine)} run(s), first {mine[0].name}", flush=True)
        try:
            results = train_group([task_config(task) for task in mine], [task.run_dir for task in mine],
                                  report=lambda text: print(f"  {text}", flush=True))
        except Exception as exc:  # recorded in the runs' folders by train_group; their notebooks train them alone
            return {**states, **{task.run_dir: ("retry", error_text(exc)) for task in mine}}
        for task, result in zip(mine, results, strict=True):
            states[task.run_dir] = (("complete", "") if result.status == "complete" else
                                    ("failed", str(result.metrics.get("reason") or "failed")))
    return states


def task_config(task: Task) -> Any:
    """The :class:`~entropylab.training.config.RunConfig` of a sweep's task (its identity and data folder)."""
    from ..training.config import RunConfig

    return RunConfig.from_dict({**task.identity, "data_dir": task.parameters.get("data_dir")})


def run_fused(todo: list[Task], max_group: int | None = None) -> dict[str, tuple[str, str]]:
    """Train the runs of ``todo`` in fused groups (:func:`entropylab.training.fused.plan_groups`) in one spawned
    process. Returns ``{run_dir: (state, text)}``, the state ``complete``, ``failed`` (the run itself failed, e.g. a
    NaN loss; recorded in its folder), ``busy`` (another sweep holds it) or ``retry`` (its group failed or the
    process died: the run is left unfinished, and its notebook trains it alone afterwards)."""
    import multiprocessing

    from ..training.fused import plan_groups

    groups = [[todo[i] for i in members] for members in plan_groups([task_config(t) for t in todo], max_group)]
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_fused_worker_main, args=(groups, sending), name="sweep-fused")
    process.start()
    sending.close()
    try:
        try:
            states = receiving.recv()
        except (EOFError, OSError):  # the process died: what it finished is COMPLETE, the rest is trained alone
            states = {}
        process.join()
    except BaseException:
        with contextlib.suppress(Exception):
            process.kill()
        raise
    lost = f"the fused process stopped ({_exit_text(process.exitcode)})"
    return {task.run_dir: states.get(task.run_dir, ("retry", lost)) for task in todo}


def fused_stage(params_name: str, todo: list[Task], outcomes: list[Outcome]) -> list[Task]:
    """The fused engine's training of ``todo``'s unfinished runs; returns the tasks whose notebooks still run (all but
    the runs that failed on their own or that another sweep holds, whose outcomes join ``outcomes``)."""
    from ..training import store
    from ..training.fused import unfusable_reason

    untrained = [task for task in todo if not store.is_complete(task.run_dir)]
    reasons = {task.run_dir: unfusable_reason(task_config(task)) for task in untrained}
    apart = [task for task in untrained if reasons[task.run_dir]]
    if apart:
        print(f"sweep {params_name}: {len(apart)} run(s) cannot be fused ({reasons[apart[0].run_dir]}); "
              f"their notebooks train them one by one", flush=True)
    untrained = [task for task in untrained if not reasons[task.run_dir]]
    if not untrained:
        return todo
    print(f"sweep {params_name}: training {len(untrained)} run(s) in fused groups (JAX)", flush=True)
    started = time.perf_counter()
    states = run_fused(untrained)
    print(f"fused training finished in {time.perf_counter() - started:.1f} s; the notebooks follow", flush=True)
    remaining = []
    for task in todo:
        state, text = states.get(task.run_dir, ("complete", ""))
        if state == "failed":
            outcomes.append(Outcome(task.name, task.run_dir, "failed", text))
        elif state == "busy":
            outcomes.append(Outcome(task.name, task.run_dir, "busy", text))
        else:
            if state == "retry":
                print(f"  {task.name}: its fused group failed ({text.splitlines()[0] if text else ''}); its notebook "
                      f"trains it alone", flush=True)
            remaining.append(task)
    return remaining
