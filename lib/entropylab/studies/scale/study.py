"""The scale study's stage (``make scale``): each cell's dropout chosen on dev, then every cell's objectives.

``python -m entropylab reproduce --study scale`` first runs ``params/scale.yaml``'s own sweep (cross-entropy at
each dropout of its grid, seed 0, judged on dev), then this stage:

1. per cell, the dropout whose run has the lowest best-epoch dev cross-entropy (ties: the smaller dropout; a run
   whose loss became NaN never wins) goes to ``<outputs>/results/<experiment>-dropout.csv``;
2. the second sweep's file (:func:`.spec.grid_document`) is written to
   ``<outputs>/studies/<experiment>/grid.yaml`` and swept: experiment ``<experiment>-grid``, its tuned objectives
   chosen on dev per cell, then every seed; its results, choices and plan tables are what the report reads.

Both sweeps skip finished runs, so an interrupted study picks up where it stopped. The stage's
``status.json`` says whether it finished.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ... import paths
from ...experiments.results import results_path
from ...training import store
from .spec import CHOSEN, ScaleSpec, cell_name, grid_document, grid_experiment, read_spec

STATUS = "status.json"
GRID_FILE = "grid.yaml"


def study_dir(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/studies/<experiment>/``: the scale study's own files."""
    return paths.outputs_dir(output_root) / "studies" / experiment


def dropout_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>-dropout.csv``: each cell's dropout grid, dev scores and choice."""
    return results_path(f"{experiment}-dropout", output_root)


def _write_grid_file(plan: Any, spec: ScaleSpec, dropouts: dict[int, float], path: Path) -> Path:
    import yaml

    document = grid_document(plan.params, spec, dropouts)
    store.atomic_write_text(path, "# Written by the scale study's stage (entropylab.studies.scale.study) from "
                            "params/scale.yaml and the dropouts chosen on dev.\n"
                            + yaml.safe_dump(document, sort_keys=False, width=118))
    return path


def check_stage(plan: Any) -> ScaleSpec:
    """Every check that needs no trained run, before the study's sweep: the ``scale`` section and the settings
    (:func:`.spec.read_spec`), and the second sweep's file as it will be written (each cell at the first dropout of
    the grid), validated as any parameter file is."""
    import tempfile

    from ...experiments.params import ParamsError, load_params

    spec = read_spec(plan.params)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / GRID_FILE
        _write_grid_file(plan, spec, dict.fromkeys(range(len(plan.params.settings)), spec.dropouts[0]), path)
        try:
            load_params(path)
        except ParamsError as exc:
            raise ParamsError(str(exc).replace(str(path), f"{plan.params.path}: scale.runs")) from None
    return spec


def choose_dropouts(plan: Any) -> tuple[pd.DataFrame, dict[int, float], list[str]]:
    """Each cell's choice from the file's finished runs: the table (one row per cell), ``setting -> dropout``
    and one line per cell that cannot be decided yet (a run unfinished, or failed for another reason than a
    non-finite loss)."""
    from ...experiments.tuning import best_score

    by_setting: dict[int, list[tuple[float, float, str]]] = {}
    for task, point in zip(plan.tasks, plan.params.points, strict=True):
        score = best_score(task.run_dir)
        by_setting.setdefault(point.setting, []).append((float(point.parameters[CHOSEN]), score, task.run_dir))
    rows, chosen, missing = [], {}, []
    for setting, entries in sorted(by_setting.items()):
        entries.sort()
        parameters = {**plan.params.defaults, **plan.params.settings[setting]}
        name = cell_name(parameters["dataset"], parameters.get("max_sequences"), parameters["embedding_dim"],
                         parameters["lstm_units"])
        if any(math.isnan(score) for _, score, _ in entries):
            unfinished = ", ".join(Path(d).name for _, s, d in entries if math.isnan(s))
            missing.append(f"{name}: a dropout run is unfinished or failed ({unfinished})")
            continue
        finite = [(score, dropout) for dropout, score, _ in entries if math.isfinite(score)]
        if not finite:
            missing.append(f"{name}: every dropout run's loss became NaN or infinite")
            continue
        best = min(finite)[1]
        chosen[setting] = best
        rows.append({"setting": setting, "cell": name, "dataset": parameters["dataset"],
                     "max_sequences": parameters.get("max_sequences"), "embedding_dim": parameters["embedding_dim"],
                     "lstm_units": parameters["lstm_units"],
                     "grid": " ".join(f"{d:g}" for d, _, _ in entries),
                     "dev_cross_entropy": " ".join(f"{s:.4f}" for _, s, _ in entries), "chosen": best})
    return pd.DataFrame(rows), chosen, missing


def run_stage(plan: Any) -> int:
    """Choose each cell's dropout, write and sweep the cells' objective runs; the number of failures."""
    from ...experiments.sweep import run_sweep

    spec = read_spec(plan.params)
    root = study_dir(plan.experiment, plan.output_root)
    status = root / STATUS
    store.write_json(status, {"complete": False, "errors": ["the stage started and has not finished"]})
    table, chosen, missing = choose_dropouts(plan)
    if len(table):
        store.write_csv(dropout_path(plan.experiment, plan.output_root), table, checked=True)
    if missing:
        store.write_json(status, {"complete": False, "errors": missing})
        for line in missing:
            print(f"scale: {line}")
        return len(missing)
    for row in table.itertuples():
        print(f"  {row.cell}: dropout {row.chosen:g} of [{row.grid}] (dev cross-entropy {row.dev_cross_entropy})")
    grid_file = _write_grid_file(plan, spec, chosen, root / GRID_FILE)
    result = run_sweep(grid_file, output_root=plan.output_root)
    errors = [f"run {o.name} failed: {next(iter((o.error or '').strip().splitlines()), '?')}" for o in result.failed]
    store.write_json(status, {"complete": not result.exit_status, "errors": errors})
    return result.exit_status


def stage_not_run(plan: Any, reasons: list[str]) -> None:
    """Record that the stage did not run (its sweep failed), for the report's first line."""
    store.write_json(study_dir(plan.experiment, plan.output_root) / STATUS,
                     {"complete": False, "errors": [f"the stage did not run: {r}" for r in reasons]
                      or ["the stage did not run: the study's sweep failed"]})


def stage_outputs(plan: Any) -> list[Path]:
    """What the report reads besides the file's own tables: the dropout choices, the second sweep's file and its
    tables, and the stage's status."""
    grid = grid_experiment(plan.experiment)
    names = [f"{plan.experiment}-dropout", grid, f"{grid}-plan", f"{grid}-choices", f"{grid}-tuning"]
    root = study_dir(plan.experiment, plan.output_root)
    return [results_path(name, plan.output_root) for name in names] + [root / GRID_FILE, root / STATUS]


def read_status(experiment: str, output_root: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The stage's last status (``{"complete": bool, "errors": [...]}``), if any."""
    path = study_dir(experiment, output_root) / STATUS
    return store.read_json(path) if path.is_file() else None
