"""The one collector of an experiment's run folders into its tidy results table, and reading that table back.

The table has one row per run and epoch: ``experiment``, ``run`` (the folder name), every identity column of
the run (:data:`entropylab.training.config.IDENTITY_COLUMNS`: ``objective`` is the config's loss, ``parameter``
says whether ``weight`` is a weight, a smoothing amount or an exponent), the history columns (``loss`` is the
training loss) and ``ref_<name>`` for each count-model reference of the run (its ``metrics.json``), the run's
``best_epoch`` (lowest validation cross-entropy under early stopping, else its last epoch) and, when the run
measured them, its generation metrics as ``gen_<name>`` and its test-side metrics (a run with ``test_fraction >
0``: ``test_<name>``, read once after training with the kept weights) and Kneser-Ney reference
(``ref_kneser_ney_*``), each the same on every row of the run. The sweep
writes it to ``<outputs>/results/<experiment>.csv`` with its checksum (``<experiment>.csv.sha256``,
:func:`entropylab.training.store.write_csv`); reports, figures and the explorer read it. A damaged run folder or
table is never read silently: one line names the file and the fix (:class:`entropylab.training.store.DamagedFileError`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from .. import paths
from ..training import store
from ..training.config import IDENTITY_COLUMNS, identity_columns

REFERENCE_KEYS = ("unigram_cross_entropy", "unigram_perplexity", "bigram_cross_entropy", "bigram_perplexity")
#: The Kneser-Ney reference (order chosen on dev, or on a carve of training without a test side): runs made before
#: it was scored lack it, so its columns appear only where a run has it.
KNESER_NEY_KEYS = ("kneser_ney_order", "kneser_ney_cross_entropy", "kneser_ney_perplexity")
#: Identity columns that tell runs apart within a study's tables besides the objective and its parameter.
RUN_COLUMNS = ("objective", "weight", "seed")
SORT_COLUMNS = ("objective", "weight", "seed", "run", "epoch")


def results_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>.csv``."""
    return paths.outputs_dir(output_root) / "results" / f"{experiment}.csv"


def rule_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>-rule.json``: the verdict rule of the parameter file (its ``verdicts``
    section), written by the sweep before any run trains; the study's report judges with it."""
    return paths.outputs_dir(output_root) / "results" / f"{experiment}-rule.json"


def results_fix(experiment: str) -> str:
    """The fix for a damaged results table of ``experiment``: the sweep collects it again from the run folders."""
    return (f"run `python -m entropylab sweep FILE` again to collect it (FILE: the parameter file of experiment "
            f"{experiment!r}, e.g. params/<file>.yaml)")


def collect(experiment: str, output_root: str | os.PathLike | None = None, *, write: bool = True,
            on_damaged: Callable[[store.DamagedFileError], None] | None = None) -> pd.DataFrame:
    """Every complete run of ``experiment`` as the tidy table (see the module docstring), sorted by objective,
    weight, seed, run and epoch. With ``write`` (and at least one row) it goes atomically to :func:`results_path`,
    with its checksum. A run whose files are damaged is a :class:`~entropylab.training.store.DamagedFileError`
    naming the file and the fix, or with ``on_damaged`` is passed to it and left out."""
    frames = []
    for record in store.completed_runs(paths.runs_dir(experiment, output_root), on_damaged):
        if record.history.empty or not record.config:
            continue
        head = {"experiment": experiment, "run": record.label, **identity_columns(record.config)}
        frame = record.history.copy()
        for position, (column, value) in enumerate(head.items()):
            frame.insert(position, column, [value] * len(frame))
        references = record.metrics.get("references", {})
        for key in REFERENCE_KEYS:
            frame[f"ref_{key}"] = references.get(key, math.nan)
        for key in KNESER_NEY_KEYS:
            if key in references:
                frame[f"ref_{key}"] = references[key]
        for key, value in (record.metrics.get("test") or {}).items():
            frame[key] = value
        frame["best_epoch"] = int(record.metrics.get("best_epoch") or frame["epoch"].max())
        frame["train_sequences"] = (record.metrics.get("split_sizes") or {}).get("train", math.nan)
        for key, value in (record.metrics.get("generation") or {}).items():
            frame[f"gen_{key}"] = value
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["experiment", "run", *IDENTITY_COLUMNS, "epoch"])
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(list(SORT_COLUMNS), kind="stable").reset_index(drop=True)
    if write:
        store.write_csv(results_path(experiment, output_root), table, checked=True)
    return table


