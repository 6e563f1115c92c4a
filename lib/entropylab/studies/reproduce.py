"""``make reproduce``: a study's sweep (the paper's: ``params/paper.yaml``), then its report notebooks.

``python -m entropylab reproduce --study objectives`` (``make objectives``) does the same for the objectives study
and ``--study decoding`` (``make decoding``) for the decoding study, whose decoding grid runs between its sweep and
its report (:data:`STUDIES`, :data:`STAGES`); ``--params FILE`` runs another parameter file of a study (e.g. its
smoke file) instead.

1. :func:`entropylab.experiments.sweep.run_sweep` runs every unfinished run of ``params/paper.yaml`` (on the synthetic
   corpus, experiment ``paper-synthetic``, when the NYT data is absent) and collects
   ``<outputs>/results/<experiment>.csv``.
2. Each report notebook that exists (:data:`REPORT_NOTEBOOKS`) is executed with papermill into the
   experiment's notebooks folder (``<outputs>/notebooks/`` for ``paper``, ``<outputs>/notebooks/<experiment>/``
   for any other, e.g. ``paper-synthetic``) with the parameters it declares among ``experiment``,
   ``output_root``, ``data_dir`` and ``dataset``. A notebook whose inputs (its own source, its parameters, the
   parameter file, every results table and stage file it reads (:func:`report_inputs`), the library's source and,
   for NYT, the data files' names and sizes) are unchanged since its last complete execution is skipped, so a
   second ``make reproduce`` finishes at once. A notebook made after a failed run or stage job is not stamped: the
   next ``reproduce`` executes it again; one study at a time executes a given notebook.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .. import paths

PARAMS_FILE = Path("params") / "paper.yaml"
REPORT_NOTEBOOKS = ("00_data.ipynb", "04_predictions.ipynb", "06_results.ipynb")
REPORT_PARAMETERS = ("experiment", "output_root", "data_dir", "dataset")
#: Each study's parameter file and report notebooks.
STUDIES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "paper": (PARAMS_FILE, REPORT_NOTEBOOKS),
    "objectives": (Path("params") / "objectives.yaml", ("07_objectives.ipynb",)),
    "decoding": (Path("params") / "decoding.yaml", ("08_decoding.ipynb",)),
    "scale": (Path("params") / "scale.yaml", ("09_scale.ipynb",)),
}
#: A study's stage between its sweep and its report notebooks: ``module:function``, called with the sweep's plan,
#: returning its number of failures.
STAGES: dict[str, str] = {"decoding": "entropylab.studies.decoding.study:run_stage",
                          "scale": "entropylab.studies.scale.study:run_stage"}


#: The tables a sweep collects beside ``<experiment>.csv`` (``<experiment>-<name>.csv``) that its reports read.
SWEEP_TABLES = ("plan", "choices", "tuning")
#: The files a study's stage writes for its report: ``module:function``, called with the sweep's plan.
STAGE_OUTPUTS: dict[str, str] = {"decoding": "entropylab.studies.decoding.study:stage_outputs",
                                 "scale": "entropylab.studies.scale.study:stage_outputs"}
#: What a study's stage records when it does not run because its sweep failed (``module:function``, called with the
#: plan and one line per failed run), so that a report made from an earlier pass's files says it is incomplete.
STAGE_NOT_RUN: dict[str, str] = {"decoding": "entropylab.studies.decoding.study:stage_not_run",
                                 "scale": "entropylab.studies.scale.study:stage_not_run"}


def report_inputs(plan: Any, study: str | None = None) -> list[Path]:
    """Every file a study's report notebooks read: the sweep's results tables, the parameter file, and what the
    study's stage wrote (:data:`STAGE_OUTPUTS`)."""
    from ..experiments.results import results_path

    inputs = [Path(plan.params.path), plan.results_csv,
              *(results_path(f"{plan.experiment}-{name}", plan.output_root) for name in SWEEP_TABLES)]
    if study in STAGE_OUTPUTS:
        import importlib

        module, function = STAGE_OUTPUTS[study].split(":")
        inputs += getattr(importlib.import_module(module), function)(plan)
    return inputs


