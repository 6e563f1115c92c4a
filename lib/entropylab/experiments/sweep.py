"""Run a parameter file's grid with papermill: resumable, parallel, failure-isolated, collected, with progress.

``python -m entropylab sweep params/paper.yaml [--workers N] [--threads T] [--data-dir D] [--output-root O]
[--dry-run]``

* Each grid point (see :mod:`entropylab.experiments.params`) is one execution of its notebook, written to
  ``<outputs>/runs/<experiment>/<run name>/notebook.ipynb`` (under a temporary name, renamed on success); the
  run name is the readable slug and the hash of the point's whole config
  (:attr:`entropylab.training.config.RunConfig.run_name`).
* A point is done when its folder holds the ``COMPLETE`` marker (written last by the training), the same
  identity and the executed notebook; done points are skipped, so a stopped sweep (Ctrl-C, SIGKILL)
  restarted redoes only the unfinished ones.
* ``N`` workers run points in parallel, each in its own process (and each notebook in its own kernel, whose
  start-up log goes to a file in the run folder) with ``ENTROPYLAB_THREADS`` TensorFlow threads: ``--threads``,
  else the file's ``threads``, else ``max(1, cores // N)``. The thread count changes the numbers (not their
  determinism), so it is part of each run's identity and the paper's file fixes it.
* A failing point is recorded in its folder (``FAILED`` with the error, ``notebook.failed.ipynb``); the others
  go on. The exit status is the number of failed points (at most 100).
* ``dataset: auto`` is resolved once: without the NYT data the runs use the synthetic corpus and go to the
  experiment ``<experiment>-synthetic``.
* Progress counts epochs (done over planned, read from each running run's ``progress.json``), with finished
  runs as a second number. After every finished point the experiment's results table is collected again
  (:func:`entropylab.experiments.results.collect`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..training import store
from .execute import NOTEBOOK, Outcome, Task, execute_task
from .params import ParamSet, Point, load_params
from .results import collect, results_path

MAX_EXIT_STATUS = 100
POLL_SECONDS = 1.0


@dataclass
class Plan:
    """A parameter file resolved against an outputs folder: the experiment's name and every point's task."""

    params: ParamSet
    experiment: str
    output_root: Path
    workers: int
    threads: int
    tasks: list[Task] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return paths.runs_dir(self.experiment, self.output_root)

    @property
    def results_csv(self) -> Path:
        return results_path(self.experiment, self.output_root)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def make_plan(params: ParamSet | str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
              output_root: str | os.PathLike | None = None, workers: int | None = None,
              threads: int | None = None) -> Plan:
    """Resolve ``dataset: auto`` (once), the data folder, the outputs folder, workers and threads; one task per
    grid point, its run folder named by its whole config (threads and backend included).

    ``data_dir`` (the ``--data-dir`` option) overrides the file's. Paths are made absolute because the
    notebooks run with their own folder as working directory.
    """
    from ..data import find_nyt_dir

    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be an integer >= 1, got {value}")
    param_set = params if isinstance(params, ParamSet) else load_params(params)
    workers = workers or param_set.workers or 1
    threads = threads or param_set.threads or max(1, available_cores() // workers)
    root = paths.outputs_dir(output_root).resolve()
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser().resolve())
    points = [_with_data_dir(p, data_dir) for p in param_set.points]
    experiment = param_set.experiment
    if any(p.parameters["dataset"] == "auto" for p in points):
        from .params import resolve_experiment

        dirs = {p.parameters["data_dir"] for p in points if p.parameters["dataset"] == "auto"}
        resolved, experiment = resolve_experiment(experiment, "auto", next(iter(sorted(dirs, key=str))))
        points = [_replace(p, dataset=resolved) if p.parameters["dataset"] == "auto" else p for p in points]
    for folder in sorted({p.parameters["data_dir"] for p in points if p.parameters["dataset"] == "nyt"}, key=str):
        if find_nyt_dir(folder) is None:
            from ..data import DataError, missing_data_message

            raise DataError(f"{param_set.path}: a run asks for dataset 'nyt'; {missing_data_message()}")
    plan = Plan(param_set, experiment, root, workers, threads)
    for point in points:
        config = point.config(threads=threads)
        parameters = {**point.parameters, "experiment": experiment, "output_root": str(root)}
        run_dir = plan.runs_dir / config.run_name
        plan.tasks.append(Task(str(point.notebook), parameters, str(run_dir), config.run_name, config.identity(),
                               config.epochs))
    return plan


def _replace(point: Point, **values: Any) -> Point:
    return Point(point.notebook, {**point.parameters, **values}, point.entry)


def _with_data_dir(point: Point, data_dir: str | None) -> Point:
    if data_dir is not None:
        return _replace(point, data_dir=data_dir)
    given = point.parameters.get("data_dir")
    if given is not None:
        return _replace(point, data_dir=str(Path(given).expanduser().resolve()))
    return point


def task_state(task: Task) -> str:
    """``"done"``, ``"todo"``, ``"failed"`` (last attempt failed) or ``"conflict"`` (another config's run)."""
    run_dir = Path(task.run_dir)
    if store.identity_state(run_dir, task.identity) == "other":
        return "conflict"
    if store.is_complete(run_dir):
        return "done" if (run_dir / NOTEBOOK).is_file() else "todo"
    return "failed" if store.is_failed(run_dir) else "todo"


# ---------------------------------------------------------------------------------------------------------
# The workers' environment
# ---------------------------------------------------------------------------------------------------------

def kernel_environment(threads: int) -> dict[str, str]:
    """Variables the notebooks' kernels need (set in the worker, inherited by its kernels)."""
    return {"ENTROPYLAB_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}


def _prepare_worker(env: dict[str, str]) -> None:
    """Worker process start-up: the kernels' environment, and die with the sweep (Linux)."""
    os.environ.update(env)
    # The kernels draw inline; a non-interactive backend (the Makefile's MPLBACKEND=Agg) would drop the figures.
    os.environ.pop("MPLBACKEND", None)
    # The sweep handles Ctrl-C and stops its workers (a handler, not SIG_IGN, which the kernels would inherit).
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


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


# ---------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------

@dataclass
class SweepResult:
    plan: Plan
    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_status(self) -> int:
        return min(len(self.failed), MAX_EXIT_STATUS)


class EpochProgress:
    """A progress bar over the epochs of a sweep (done over planned), with finished runs as a second number."""

    def __init__(self, plan: Plan, done: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.total_runs = len(plan.tasks)
        self.runs_done = done
        self._epochs = {t.run_dir: t.epochs for t in plan.tasks}
        self._finished_epochs = 0
        self._running: set[str] = set()
        self.bar = tqdm(total=sum(self._epochs.values()), unit="epoch", desc=plan.experiment, disable=not enabled,
                        file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs "
                        "[{elapsed}<{remaining}{postfix}]")

    def skip(self, task: Task) -> None:
        self._finished_epochs += task.epochs

    def start(self, task: Task) -> None:
        self._running.add(task.run_dir)

    def finish(self, task: Task) -> None:
        self._running.discard(task.run_dir)
        self._finished_epochs += task.epochs
        self.runs_done += 1
        self.refresh()

    def refresh(self) -> None:
        running = sum(min(store.read_progress(d), self._epochs[d]) for d in self._running)
        self.bar.n = round(self._finished_epochs + running, 2)
        self.bar.set_postfix_str(f"runs {self.runs_done}/{self.total_runs}", refresh=False)
        self.bar.refresh()

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def run_sweep(params: ParamSet | str | os.PathLike, *, workers: int | None = None, threads: int | None = None,
              data_dir: str | os.PathLike | None = None, output_root: str | os.PathLike | None = None,
              progress: bool = True) -> SweepResult:
    """Execute every unfinished point of a parameter file (see the module docstring)."""
    plan = make_plan(params, data_dir=data_dir, output_root=output_root, workers=workers, threads=threads)
    env = kernel_environment(plan.threads)
    outcomes: list[Outcome] = []
    todo = []
    for task in plan.tasks:
        state = task_state(task)
        if state == "done":
            outcomes.append(Outcome(task.name, task.run_dir, "done"))
        elif state == "conflict":
            outcomes.append(Outcome(task.name, task.run_dir, "failed",
                                    f"{task.run_dir} holds a finished run of another config; remove the folder"))
        else:
            todo.append(task)
    print(f"sweep {plan.params.path.name}: experiment {plan.experiment!r}, {len(plan.tasks)} runs, "
          f"{len(plan.tasks) - len(todo)} already finished, {len(todo)} to run with {plan.workers} worker(s) of "
          f"{plan.threads} thread(s)", flush=True)
    bar = EpochProgress(plan, len(plan.tasks) - len(todo), enabled=progress and bool(todo))
    for task in plan.tasks:
        if task not in todo:
            bar.skip(task)
    by_dir = {task.run_dir: task for task in todo}

    def finished(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if outcome.status == "failed":
            first_line = (outcome.error or "").splitlines()[0] if outcome.error else ""
            bar.write(f"FAILED {outcome.name}: {first_line} (details in {outcome.run_dir}/{store.FAILED})")
        elif outcome.status == "busy":
            bar.write(f"running elsewhere {outcome.name}: another sweep is executing it; it is left to that sweep")
        else:
            bar.write(f"finished {outcome.name} in {outcome.seconds:.0f} s")
            collect(plan.experiment, plan.output_root)
        bar.finish(by_dir[outcome.run_dir])

    try:
        if todo:
            _run_pool(todo, plan.workers, env, finished, bar)
    finally:
        bar.close()
    collect(plan.experiment, plan.output_root)
    result = SweepResult(plan, outcomes)
    summary = (f"{sum(o.status == 'complete' for o in outcomes)} ran, {sum(o.status == 'done' for o in outcomes)} "
               f"were already finished, {sum(o.status == 'busy' for o in outcomes)} run elsewhere, "
               f"{len(result.failed)} failed; results: {plan.results_csv}")
    print(summary, flush=True)
    for outcome in result.failed:
        print(f"  failed: {outcome.name} ({outcome.run_dir})", flush=True)
    return result


def _run_pool(todo: list[Task], workers: int, env: dict[str, str], finished: Callable[[Outcome], None],
              bar: EpochProgress) -> None:
    """Each task in a worker process (``workers`` at a time); the bar is refreshed while they train."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                               initializer=_prepare_worker, initargs=(env,))
    try:
        pending: dict[Future, Task] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < workers:
                task = queue.pop(0)
                pending[pool.submit(execute_task, task)] = task
                bar.start(task)
            done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # a worker died (killed, out of memory): the point failed
                    from .execute import error_text

                    error = f"the worker process stopped: {error_text(exc)}"
                    store.mark_failed(Path(task.run_dir), error)
                    outcome = Outcome(task.name, task.run_dir, "failed", error)
                finished(outcome)
            bar.refresh()
    except BaseException:  # Ctrl-C: stop the workers now (their kernels follow within a second)
        workers_now = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers_now:
            with contextlib.suppress(Exception):
                process.terminate()
        raise
    pool.shutdown(wait=True)


def dry_run(params: ParamSet | str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
            output_root: str | os.PathLike | None = None, workers: int | None = None,
            threads: int | None = None) -> Plan:
    """Print every point with its state, without running anything."""
    from collections import Counter

    plan = make_plan(params, data_dir=data_dir, output_root=output_root, workers=workers, threads=threads)
    print(f"{plan.params.path}: experiment {plan.experiment!r} in {plan.runs_dir} ({plan.workers} worker(s) of "
          f"{plan.threads} thread(s))")
    rows = [(task_state(t), Path(t.notebook).name, t.name,
             ", ".join(f"{k}={v}" for k, v in t.parameters.items() if k in ("epochs", "max_sequences", "dataset")))
            for t in plan.tasks]
    width = max(len(r[2]) for r in rows)
    for state, notebook, name, extra in rows:
        print(f"  {state:8} {notebook:34} {name:{width}}  {extra}")
    print("  " + ", ".join(f"{n} {state}" for state, n in Counter(r[0] for r in rows).items()))
    return plan


def main(args: Any) -> int:
    """``python -m entropylab sweep`` (the parsed arguments of :mod:`entropylab.cli`)."""
    options = {"data_dir": args.data_dir, "output_root": args.output_root, "workers": args.workers,
               "threads": getattr(args, "threads", None)}
    if getattr(args, "dry_run", False):
        dry_run(args.params, **options)
        return 0
    try:
        result = run_sweep(args.params, **options)
    except KeyboardInterrupt:
        print("sweep stopped; run the same command again to finish the unfinished runs", file=sys.stderr)
        return 130
    return result.exit_status