def load_results(experiment: str, output_root: str | os.PathLike | None = None, source: str = "auto") -> pd.DataFrame:
    """The tidy results of an experiment.

    ``source="runs"``: collected from the run folders; ``"csv"``: read from :func:`results_path`; ``"auto"``: the
    run folders when they hold a complete run (they are the source of truth), else the CSV. Raises
    :class:`FileNotFoundError` naming the fix when neither holds anything, and
    :class:`~entropylab.training.store.DamagedFileError` (one line: the file and the fix) when a run folder's files
    or the CSV are damaged (the CSV is checked against its checksum, when it has one).
    """
    if source not in ("auto", "runs", "csv"):
        raise ValueError(f"unknown source {source!r}; use 'auto', 'runs' or 'csv'")
    if source in ("auto", "runs"):
        collected = collect(experiment, output_root, write=False)
        if len(collected) or source == "runs":
            return _typed(collected)
    csv = results_path(experiment, output_root)
    if csv.is_file():
        return _typed(store.read_csv(csv, fix=results_fix(experiment)))
    raise FileNotFoundError(
        f"no finished run of experiment {experiment!r} in {paths.runs_dir(experiment, output_root)} and no {csv}; "
        f"train the runs first (`python -m entropylab sweep params/<file>.yaml`)")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the columns every report needs and give ``weight`` a float type (a table written before the
    identity columns, with ``loss_name`` for the objective, reads as ``objective``)."""
    if "objective" not in frame.columns and "loss_name" in frame.columns:
        frame = frame.rename(columns={"loss_name": "objective"})
    missing = [c for c in ("objective", "weight", "seed", "epoch", "loss") if c not in frame.columns]
    if missing and len(frame):
        raise ValueError(f"the results table lacks column(s) {', '.join(missing)} (has {', '.join(frame.columns)}); "
                         f"collect it again with entropylab.experiments.results.collect(experiment)")
    frame = frame.copy()
    if "weight" in frame.columns:
        frame["weight"] = frame["weight"].astype(float)
    return frame


def varying_columns(results: pd.DataFrame, ignore: Sequence[str] = RUN_COLUMNS) -> list[str]:
    """The identity columns (other than ``ignore``) whose value differs between the runs of ``results``: what
    a table or figure must group by, beside the objective, its parameter and the seed."""
    return [c for c in IDENTITY_COLUMNS if c in results.columns and c not in ignore and c != "parameter"
            and results[c].astype(str).nunique() > 1]


def group_columns(results: pd.DataFrame) -> list[str]:
    """Columns that identify a group of seeds of one configuration: the objective, weight and every other
    varying identity column (a run's seeds are pooled into one group; two learning rates are two groups)."""
    return ["objective", "weight", *varying_columns(results)]


def final_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The last epoch's row of each run (by ``run``; a table without it, by configuration and seed)."""
    if results.empty:
        return results
    by = ["run"] if "run" in results.columns else [*group_columns(results), "seed"]
    index = results.groupby(by)["epoch"].idxmax()
    return results.loc[sorted(index)].reset_index(drop=True)


def best_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The best epoch's row of each run (its ``best_epoch`` column; a table without it: the last epoch)."""
    if results.empty or "best_epoch" not in results.columns:
        return final_epoch(results)
    return results[results["epoch"] == results["best_epoch"]].reset_index(drop=True)


def find_run(experiment: str, output_root: str | os.PathLike | None = None, **fields: object) -> Path | None:
    """The newest complete run folder of ``experiment`` whose config has every given field value (floats compared
    to 1e-9 relative), or ``None``: how a report finds the sweep's run of, say, ``loss="mse", seed=0``."""
    matches = []
    for run_dir in store.iter_run_dirs(paths.runs_dir(experiment, output_root)):
        if not store.is_complete(run_dir):
            continue
        config = store.read_json(run_dir / store.CONFIG, fix=store.run_fix(run_dir))
        if all(_same(config.get(key), value) for key, value in fields.items()):
            matches.append(run_dir)
    return max(matches, key=lambda d: (d / store.COMPLETE).stat().st_mtime) if matches else None


def _same(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b