def inputs_fingerprint(notebook: Path, parameters: dict[str, Any], inputs: list[Path],
                       data_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 of everything a report notebook's output depends on: its source, its parameters, each file of
    ``inputs`` (name and bytes, or its absence), the library's source and, for NYT, the data files' names and
    sizes."""
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    for path in inputs:  # named absolutely: the same file given as params/x.yaml or /abs/params/x.yaml is one input
        path = Path(path).absolute()
        digest.update(str(path).encode() + (path.read_bytes() if path.is_file() else b"<absent>"))
    package = Path(__file__).resolve().parents[1]
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + source.read_bytes())
    if data_dir is not None:
        for path in sorted(Path(data_dir).glob("Articles*.csv")):
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()


def run_report(notebook: Path, out_dir: Path, parameters: dict[str, Any], fingerprint: str | None) -> str | None:
    """Execute one report notebook into ``out_dir`` unless its inputs are unchanged since its last complete
    execution; returns the error. With ``fingerprint=None`` (its inputs are incomplete) the notebook is executed and
    never stamped, so the next run executes it again. One study at a time executes a notebook (a lock beside it)."""
    from ..experiments.execute import execute_notebook
    from ..experiments.steps import exclusive_lock

    output = out_dir / notebook.name
    stamp = out_dir / f".{notebook.stem}.inputs"

    def waiting(pid: str) -> None:
        print(f"{notebook.name}: another study (process {pid}) is executing it; waiting", flush=True)

    with exclusive_lock(out_dir / f".{notebook.stem}.lock", waiting):
        if fingerprint is not None and output.is_file() and stamp.is_file() \
                and stamp.read_text().strip() == fingerprint:
            print(f"{notebook.name}: inputs unchanged, kept {output}")
            return None
        print(f"{notebook.name}: executing into {output}"
              + ("" if fingerprint is not None else " (from incomplete inputs: it will be executed again)"),
              flush=True)
        stamp.unlink(missing_ok=True)
        error = execute_notebook(notebook, output, parameters)
        if error is None and fingerprint is not None:
            from ..training.store import atomic_write_text

            atomic_write_text(stamp, fingerprint + "\n")
    return error


def main(output_root: str | Path | None = None, study: str = "paper", params: str | Path | None = None) -> int:
    """Run a study's sweep (``params`` overrides its file) and its report notebooks (outputs in ``output_root``,
    default ``$ENTROPYLAB_OUTPUTS`` or ``<project>/outputs``); returns the number of failures (0: all done)."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; choose one of {', '.join(STUDIES)}")
    root = paths.project_root()
    params_file, notebooks = STUDIES[study]
    params_file = Path(params) if params is not None else root / params_file
    return reproduce(params_file, [root / "notebooks" / name for name in notebooks], output_root, study)


def reproduce(params_file: Path, report_notebooks: list[Path], output_root: str | Path | None = None,
              study: str | None = None) -> int:
    """The sweep of ``params_file``, then the study's stage (see :data:`STAGES`) when the sweep has no failure
    (else the stage records that it did not run, :data:`STAGE_NOT_RUN`, for its report's first line), then each
    of ``report_notebooks`` that exists (never stamped complete after a failure); the number of failures.

    Before the sweep trains anything, the whole file is checked (:func:`entropylab.experiments.sweep.validate`:
    its study sections, e.g. ``decoding``, against its runs; the outputs folder) and, when the stage's module has
    a ``check_stage(plan)``, that too (so a study whose file lacks its section is refused at once)."""
    import importlib

    from ..analysis.tables import report_dir
    from ..experiments.execute import applied_environment, kernel_environment
    from ..experiments.params import notebook_parameters
    from ..experiments.sweep import available_cores, run_sweep, validate

    stage = STAGES.get(study or "")
    stage_check = getattr(importlib.import_module(stage.split(":")[0]), "check_stage", None) if stage else None
    validate(params_file, output_root=output_root, checks=(stage_check,) if stage_check else ())
    result = run_sweep(params_file, output_root=output_root)
    plan = result.plan
    datasets = {task.parameters["dataset"] for task in plan.tasks}
    data_dirs = {task.parameters["data_dir"] for task in plan.tasks}
    values = {"experiment": plan.experiment, "output_root": str(plan.output_root),
              "data_dir": next(iter(data_dirs)) if len(data_dirs) == 1 else None,
              "dataset": next(iter(datasets)) if len(datasets) == 1 else "auto"}
    data_dir = None
    if values["dataset"] == "nyt":
        from ..data import find_nyt_dir

        data_dir = find_nyt_dir(values["data_dir"])
    out_dir = report_dir("notebooks", plan.experiment, plan.output_root)
    failures = result.exit_status
    if stage is not None and not failures:
        module, function = stage.split(":")
        failures += getattr(importlib.import_module(module), function)(plan)
    elif study in STAGE_NOT_RUN:
        module, function = STAGE_NOT_RUN[str(study)].split(":")
        getattr(importlib.import_module(module), function)(
            plan, [f"run {o.name} failed in the sweep: {next(iter((o.error or '').strip().splitlines()), '?')}"
                   for o in result.failed])
    complete = not failures  # the reports' inputs: every run and every stage job finished
    with applied_environment(kernel_environment(available_cores(), plan.backend)):
        for notebook in report_notebooks:
            if not notebook.is_file():
                print(f"{notebook.name}: not in {notebook.parent} yet, skipped")
                continue
            try:
                declared = notebook_parameters(notebook)
            except ValueError:
                declared = {}
            parameters = {k: v for k, v in values.items() if k in declared}
            fingerprint = None if not complete else inputs_fingerprint(notebook, parameters, report_inputs(plan, study),
                                                                   data_dir)
            error = run_report(notebook, out_dir, parameters, fingerprint)
            if error is not None:
                failures += 1
                print(f"{notebook.name} FAILED: {error.splitlines()[0] if error else ''} "
                      f"(see {out_dir / (notebook.stem + '.failed.ipynb')})")
    print(f"reproduce: {'done' if not failures else f'{failures} failure(s)'}; runs in {plan.runs_dir}, "
          f"results in {plan.results_csv}, report notebooks in {out_dir}")
    return min(failures, 100)
