"""``python -m entropylab bench overhead PARAMS [--runs N] [--output-dir DIR]``: where one run's time goes, outside
its epochs and inside them.

The first ``N`` grid points of each data setting of a parameter file (default 3; a file of tuned entries only: its
tuning runs) are
executed one after the other as a sweep of one worker executes them (:func:`entropylab.experiments.engines.run_local`:
a spawned worker process, its warm kernel (:mod:`entropylab.experiments.kernels`), each notebook written to its run
folder, the results table collected after each run) in a fresh temporary outputs folder, so nothing is reused and
nothing of ``<outputs>`` is touched. The first run pays the worker's and the kernel's start and the imports; the
median over three runs is a warm run's, as nearly every run of a study is (a kernel serves up to 25).
``ENTROPYLAB_KERNEL_RUNS=1`` measures a fresh kernel per run instead. The runs train with
``ENTROPYLAB_PHASE_TIMES=1``, so each writes ``phases.json`` (:mod:`entropylab.training.phases`: it only reads
clocks; the runs' numbers are those of any run).

Each run's wall time, from handing it to the worker to the end of the collection after it, is cut at timestamps
into phases (``PHASES``): the worker's start and papermill's reading of the notebook (to papermill's notebook start
time), the kernel's start or the connection to the warm one (to the first cell's start), the notebook's cells
before the training cell, the training cell (cut by ``phases.json``; what it does not name is ``run_other``), the
cells after it, the end of the execution (to papermill's end time), the notebook's final write and the kernel's
reset (to the outcome's arrival here) and the collection. Papermill's cell times and this process's clock are both
Unix time, so the phases add up to the wall time; ``phases.json``'s seconds come from the kernel's monotonic clock
and ``run_other`` is the cell's time less them.

It prints a table per data setting of the file (phase, median seconds over its runs, their share of the median
wall time; then the epochs' phases together and everything outside them) and writes them to
``<output-dir>/overhead_<time>.csv`` (default ``<outputs>/benchmarks``) with the machine and versions
(:mod:`entropylab.bench.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import paths

#: Every phase of one run, in the order it happens: ``(name, what it is)``.
PHASES: tuple[tuple[str, str], ...] = (
    ("process_start", "worker process start (first run); papermill reads and parameterises the notebook"),
    ("kernel_start", "kernel start (first run), or connecting to the warm kernel"),
    ("notebook_imports", "notebook cells before the run (parameters, imports)"),
    ("run_imports", "TensorFlow, Keras and the run's modules imported"),
    ("data", "data load and split"),
    ("build", "seeds, model build and compile, validation evaluator, batches"),
    ("first_epoch", "first epoch's training steps (graph tracing, XLA compile)"),
    ("later_epochs", "the other epochs' training steps"),
    ("validation", "validation passes (every epoch's metrics)"),
    ("references", "count-model references (unigram, bigram)"),
    ("generation", "generation metrics"),
    ("write_run_folder", "writing the run folder (config, history, metrics, weights, markers)"),
    ("run_other", "rest of the training cell (config, folder checks, end of fit, metrics)"),
    ("notebook_after", "notebook cells after the run (tables, figures)"),
    ("kernel_shutdown", "end of the notebook's execution (a kernel of its own: its shutdown)"),
    ("notebook_write", "notebook's final write, the warm kernel's reset, the outcome sent back"),
    ("collection", "collecting the results table"),
)
#: The phases inside the epochs; every other phase is outside them.
EPOCH_PHASES = ("first_epoch", "later_epochs", "validation")
#: The phases read from the run's ``phases.json`` (the rest of the training cell is ``run_other``).
INSIDE_PHASES = ("run_imports", "data", "build", "first_epoch", "later_epochs", "validation", "references",
                 "generation", "write_run_folder")
#: The source text that marks a notebook's training cell.
TRAINING_CALL = "train_point("
CSV_COLUMNS = ("date", "setting", "kind", "phase", "description", "median_seconds", "share", "count", "runs",
               "seconds_each_run", "params", "notebook", "jit_compile", "generation_prefixes", "threads", "cores",
               "physical_cores", "cpu_model", "memory_gb", "os", "python", "tensorflow", "keras", "numpy")


def training_cell_index(cells: list[dict[str, Any]], notebook: str | os.PathLike) -> int:
    """The index of the one code cell of ``cells`` that calls ``train_point``; a ``ValueError`` otherwise."""
    found = [i for i, cell in enumerate(cells)
             if cell.get("cell_type") == "code" and TRAINING_CALL in "".join(cell.get("source", ""))]
    if len(found) != 1:
        raise ValueError(f"{notebook}: the overhead benchmark needs a training notebook with one cell calling "
                         f"train_point (found {len(found)}); give a parameter file of training notebooks")
    return found[0]


def _unix(stamp: str | None, where: str) -> float:
    if not stamp:
        raise ValueError(f"{where} has no papermill time; was it executed by papermill to the end?")
    return datetime.fromisoformat(stamp).timestamp()


def notebook_times(executed: str | os.PathLike) -> dict[str, float]:
    """Unix times of an executed notebook (papermill's metadata): ``start``/``end`` of the notebook, ``first`` (the
    first cell's start), ``run_start``/``run_end`` (the training cell's) and ``last`` (the last cell's end)."""
    document = json.loads(Path(executed).read_text(encoding="utf8"))
    cells = document["cells"]
    index = training_cell_index(cells, executed)
    meta = document.get("metadata", {}).get("papermill", {})
    timed = [c["metadata"]["papermill"] for c in cells if c.get("metadata", {}).get("papermill", {}).get("end_time")]
    if not timed:
        raise ValueError(f"{executed}: no cell has a papermill time; was it executed by papermill?")
    run = cells[index].get("metadata", {}).get("papermill", {})
    return {"start": _unix(meta.get("start_time"), str(executed)), "end": _unix(meta.get("end_time"), str(executed)),
            "first": _unix(timed[0].get("start_time"), f"{executed}'s first cell"),
            "run_start": _unix(run.get("start_time"), f"{executed}'s training cell"),
            "run_end": _unix(run.get("end_time"), f"{executed}'s training cell"),
            "last": _unix(timed[-1].get("end_time"), f"{executed}'s last cell")}


def run_phases(times: dict[str, float], inside: dict[str, Any], called: float, returned: float,
               collected: float) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds and counts of every phase of :data:`PHASES` for one run.

    ``times``: :func:`notebook_times`; ``inside``: its ``phases.json``; ``called``, ``returned``, ``collected``:
    Unix times at which its worker was started, its outcome arrived and the collection after it ended.
    """
    recorded = inside.get("seconds", {})
    counts = inside.get("counts", {})
    seconds = {
        "process_start": times["start"] - called,
        "kernel_start": times["first"] - times["start"],
        "notebook_imports": times["run_start"] - times["first"],
        **{phase: float(recorded.get(phase, 0.0)) for phase in INSIDE_PHASES},
        "run_other": (times["run_end"] - times["run_start"]) - sum(float(recorded.get(p, 0.0)) for p in INSIDE_PHASES),
        "notebook_after": times["last"] - times["run_end"],
        "kernel_shutdown": times["end"] - times["last"],
        "notebook_write": returned - times["end"],
        "collection": collected - returned,
    }
    return ({name: seconds[name] for name, _ in PHASES},
            {name: int(counts.get(name, 1)) if name in ("later_epochs", "validation") else 1 for name, _ in PHASES})


class _Dispatches:
    """The progress :func:`entropylab.experiments.engines.run_local` reports to: when each task went to its worker."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def start(self, task: Any) -> None:
        self.times[task.name] = time.time()

    def refresh(self) -> None:
        pass


def overhead_plan(params: str | os.PathLike, runs: int, output_root: str | os.PathLike) -> Any:
    """The sweep's plan of ``params`` in ``output_root``, cut to the first ``runs`` points of each of its data
    settings, each task set to write ``phases.json``; a file of tuned entries only gives its tuning runs."""
    from ..experiments.params import load_params
    from ..experiments.sweep import make_plan, tuning_stage
    from ..training.phases import ENVIRONMENT

    if runs < 1:
        raise ValueError(f"--runs must be an integer >= 1, got {runs}")
    param_set = load_params(params)
    if not param_set.points and param_set.tuning_points:
        param_set = tuning_stage(param_set)
    firsts: dict[int, list[Any]] = {}
    for point in param_set.points:  # the first ``runs`` points of every data setting
        chosen = firsts.setdefault(point.setting, [])
        if len(chosen) < runs:
            chosen.append(point)
    param_set = dataclasses.replace(param_set, points=[p for chosen in firsts.values() for p in chosen])
    plan = make_plan(param_set, output_root=output_root)
    for task in plan.tasks:
        cells = json.loads(Path(task.notebook).read_text(encoding="utf8"))["cells"]
        training_cell_index(cells, task.notebook)
    plan.tasks = [dataclasses.replace(t, env={**t.env, ENVIRONMENT: "1"}) for t in plan.tasks]
    return plan


def measure(params: str | os.PathLike, runs: int = 3, echo: Any = print) -> tuple[Any, list[dict[str, Any]]]:
    """``(plan, one dict per run)``: the first ``runs`` points of ``params`` executed as a sweep of one worker
    executes them (one worker process, its warm kernel, the results collected after each run) in a temporary outputs
    folder removed afterwards, each run's wall time (from handing it to the worker to the end of its collection)
    cut into phases (see the module docstring)."""
    from ..experiments.engines import run_local
    from ..experiments.execute import NOTEBOOK
    from ..experiments.results import collect
    from ..training.phases import read_phases

    with tempfile.TemporaryDirectory(prefix="entropylab-overhead-") as root:
        plan = overhead_plan(params, runs, root)
        echo(f"overhead of {len(plan.tasks)} run(s) of {plan.params.path} (experiment {plan.experiment!r}, "
             f"{plan.threads} thread(s)) in {root}", flush=True)
        dispatches = _Dispatches()
        measured: list[dict[str, Any]] = []

        def finished(outcome: Any) -> None:
            returned = time.time()
            if outcome.status != "complete":
                raise RuntimeError(f"run {outcome.name} did not complete: {outcome.error} (see {outcome.run_dir})")
            collect(plan.experiment, plan.output_root)
            collected = time.time()
            called = dispatches.times[outcome.name]
            seconds, counts = run_phases(notebook_times(Path(outcome.run_dir) / NOTEBOOK),
                                         read_phases(outcome.run_dir), called, returned, collected)
            measured.append({"run": outcome.name, "setting": setting_label(outcome.name, plan),
                             "wall": collected - called, "seconds": seconds, "counts": counts})
            echo(f"  run {len(measured)}/{len(plan.tasks)} {outcome.name}: {collected - called:.1f} s", flush=True)

        run_local(plan.tasks, 1, finished, dispatches)
    return plan, measured


#: The parameters that name a data setting in the benchmark's tables.
SETTING_KEYS = ("dataset", "split", "max_sequences", "epochs", "patience")


def setting_label(name: str, plan: Any) -> str:
    """The data setting of the plan's run ``name``: its :data:`SETTING_KEYS` as ``key=value`` words."""
    parameters = next(t.parameters for t in plan.tasks if t.name == name)
    return " ".join(f"{key}={parameters[key]}" for key in SETTING_KEYS if key in parameters)


def by_setting(measured: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The measured runs grouped by their setting, in the order they ran."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in measured:
        groups.setdefault(run["setting"], []).append(run)
    return groups


def summarize(measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table: per phase the median seconds over the runs, their share of the median wall time and the median
    count (epochs for ``later_epochs`` and ``validation``); then ``epochs`` (the epoch phases together),
    ``outside_epochs`` (the rest) and ``wall`` (kind ``total``)."""
    wall = statistics.median(m["wall"] for m in measured)
    rows = []

    def row(kind: str, phase: str, description: str, each: list[float], count: float = 1) -> dict[str, Any]:
        median = statistics.median(each)
        return {"kind": kind, "phase": phase, "description": description, "median_seconds": median,
                "share": median / wall if wall > 0 else float("nan"), "count": count, "runs": len(each),
                "seconds_each_run": each}

    for name, description in PHASES:
        rows.append(row("phase", name, description, [m["seconds"][name] for m in measured],
                        statistics.median(m["counts"][name] for m in measured)))
    epochs = [sum(m["seconds"][p] for p in EPOCH_PHASES) for m in measured]
    rows.append(row("total", "epochs", "the epochs: training steps and validation passes", epochs))
    rows.append(row("total", "outside_epochs", "everything outside the epochs",
                    [m["wall"] - e for m, e in zip(measured, epochs, strict=True)]))
    rows.append(row("total", "wall", "one run's wall time, worker start to collected results",
                    [m["wall"] for m in measured]))
    return rows


def csv_rows(plan: Any, rows: list[dict[str, Any]], date: str) -> list[dict[str, Any]]:
    """``rows`` with the date, the runs' settings (of the first run), the machine and the versions."""
    from .report import machine_info, versions

    first = plan.tasks[0].parameters if plan.tasks else {}
    settings = {"date": date, "params": str(plan.params.path), "threads": plan.threads,
                "notebook": Path(plan.tasks[0].notebook).name if plan.tasks else "",
                **{k: first.get(k) for k in ("jit_compile", "generation_prefixes")}}
    return [{**settings, **row, **machine_info(), **versions()} for row in rows]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The printed table: phase, median seconds, share of the wall time, count."""
    lines = [f"{'phase':<17} {'median s':>9} {'share':>7} {'count':>5}  what", "-" * 100]
    for r in rows:
        if r["kind"] == "total" and r["phase"] == "epochs":
            lines.append("-" * 100)
        lines.append(f"{r['phase']:<17} {r['median_seconds']:>9.2f} {100 * r['share']:>6.1f}% "
                     f"{r['count']:>5g}  {r['description']}")
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], folder: str | os.PathLike, stamp: str) -> Path:
    """``<folder>/overhead_<stamp>.csv`` (atomically)."""
    from ..training.store import atomic_write_text
    from .report import to_csv

    path = Path(folder) / f"overhead_{stamp}.csv"
    atomic_write_text(path, to_csv(rows, CSV_COLUMNS))
    return path


def main(args: argparse.Namespace) -> int:
    """``entropylab bench overhead`` (its options: :mod:`entropylab.cli`): measure, print and write the CSV."""
    folder = Path(args.output_dir) if args.output_dir else paths.outputs_dir() / "benchmarks"
    try:
        plan, measured = measure(args.params, args.runs)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = []
    for setting, runs in by_setting(measured).items():
        summary = summarize(runs)
        print(f"\n{setting}\n{format_table(summary)}")
        rows += [{"setting": setting, **row} for row in summary]
    path = write_csv(csv_rows(plan, rows, time.strftime("%Y-%m-%d %H:%M:%S")), folder,
                     time.strftime("%Y-%m-%d_%H%M%S"))
    print(f"written to {path}")
    return 0
