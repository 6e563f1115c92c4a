"""Run a parameter file's grid with papermill: resumable, parallel, failure-isolated, collected.

``python -m entropylab sweep params/paper.yaml [--workers N] [--threads T] [--data-dir D] [--output-root O]
[--dry-run]``

* Each grid point (see :mod:`entropylab.params`) is one execution of its notebook, written to
  ``<outputs>/runs/<experiment>/<slug>/notebook.ipynb`` (under a temporary name, renamed on success).
* A point is done when its folder holds the ``COMPLETE`` marker (written last by :func:`entropylab.train.run`),
  the same config and the executed notebook; done points are skipped, so a stopped sweep (Ctrl-C, SIGKILL)
  restarted redoes only the unfinished ones.
* ``N`` workers run points in parallel, each in its own process (and each notebook in its own kernel) with
  ``ENTROPYLAB_THREADS`` TensorFlow threads: ``--threads``, else the file's ``threads``, else
  ``max(1, cores // N)``. The thread count changes the numbers (not their determinism), so the paper's
  file fixes it.
* A failing point is recorded in its folder (``FAILED`` with the error, ``notebook.failed.ipynb``); the others
  go on. The exit status is the number of failed points (at most 100).
* ``dataset: auto`` is resolved once: without the NYT data the runs use the synthetic corpus and go to the
  experiment ``<experiment>-synthetic``.
* After every finished point, every complete run of the experiment is collected into
  ``<outputs>/results/<experiment>.csv``: one row per run and epoch (config columns, then history columns;
  the config's ``loss`` is the column ``loss_name``, since ``loss`` is the history's training loss).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths, runs
from .params import ParamSet, Point, load_params

NOTEBOOK = "notebook.ipynb"
FAILED_NOTEBOOK = "notebook.failed.ipynb"
LOCK = ".sweep.lock"
MAX_EXIT_STATUS = 100
#: Config columns of the results table, in this order (``data_dir`` and ``synthetic`` are left out). The config's
#: ``loss`` is renamed ``loss_name``: ``loss`` is the history's training loss.
CONFIG_COLUMNS = ("dataset", "loss_name", "weight", "head", "seed", "epochs", "batch_size", "split", "val_fraction",
                  "embedding_dim", "lstm_units", "dropout", "learning_rate", "max_sequences", "jit_compile")
#: The kernels' own log (not the notebook's output) only for errors: no TCP-encryption notice per run.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Task:
    """One grid point ready to execute (plain values only: it is sent to a worker process)."""

    notebook: str
    parameters: dict[str, Any]
    run_dir: str
    slug: str
    identity: dict[str, Any]


@dataclass
class Outcome:
    """What became of one point: ``"done"`` (skipped), ``"complete"`` or ``"failed"``."""

    slug: str
    run_dir: str
    status: str
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Plan:
    """A parameter file resolved against an outputs folder: the experiment's name and every point's task."""

    params: ParamSet
    experiment: str
    output_root: Path
    tasks: list[Task] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return paths.runs_dir(self.experiment, self.output_root)

    @property
    def results_csv(self) -> Path:
        return results_path(self.experiment, self.output_root)


def results_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>.csv``."""
    return paths.outputs_dir(output_root) / "results" / f"{experiment}.csv"


# ---------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------

def make_plan(params: ParamSet | str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
              output_root: str | os.PathLike | None = None) -> Plan:
    """Resolve ``dataset: auto`` (once), the data folder and the outputs folder; one task per grid point.

    ``data_dir`` (the ``--data-dir`` option) overrides the file's. Paths are made absolute because the
    notebooks run with their own folder as working directory.
    """
    from .data import find_nyt_dir

    param_set = params if isinstance(params, ParamSet) else load_params(params)
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
            from .data import DataError, missing_data_message

            raise DataError(f"{param_set.path}: a run asks for dataset 'nyt'; {missing_data_message()}")
    plan = Plan(param_set, experiment, root)
    for point in points:
        config = point.config()
        parameters = {**point.parameters, "experiment": experiment, "output_root": str(root)}
        run_dir = plan.runs_dir / config.slug
        plan.tasks.append(Task(str(point.notebook), parameters, str(run_dir), config.slug, config.identity()))
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
    if runs.is_complete(run_dir):
        if _stored_identity(run_dir) != task.identity:
            return "conflict"
        return "done" if (run_dir / NOTEBOOK).is_file() else "todo"
    return "failed" if runs.is_failed(run_dir) else "todo"


