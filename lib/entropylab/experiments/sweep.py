"""Run a parameter file's grid with papermill: resumable, parallel, failure-isolated, collected, with progress.

``python -m entropylab sweep params/paper.yaml [--workers N] [--threads T] [--data-dir D] [--output-root O]
[--dry-run]``

* Before anything runs (and with ``--dry-run``, which runs nothing else) everything is checked
  (:func:`validate`, with :mod:`entropylab.experiments.checks`): the whole parameter file, its study sections (a
  ``decoding`` section against the file's runs), the command line (``--engine fused`` off JAX or on Dask,
  ``--scheduler`` with ``--cluster``) and the outputs folder (a file, or a folder that cannot be written). Each
  mistake is one line naming the file, key or option and the fix.

* Each grid point (see :mod:`entropylab.experiments.params`) is one execution of its notebook, written to
  ``<outputs>/runs/<experiment>/<run name>/notebook.ipynb`` (under a temporary name, renamed on success); the
  run name is the readable slug and the hash of the point's whole config
  (:attr:`entropylab.training.config.RunConfig.run_name`).
* A point is done when its folder holds the ``COMPLETE`` marker (written last by the training), the same
  identity and the executed notebook; done points are skipped, so a stopped sweep (Ctrl-C, SIGKILL)
  restarted redoes only the unfinished ones. A finished run whose ``config.json``, ``history.csv`` or
  ``metrics.json`` is damaged (cut, emptied: :func:`entropylab.training.store.run_damage`) is unfinished: one line
  names the file and the run is trained again.
* ``N`` workers run points in parallel, each point in its own process (a worker killed from outside fails its
  point only) and each notebook in its own kernel (whose start-up log goes to a file in the run folder), with
  ``ENTROPYLAB_THREADS`` TensorFlow threads: ``--threads``, else the file's ``threads``, else ``max(1, cores // N)``.
  With ``--scheduler tcp://HOST:PORT`` (or ``--cluster local``, or the file's ``cluster``) the points run as Dask
  tasks on that cluster instead (:mod:`entropylab.experiments.engines`; ``docs/scaling.md``). The thread count
  changes the numbers (not their determinism), so it is part of each run's identity and the paper's file fixes it.
* ``engine`` (``--engine`` or the file's ``engine``: ``auto``, ``fused``, ``pool``): ``fused`` first trains the
  unfinished runs in groups that differ only in seed, weight and objective family, each group one compiled JAX
  program (:func:`entropylab.experiments.engines.run_fused`); their notebooks then find them finished. ``auto`` is
  ``fused`` where JAX sees a GPU (``KERAS_BACKEND=jax``), else the pool.
* A failing point is recorded in its folder (``FAILED`` with the error, ``notebook.failed.ipynb``); the others
  go on. The exit status is the number of failed points (at most 100).
* ``dataset: auto`` is resolved once: without the NYT data the runs use the synthetic corpus and go to the
  experiment ``<experiment>-synthetic``.
* A file with tuned run entries (``tune``, :mod:`entropylab.experiments.tuning`) runs in two stages: its tuning
  runs go to the experiment ``<experiment>-tuning``; then each group's chosen value and its neighbours, with every
  seed, join the file's other points in ``<experiment>``. The choices are written to
  ``<outputs>/results/<experiment>-choices.csv``. Both stages resume like any sweep. A file with ``settings`` runs
  both stages of one setting before the next, so a study stopped part-way has whole settings.
* Progress counts epochs (done over planned, read from each running run's ``progress.json``), with finished
  runs as a second number. After every finished point the experiment's results table is collected again
  (:func:`entropylab.experiments.results.collect`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..training import store
from .checks import (
    SECTION_CHECKS,
    check_counts,
    check_options,
    check_outputs,
    check_splits,
    check_writable,
    where_to_run,
)
from .execute import NOTEBOOK, Outcome, Task, applied_environment, kernel_environment
from .kernels import runs_per_kernel
from .params import ParamSet, Point, load_params
from .progress import EpochProgress
from .results import collect, results_path, rule_path

__all__ = ["Plan", "SweepResult", "applied_environment", "check_options", "check_outputs", "dry_run",
           "kernel_environment", "make_plan", "run_sweep", "validate"]
MAX_EXIT_STATUS = 100


@dataclass
class Plan:
    """A parameter file resolved against an outputs folder: the experiment's name and every point's task."""

    params: ParamSet
    experiment: str
    output_root: Path
    workers: int
    threads: int
    backend: str = "tensorflow"  # the Keras backend every run trains on (training.config.sweep_backend)
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
    """Resolve ``dataset: auto`` (once), the data folder, the outputs folder, workers, threads and the Keras
    backend (:func:`entropylab.training.config.sweep_backend`: ``$KERAS_BACKEND``, else the file's ``backend``,
    else JAX); one task per grid point, its run folder named by its whole config (threads and backend included),
    its kernel started on that backend.

    ``data_dir`` (the ``--data-dir`` option) overrides the file's. Paths are made absolute because the
    notebooks run with their own folder as working directory.
    """
    from ..data import find_nyt_dir
    from ..training.config import sweep_backend

    check_counts(workers, threads)
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
    check_splits(param_set.path, points)
    plan = Plan(param_set, experiment, root, workers, threads, sweep_backend(param_set.backend))
    env = kernel_environment(threads, plan.backend)
    for point in points:
        config = point.config(threads=threads, backend=plan.backend)
        parameters = {**point.parameters, "experiment": experiment, "output_root": str(root)}
        run_dir = plan.runs_dir / config.run_name
        plan.tasks.append(Task(str(point.notebook), parameters, str(run_dir), config.run_name, config.identity(),
                               config.epochs, env))
    return plan


def validate(params: ParamSet | str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
             output_root: str | os.PathLike | None = None, workers: int | None = None, threads: int | None = None,
             scheduler: str | None = None, cluster: str | None = None, engine: str | None = None,
             checks: tuple[Callable[[Plan], Any], ...] = ()) -> Plan:
    """Everything that can be checked before any run is trained: the counts, ``$ENTROPYLAB_KERNEL_RUNS``, the
    file, the command line (:func:`check_options`), the outputs folder (:func:`check_outputs`), the plan (data,
    splits) and each study section of the file (:data:`entropylab.experiments.checks.SECTION_CHECKS`) plus
    ``checks`` (a study's own), each called with the plan. The first mistake is raised as one line; the plan is
    returned (nothing is written)."""
    import importlib

    check_counts(workers, threads)
    runs_per_kernel()
    param_set = params if isinstance(params, ParamSet) else load_params(params)
    check_options(param_set, scheduler=scheduler, cluster=cluster, engine=engine)
    check_outputs(output_root)
    plan = make_plan(param_set, data_dir=data_dir, output_root=output_root, workers=workers, threads=threads)
    every: list[Callable[[Plan], Any]] = []
    for section, check in SECTION_CHECKS.items():
        if getattr(param_set, section, None) is not None:
            module, function = check.split(":")
            every.append(getattr(importlib.import_module(module), function))
    for check in (*every, *(c for c in checks if c not in every)):
        check(plan)
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
    """``"done"``, ``"todo"``, ``"failed"`` (last attempt failed), ``"damaged"`` (finished, but a file of it is
    damaged: :func:`entropylab.training.store.run_damage`; it is trained again) or ``"conflict"`` (another
    config's run)."""
    run_dir = Path(task.run_dir)
    damage = store.run_damage(run_dir)
    if store.identity_state(run_dir, task.identity) == "other" and not (damage and damage.path.name == store.CONFIG):
        return "conflict"  # a cut config.json is this run's (its folder is named by the config's hash)
    if damage is not None:
        return "damaged"
    if store.is_complete(run_dir):
        return "done" if (run_dir / NOTEBOOK).is_file() else "todo"
    return "failed" if store.is_failed(run_dir) else "todo"


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


def run_sweep(params: ParamSet | str | os.PathLike, *, workers: int | None = None, threads: int | None = None,
              data_dir: str | os.PathLike | None = None, output_root: str | os.PathLike | None = None,
              scheduler: str | None = None, cluster: str | None = None, engine: str | None = None,
              progress: bool = True) -> SweepResult:
    """Execute every unfinished point of a parameter file (see the module docstring).

    ``scheduler`` (``tcp://HOST:PORT``) runs the points on that Dask cluster; ``cluster="local"`` starts a Dask
    ``LocalCluster`` of ``workers`` processes; both default to the file's ``cluster``; without any, the local
    worker processes run them. ``engine`` (default: the file's ``engine``, else ``auto``) ``fused`` trains the runs
    in fused groups on JAX first (:func:`entropylab.experiments.engines.run_fused`), ``pool`` in their notebooks,
    ``auto`` fused where JAX sees a GPU. A file with tuned entries runs, setting by setting, its tuning stage and
    then the chosen runs (the result's outcomes are those of every stage, its plan the last one's).
    """
    options = {"workers": workers, "threads": threads, "data_dir": data_dir, "output_root": output_root,
               "scheduler": scheduler, "cluster": cluster, "engine": engine, "progress": progress}
    check_counts(workers, threads)
    param_set = params if isinstance(params, ParamSet) else load_params(params)
    validate(param_set, **{k: v for k, v in options.items() if k != "progress"})  # before anything runs
    from .engines import shared_workers

    with shared_workers():  # the stages below share the local workers and their warm kernels
        return _run_stages(param_set, options)


def _run_stages(param_set: ParamSet, options: dict[str, Any]) -> SweepResult:
    """The stages of ``param_set``: one, or for a file with tuned entries each setting's tuning then chosen runs."""
    if not param_set.tuning_points:
        return _run_stage(param_set, **options)
    outcomes: list[Outcome] = []
    plan = None
    study = StudyRecord(param_set.experiment)
    if param_set.verdicts is not None:  # fixed before any run trains; the report judges with it
        store.write_json(rule_path(param_set.experiment, options["output_root"]), param_set.verdicts)
    for part in by_setting(param_set):  # one setting after the other: each is finished before the next starts
        first = _run_stage(tuning_stage(part), **options)
        final, missing = final_stage(part, first.plan, study)
        for entry, setting in missing:
            print(f"  runs[{entry}] in setting {setting}: a tuning run is unfinished or failed, nothing is chosen "
                  f"and its runs are left out; run the sweep again to retry it", flush=True)
        second = _run_stage(final, **options)
        study.write(second.plan)
        outcomes += first.outcomes + second.outcomes
        plan = second.plan
    return SweepResult(plan, outcomes)


def by_setting(param_set: ParamSet) -> list[ParamSet]:
    """The file cut into one parameter set per data setting (its points and tuning points), in file order."""
    settings = sorted({p.setting for p in [*param_set.points, *param_set.tuning_points]})
    return [dataclasses.replace(param_set, points=[p for p in param_set.points if p.setting == s],
                                tuning_points=[p for p in param_set.tuning_points if p.setting == s])
            for s in settings]


def tuning_stage(param_set: ParamSet) -> ParamSet:
    """The tuning runs of a file as a parameter set of their own, in the experiment ``<experiment>-tuning``."""
    return dataclasses.replace(param_set, experiment=f"{param_set.experiment}-tuning",
                               points=list(param_set.tuning_points), tuning_points=[])


@dataclass
class StudyRecord:
    """What a tuned file's sweep has decided so far, rewritten whole after each setting (never merged with an
    older file): ``<experiment>-choices.csv`` (the choices) and ``<experiment>-plan.csv`` (the runs that the
    file reports, one row per run: its setting and folder name), so a report takes exactly these runs."""

    experiment: str
    choices: list[Any] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def write(self, plan: Plan) -> None:
        from . import tuning

        experiment = plan.experiment
        for task in plan.tasks:
            p = task.parameters
            self.runs.append({"dataset": p["dataset"], "split": p["split"], "objective": p["loss"],
                              "weight": p["weight"], "seed": p["seed"], "run": task.name})
        if self.choices:
            store.write_csv(choices_path(experiment, plan.output_root), tuning.choices_table(self.choices),
                            checked=True)
        import pandas as pd

        store.write_csv(results_path(f"{experiment}-plan", plan.output_root), pd.DataFrame(self.runs), checked=True)


def final_stage(param_set: ParamSet, tuning_plan: Plan,
                study: StudyRecord | None = None) -> tuple[ParamSet, list[tuple[int, int]]]:
    """The file's points plus each tuning group's chosen runs (see :mod:`entropylab.experiments.tuning`), without
    duplicates; the choices join ``study`` (written by the caller); also the groups nothing was chosen for."""
    from . import tuning

    made, missing = tuning.choices(param_set.tuning_points, [t.run_dir for t in tuning_plan.tasks],
                                   [t.parameters["dataset"] for t in tuning_plan.tasks])
    if study is not None:
        study.choices += made
    for row in tuning.choices_table(made).itertuples():
        print(f"  tuned {row.objective} on {row.dataset}/{row.split}: chosen {row.chosen:g} of [{row.grid}]"
              f"{' (at the edge of the grid: widen it)' if row.at_edge else ''}", flush=True)
    points, names = [], set()
    for point in [*param_set.points, *(p for choice in made for p in choice.final_points())]:
        name = point.config(**({"dataset": "synthetic"} if point.parameters["dataset"] == "auto" else {})).run_name
        if name not in names:  # a chosen run may also be a point of the file (or of another tuned entry)
            names.add(name)
            points.append(point)
    return dataclasses.replace(param_set, points=points, tuning_points=[]), missing


def choices_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>-choices.csv``: the tuned values of a study."""
    return results_path(f"{experiment}-choices", output_root)


def _run_stage(param_set: ParamSet, *, workers: int | None, threads: int | None, data_dir: str | os.PathLike | None,
               output_root: str | os.PathLike | None, scheduler: str | None, cluster: str | None,
               engine: str | None, progress: bool) -> SweepResult:
    """Execute every unfinished point of ``param_set`` (no tuning stage)."""
    from .engines import resolve_engine

    plan = make_plan(param_set, data_dir=data_dir, output_root=output_root, workers=workers, threads=threads)
    check_writable(plan.runs_dir)
    where_to = where_to_run(scheduler, cluster, plan.params.cluster)
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
            if state == "damaged" and (damage := store.run_damage(task.run_dir)) is not None:
                print(f"{damage.path} is damaged ({damage.what}); the sweep trains run {task.name} again", flush=True)
            todo.append(task)
    training = resolve_engine(engine or plan.params.engine or "auto", plan.backend,
                              dask=where_to != "local-processes", probe=bool(todo))
    if training == "fused":
        from .engines import fused_stage, release_shared_workers

        release_shared_workers()  # a former stage's idle kernels would hold memory the fused training needs
        todo = fused_stage(plan.params.path.name, todo, outcomes)
    with contextlib.ExitStack() as stack:
        client = None
        if where_to != "local-processes" and todo:
            from .engines import dask_client, describe_client

            client = stack.enter_context(dask_client(where_to if where_to != "local" else None, plan.workers))
        where = (describe_client(client) if client is not None else
                 f"{plan.workers} worker(s)")
        print(f"sweep {plan.params.path.name}: experiment {plan.experiment!r}, {len(plan.tasks)} runs, "
              f"{len(plan.tasks) - len(todo)} already finished, {len(todo)} to run on {where} of "
              f"{plan.threads} thread(s), Keras on {plan.backend}", flush=True)
        outcomes.extend(_execute(plan, todo, client, progress))
    collect_results(plan, report=True)
    result = SweepResult(plan, outcomes)
    summary = (f"{sum(o.status == 'complete' for o in outcomes)} ran, {sum(o.status == 'done' for o in outcomes)} "
               f"were already finished, {sum(o.status == 'busy' for o in outcomes)} running elsewhere, "
               f"{len(result.failed)} failed; results: {plan.results_csv}")
    print(summary, flush=True)
    for outcome in result.failed:
        print(f"  failed: {outcome.name} ({outcome.run_dir})", flush=True)
    return result


def collect_results(plan: Plan, report: bool = False) -> None:
    """Collect the experiment's results table (:func:`entropylab.experiments.results.collect`), leaving out a run
    whose files are damaged (its line, with ``report``, says which file and the fix): a run this sweep trains
    again is damaged until it is done, and a damaged run of the experiment that is not in this file must not stop
    the sweep."""
    left_out: list[store.DamagedFileError] = []
    collect(plan.experiment, plan.output_root, on_damaged=left_out.append)
    for damage in left_out if report else []:
        print(f"  results leave out {damage.path.parent.name}: {damage}", flush=True)


def _execute(plan: Plan, todo: list[Task], client: Any, progress: bool) -> list[Outcome]:
    """Run ``todo`` (on ``client``'s Dask cluster, else in local processes) with the epoch progress bar."""
    from .engines import run_dask, run_local

    bar = EpochProgress(plan, len(plan.tasks) - len(todo), enabled=progress and bool(todo))
    for task in plan.tasks:
        if task not in todo:
            bar.skip(task)
    by_dir = {task.run_dir: task for task in todo}
    outcomes: list[Outcome] = []

    def finished(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if outcome.status == "failed":
            first_line = (outcome.error or "").splitlines()[0] if outcome.error else ""
            bar.write(f"FAILED {outcome.name}: {first_line} (details in {outcome.run_dir}/{store.FAILED})")
        elif outcome.status == "busy":
            bar.write(f"running elsewhere {outcome.name}: another sweep is executing it; it is left to that sweep")
        else:
            bar.write(f"finished {outcome.name} in {outcome.seconds:.0f} s")
            collect_results(plan)
        bar.finish(by_dir[outcome.run_dir])

    try:
        if todo and client is not None:
            run_dask(todo, client, finished, bar)
        elif todo:
            run_local(todo, plan.workers, finished, bar)
    finally:
        bar.close()
    return outcomes


def dry_run(params: ParamSet | str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
            output_root: str | os.PathLike | None = None, workers: int | None = None,
            threads: int | None = None, scheduler: str | None = None, cluster: str | None = None,
            engine: str | None = None) -> Plan:
    """Run the checks of a real start (:func:`validate`), then print every point with its state, without running
    or writing anything."""
    param_set = params if isinstance(params, ParamSet) else load_params(params)
    validate(param_set, data_dir=data_dir, output_root=output_root, workers=workers, threads=threads,
             scheduler=scheduler, cluster=cluster, engine=engine)
    options = {"data_dir": data_dir, "output_root": output_root, "workers": workers, "threads": threads}
    if not param_set.tuning_points:
        return _dry_run_stage(param_set, **options)
    plan = None
    for part in by_setting(param_set):
        first = _dry_run_stage(tuning_stage(part), **options)
        if all(task_state(t) == "done" for t in first.tasks):
            final, _ = final_stage(part, first)
        else:
            final = dataclasses.replace(part, tuning_points=[])
            print(f"  then: {param_set.experiment!r} with the chosen values of {len(_groups(part))} tuned "
                  f"group(s), decided when the tuning runs have finished, and these points:")
        plan = _dry_run_stage(final, **options)
    return plan


def _groups(param_set: ParamSet) -> set[tuple[int, int]]:
    return {(p.entry, p.setting) for p in param_set.tuning_points}


def _dry_run_stage(params: ParamSet, *, data_dir: str | os.PathLike | None, output_root: str | os.PathLike | None,
                   workers: int | None, threads: int | None) -> Plan:
    from collections import Counter

    plan = make_plan(params, data_dir=data_dir, output_root=output_root, workers=workers, threads=threads)
    print(f"{plan.params.path}: experiment {plan.experiment!r} in {plan.runs_dir} ({plan.workers} worker(s) of "
          f"{plan.threads} thread(s), Keras on {plan.backend})")
    rows = [(task_state(t), Path(t.notebook).name, t.name,
             ", ".join(f"{k}={v}" for k, v in t.parameters.items() if k in ("epochs", "max_sequences", "dataset")))
            for t in plan.tasks]
    width = max((len(r[2]) for r in rows), default=0)
    for state, notebook, name, extra in rows:
        print(f"  {state:8} {notebook:34} {name:{width}}  {extra}")
    print("  " + ", ".join(f"{n} {state}" for state, n in Counter(r[0] for r in rows).items()))
    return plan


def main(args: Any) -> int:
    """``python -m entropylab sweep`` (the parsed arguments of :mod:`entropylab.cli`)."""
    options = {"data_dir": args.data_dir, "output_root": args.output_root, "workers": args.workers,
               "threads": getattr(args, "threads", None)}
    where = {"scheduler": getattr(args, "scheduler", None), "cluster": getattr(args, "cluster", None),
             "engine": getattr(args, "engine", None)}
    if getattr(args, "dry_run", False):
        dry_run(args.params, **options, **where)
        return 0
    try:
        result = run_sweep(args.params, **where, **options)
    except KeyboardInterrupt:
        print("sweep stopped; run the same command again to finish the unfinished runs", file=sys.stderr)
        return 130
    return result.exit_status