def _stored_identity(run_dir: Path) -> dict[str, Any] | None:
    try:
        stored = runs.read_json(run_dir / runs.CONFIG)
    except (OSError, ValueError):
        return None
    stored.pop("data_dir", None)
    return stored


# ---------------------------------------------------------------------------------------------------------
# Executing one point
# ---------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[bool]:
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


def _error_text(exc: BaseException) -> str:
    return _ANSI.sub("", f"{type(exc).__name__}: {exc}").strip()


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any]) -> str | None:
    """Execute ``notebook`` with papermill into ``output`` (written under a temporary name, renamed on success).

    Returns ``None`` on success, else the error (one text); the partly executed notebook is then kept as
    ``<output stem>.failed.ipynb``. The kernel runs in the notebook's folder.
    """
    import papermill

    output = Path(output)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters=parameters, kernel_name="python3",
                                   language="python", progress_bar=False, log_output=False,
                                   cwd=str(Path(notebook).parent), extra_arguments=KERNEL_ARGUMENTS)
    except Exception as exc:  # the caller records it; a failing notebook never stops the others
        if partial.is_file():
            os.replace(partial, failed)
        return _error_text(exc)
    os.replace(partial, output)
    failed.unlink(missing_ok=True)
    return None


def execute_task(task: Task) -> Outcome:
    """Execute one point's notebook into its run folder; a failure is recorded there, never raised."""
    started = time.perf_counter()
    run_dir = Path(task.run_dir)
    with _run_lock(run_dir) as locked:
        if not locked:
            return Outcome(task.slug, task.run_dir, "failed",
                           f"{run_dir} is being executed by another sweep; wait for it or stop it")
        error = execute_notebook(task.notebook, run_dir / NOTEBOOK, task.parameters)
        if error is None and not runs.is_complete(run_dir):
            (run_dir / NOTEBOOK).unlink()
            error = f"the notebook finished but {run_dir} has no {runs.COMPLETE} marker"
        if error is not None:
            runs.mark_failed(run_dir, f"notebook {Path(task.notebook).name} failed: {error}")
            return Outcome(task.slug, task.run_dir, "failed", error, time.perf_counter() - started)
    return Outcome(task.slug, task.run_dir, "complete", None, time.perf_counter() - started)


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
# Collecting
# ---------------------------------------------------------------------------------------------------------

def collect(experiment: str, output_root: str | os.PathLike | None = None, *, write: bool = True) -> pd.DataFrame:
    """Every complete run of ``experiment`` as a tidy table: one row per run and epoch.

    Columns: ``experiment``, ``run`` (the folder name), the config columns (:data:`CONFIG_COLUMNS`; the config's
    ``loss`` is called ``loss_name``), then the history columns (``loss`` is the training loss). Rows are sorted
    by loss name, weight, seed, run and epoch. With ``write`` the table goes
    (atomically) to ``<outputs>/results/<experiment>.csv`` when it has rows.
    """
    frames = []
    for record in runs.completed_runs(paths.runs_dir(experiment, output_root)):
        if record.history.empty:
            continue
        head = {"experiment": experiment, "run": record.label,
                **{c: record.config.get("loss" if c == "loss_name" else c) for c in CONFIG_COLUMNS}}
        frame = record.history.copy()
        for position, (column, value) in enumerate(head.items()):
            frame.insert(position, column, [value] * len(frame))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["experiment", "run", *CONFIG_COLUMNS])
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["loss_name", "weight", "seed", "run", "epoch"], kind="stable").reset_index(drop=True)
    if write:
        runs.write_csv(results_path(experiment, output_root), table)
    return table


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


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def run_sweep(params: ParamSet | str | os.PathLike, *, workers: int | None = None, threads: int | None = None,
              data_dir: str | os.PathLike | None = None, output_root: str | os.PathLike | None = None,
              progress: bool = True) -> SweepResult:
    """Execute every unfinished point of a parameter file (see the module docstring)."""
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be an integer >= 1, got {value}")
    plan = make_plan(params, data_dir=data_dir, output_root=output_root)
    workers = workers or plan.params.workers or 1
    env = kernel_environment(threads or plan.params.threads or max(1, available_cores() // workers))
    outcomes: list[Outcome] = []
    todo = []
    for task in plan.tasks:
        state = task_state(task)
        if state == "done":
            outcomes.append(Outcome(task.slug, task.run_dir, "done"))
        elif state == "conflict":
            outcomes.append(Outcome(task.slug, task.run_dir, "failed",
                                    f"{task.run_dir} holds a finished run of another config; remove the folder or "
                                    f"rename the experiment in {plan.params.path}"))
        else:
            todo.append(task)
    print(f"sweep {plan.params.path.name}: experiment {plan.experiment!r}, {len(plan.tasks)} runs, "
          f"{len(plan.tasks) - len(todo)} already finished, {len(todo)} to run with {workers} worker(s) of "
          f"{env['ENTROPYLAB_THREADS']} thread(s)", flush=True)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(plan.tasks), initial=len(plan.tasks) - len(todo), unit="run", desc=plan.experiment,
               disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True)

    def finished(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if outcome.status == "failed":
            first_line = (outcome.error or "").splitlines()[0] if outcome.error else ""
            bar.write(f"FAILED {outcome.slug}: {first_line} (details in {outcome.run_dir}/{runs.FAILED})")
        else:
            bar.write(f"finished {outcome.slug}")
            collect(plan.experiment, plan.output_root)
        bar.set_postfix_str(outcome.slug, refresh=False)
        bar.update(1)

    try:
        if todo and workers == 1:
            with applied_environment(env):
                for task in todo:
                    finished(execute_task(task))
        elif todo:
            _run_pool(todo, workers, env, finished)
    finally:
        bar.close()
    collect(plan.experiment, plan.output_root)
    result = SweepResult(plan, outcomes)
    summary = (f"{sum(o.status == 'complete' for o in outcomes)} ran, {sum(o.status == 'done' for o in outcomes)} "
               f"were already finished, {len(result.failed)} failed; results: {plan.results_csv}")
    print(summary, flush=True)
    for outcome in result.failed:
        print(f"  failed: {outcome.slug} ({outcome.run_dir})", flush=True)
    return result


def _run_pool(todo: list[Task], workers: int, env: dict[str, str], finished: Any) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                               initializer=_prepare_worker, initargs=(env,))
    try:
        pending: dict[Future, Task] = {pool.submit(execute_task, task): task for task in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # a worker died (killed, out of memory): the point failed
                    error = f"the worker process stopped: {_error_text(exc)}"
                    runs.mark_failed(Path(task.run_dir), error)
                    outcome = Outcome(task.slug, task.run_dir, "failed", error)
                finished(outcome)
    except BaseException:  # Ctrl-C: stop the workers now (their kernels follow within a second)
        workers_now = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers_now:
            with contextlib.suppress(Exception):
                process.terminate()
        raise
    pool.shutdown(wait=True)


def dry_run(params: ParamSet | str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
            output_root: str | os.PathLike | None = None) -> Plan:
    """Print every point with its state, without running anything."""
    plan = make_plan(params, data_dir=data_dir, output_root=output_root)
    print(f"{plan.params.path}: experiment {plan.experiment!r} in {plan.runs_dir}")
    rows = [(task_state(t), Path(t.notebook).name, t.slug,
             ", ".join(f"{k}={v}" for k, v in t.parameters.items() if k in ("epochs", "max_sequences", "dataset")))
            for t in plan.tasks]
    width = max(len(r[2]) for r in rows)
    for state, notebook, slug, extra in rows:
        print(f"  {state:8} {notebook:34} {slug:{width}}  {extra}")
    counts = pd.Series([r[0] for r in rows]).value_counts()
    print("  " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    return plan


def main(args: Any) -> int:
    """``python -m entropylab sweep`` (the parsed arguments of :mod:`entropylab.cli`)."""
    if getattr(args, "dry_run", False):
        dry_run(args.params, data_dir=args.data_dir, output_root=args.output_root)
        return 0
    try:
        result = run_sweep(args.params, workers=args.workers, threads=getattr(args, "threads", None),
                           data_dir=args.data_dir, output_root=args.output_root)
    except KeyboardInterrupt:
        print("sweep stopped; run the same command again to finish the unfinished runs", file=sys.stderr)
        return 130
    return result.exit_status
