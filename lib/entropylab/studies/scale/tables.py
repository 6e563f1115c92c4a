"""The scale study's tables: each cell's verdicts, each objective's difference to cross-entropy against the
cross-entropy model's distance to the floor, the one-sentence answer per objective, and the scaling-law fit.

A cell is one data size and one model size (:mod:`.spec`). Within a cell the tables are the objectives study's
(:func:`entropylab.studies.objectives.tables.setting_table`: the reported side is test, paired differences to
cross-entropy over the seeds with 95 % t-intervals, Holm over the cell's comparisons, the smallest effects of the
file's ``verdicts`` section).

**Distance to the truth.** A cell's ``distance`` is the cross-entropy model's mean test cross-entropy minus the
source's floor there (``test_cross_entropy - test_entropy_floor``, nats; the true KL up to the sampling of the
labels): it falls as data and model grow.

**The answer per objective** (the rule, fixed before the run). With ``a_c = -delta_c`` the objective's advantage in
cell ``c`` (its test cross-entropy below cross-entropy's, nats) and ``s_c`` its standard error (the paired
interval's half-width over ``t``), the weighted least-squares line ``a = a0 + b * distance`` (weights ``1/s_c^2``)
gives the slope ``b`` with a 95 % interval (t with ``cells - 2`` degrees of freedom):

* "shrinks as the model approaches the truth" when the interval of ``b`` lies above 0 (more advantage far from
  the truth than near it);
* "grows as the model approaches the truth" when it lies below 0;
* otherwise "holds": no change detected over the cells; said together with the cells where the objective is
  better or worse (:func:`answers`), so that "holds" at no advantage reads as such.

**Scaling law.** Per objective, ``L - floor = A / N^alpha + B / D^beta`` over every run of the hidden-state cells
(``N``: the LSTM's parameters ``4 U (E + U + 1)``, embeddings and output layer excluded as in the scaling-law
papers; ``D``: training tokens, the training side's labels), fitted by least squares on ``log(L - floor)`` with
``scipy.optimize.curve_fit``; each parameter with its standard error and the fit's root-mean-square error in log
space (:func:`scaling_fits`). An objective "changes an exponent" when its ``alpha`` or ``beta`` differs from
cross-entropy's by more than twice their standard errors combined, else "only a constant". An exponent whose
standard error is not below its own size (or is not finite), in the objective's fit or in cross-entropy's, is
"not identified" on the grid: it is named as such and takes no part in that comparison (when the excess loss does
not fall with ``N`` over the grid, the fit sends ``A / N^alpha`` to zero with any large ``alpha``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from ...experiments.results import best_epoch, load_results, results_fix, results_path, rule_path
from ...objectives import CROSS_ENTROPY
from ...training import store
from ..objectives.tables import VerdictRule, load_rule, setting_table
from .spec import cell_name, grid_experiment

BASELINE = CROSS_ENTROPY
#: The metrics whose differences the headline figure draws (on the reported side).
FIGURE_METRICS = ("cross_entropy", "true_kl", "ece_adaptive")
Z_95 = 1.959963984540054


def lstm_parameters(embedding_dim: float, lstm_units: float) -> float:
    """``N = 4 U (E + U + 1)``: the LSTM's weights and biases (no embedding, no output layer)."""
    return 4.0 * float(lstm_units) * (float(embedding_dim) + float(lstm_units) + 1.0)


def with_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (results rows) with its ``setting``: the cell's name, and ``model``: ``E/U``."""
    names = [cell_name(d, m, e, u) for d, m, e, u in zip(frame["dataset"], frame["max_sequences"],
                                                           frame["embedding_dim"], frame["lstm_units"], strict=True)]
    models = [f"{int(e)}/{int(u)}" for e, u in zip(frame["embedding_dim"], frame["lstm_units"], strict=True)]
    return frame.assign(setting=names, model=models)


def load_grid(experiment: str = "scale", output_root: str | os.PathLike | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame, VerdictRule]:
    """The cells' runs (best-epoch rows of ``<experiment>-grid``, exactly its plan's runs), its choices (each with
    its cell's ``setting``) and the verdict rule; ``FileNotFoundError`` naming the command when missing."""
    from ...experiments.params import load_params
    from .study import GRID_FILE, study_dir

    grid = grid_experiment(experiment)
    results = best_epoch(load_results(grid, output_root))
    plan = results_path(f"{grid}-plan", output_root)
    if plan.is_file():
        runs = store.read_csv(plan, fix=results_fix(grid))["run"]
        results = results[results["run"].isin(set(runs))].reset_index(drop=True)
    results = with_cells(results)
    choices_file = results_path(f"{grid}-choices", output_root)
    grid_file = study_dir(experiment, output_root) / GRID_FILE
    if not choices_file.is_file() or not grid_file.is_file():
        raise FileNotFoundError(f"no {choices_file}: the scale study has not finished; run `make scale`")
    choices = store.read_csv(choices_file, fix=results_fix(grid))
    grid_params = load_params(grid_file)
    names = {}
    for number, setting in enumerate(grid_params.settings):
        p = {**grid_params.defaults, **setting}
        names[number] = cell_name(p["dataset"], p.get("max_sequences"), p["embedding_dim"], p["lstm_units"])
    choices = choices.assign(setting=[names[int(s)] for s in choices["setting"]])
    rule = load_rule(grid, output_root) if rule_path(grid, output_root).is_file() else VerdictRule()
    return results, choices, rule


def cell_tables(results: pd.DataFrame, choices: pd.DataFrame, rule: VerdictRule | None = None) -> pd.DataFrame:
    """Every cell's objectives table (:func:`~entropylab.studies.objectives.tables.setting_table`), one after the
    other, each row with its cell's data size, model, ``N``, ``D`` and the cell's ``distance`` (module docstring)."""
    tables = []
    for cell, runs in sorted(results.groupby("setting", sort=False), key=lambda item: cell_order(item[1])):
        table = setting_table(results, choices, str(cell), rule)
        baseline = runs[runs["objective"] == BASELINE]
        side = str(table["side"].iloc[0])
        ce = f"{side}_cross_entropy"
        floor = "entropy_floor" if side == "val" else "test_entropy_floor"
        distance = float((baseline[ce] - baseline[floor]).mean()) if floor in baseline and len(baseline) else np.nan
        first = runs.iloc[0]
        table.insert(1, "model", first["model"])
        table.insert(2, "data", first["max_sequences"])
        table["N"] = lstm_parameters(first["embedding_dim"], first["lstm_units"])
        table["D"] = float(runs["train_sequences"].mean()) if "train_sequences" in runs else np.nan
        table["distance"] = distance
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def cell_order(runs: pd.DataFrame) -> tuple[Any, ...]:
    """Where a cell's rows go in every table: by dataset, then data size (a cell of all the data last), then model
    size."""
    first = runs.iloc[0]
    data = float(first["max_sequences"]) if pd.notna(first["max_sequences"]) else math.inf
    return (str(first["dataset"]), data,
            lstm_parameters(first["embedding_dim"], first["lstm_units"]))


def differences(tables: pd.DataFrame, metrics: tuple[str, ...] = FIGURE_METRICS) -> pd.DataFrame:
    """Long form of each objective's difference to cross-entropy per cell: one row per (cell, objective, metric)
    with ``delta``, ``low``, ``high``, ``verdict`` and the cell's ``model``, ``data`` and ``distance``."""
    rows = []
    judged = tables[f"delta_{metrics[0]}"].notna() if f"delta_{metrics[0]}" in tables else False
    objectives_rows = tables[judged & (tables["objective"] != BASELINE)]
    for row in objectives_rows.itertuples():
        record = row._asdict()
        for metric in metrics:
            if f"delta_{metric}" not in record or not np.isfinite(record[f"delta_{metric}"]):
                continue
            rows.append({"setting": row.setting, "model": row.model, "data": row.data, "distance": row.distance,
                         "objective": row.objective, "metric": metric, "delta": record[f"delta_{metric}"],
                         "low": record[f"delta_{metric}_low"], "high": record[f"delta_{metric}_high"],
                         "verdict": record.get(f"verdict_{metric}", "")})
    return pd.DataFrame(rows)


def slope(distance: np.ndarray, advantage: np.ndarray, se: np.ndarray) -> tuple[float, float, float]:
    """The weighted least-squares slope of ``advantage`` on ``distance`` (weights ``1/se^2``) and its 95 %
    interval ``(b, low, high)``; NaNs with fewer than three cells."""
    from scipy import stats

    keep = np.isfinite(distance) & np.isfinite(advantage) & np.isfinite(se) & (se > 0)
    x, y, w = distance[keep], advantage[keep], 1.0 / se[keep] ** 2
    if len(x) < 3 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan
    design = np.column_stack([np.ones_like(x), x])
    weighted = design * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(weighted, y * np.sqrt(w), rcond=None)
    residual = (y - design @ coef) * np.sqrt(w)
    dof = len(x) - 2
    scale = float(residual @ residual) / dof if dof > 0 else math.nan
    covariance = np.linalg.inv(weighted.T @ weighted) * max(scale, 1.0)  # never narrower than the seeds' errors
    half = float(stats.t.ppf(0.975, dof) * math.sqrt(covariance[1, 1]))
    return float(coef[1]), float(coef[1] - half), float(coef[1] + half)


def answers(diffs: pd.DataFrame, metric: str = "cross_entropy") -> pd.DataFrame:
    """The one-sentence answer per objective (module docstring): its slope, the cells where it is better or
    worse, and the sentence."""
    rows = []
    for objective, frame in diffs[diffs["metric"] == metric].groupby("objective", sort=False):
        advantage = -frame["delta"].to_numpy(dtype=float)
        se = (frame["high"] - frame["low"]).to_numpy(dtype=float) / (2 * Z_95)
        b, low, high = slope(frame["distance"].to_numpy(dtype=float), advantage, se)
        trend = ("cannot tell (fewer than three cells)" if not math.isfinite(b) else
                 "shrinks as the model approaches the truth" if low > 0 else
                 "grows as the model approaches the truth" if high < 0 else "holds (no change detected)")
        better = int((frame["verdict"] == "better").sum())
        worse = int((frame["verdict"] == "worse").sum())
        cells = len(frame)
        standing = (f"better than cross-entropy in {better} of {cells} cells, worse in {worse}" if better or worse
                    else f"no cell where it is better or worse than cross-entropy ({cells} cells)")
        rows.append({"objective": objective, "metric": metric, "slope": b, "slope_low": low, "slope_high": high,
                     "better_cells": better, "worse_cells": worse, "cells": cells, "trend": trend,
                     "answer": f"{objective}: its advantage in test {metric.replace('_', ' ')} {trend}; {standing}."})
    return pd.DataFrame(rows)


def _law(x: np.ndarray, log_a: float, alpha: float, log_b: float, beta: float) -> np.ndarray:
    n, d = x
    return np.log(np.exp(log_a) * n ** -alpha + np.exp(log_b) * d ** -beta)


def scaling_fits(results: pd.DataFrame, side: str = "test") -> pd.DataFrame:
    """Per objective, the fit of ``log(L - floor) = log(A N^-alpha + B D^-beta)`` over its runs (module
    docstring): ``A``, ``alpha``, ``B``, ``beta`` with standard errors, the runs and cells used, and the RMSE of
    the log residuals. An objective's runs are those of its chosen value in each cell (``chosen``: the objectives'
    rows of :func:`cell_tables` give the values). Cells of a dataset without a floor are left out."""
    from scipy.optimize import curve_fit

    ce, floor = f"{side}_cross_entropy", "test_entropy_floor" if side == "test" else "entropy_floor"
    frame = results[results[floor].notna()] if floor in results else results.iloc[0:0]
    rows = []
    for objective, runs in frame.groupby("objective", sort=False):
        excess = (runs[ce] - runs[floor]).to_numpy(dtype=float)
        n = np.array([lstm_parameters(e, u) for e, u in zip(runs["embedding_dim"], runs["lstm_units"], strict=True)])
        d = runs["train_sequences"].to_numpy(dtype=float)
        keep = np.isfinite(excess) & (excess > 0) & np.isfinite(d)
        row: dict[str, Any] = {"objective": objective, "runs": int(keep.sum()), "cells": runs["setting"].nunique()}
        if keep.sum() < 6 or len(set(n[keep])) < 2 or len(set(d[keep])) < 2:
            rows.append({**row, "note": "too few runs, model sizes or data sizes to fit"})
            continue
        x = np.vstack([n[keep], d[keep]])
        try:
            p, cov = curve_fit(_law, x, np.log(excess[keep]), p0=(1.0, 0.3, 1.0, 0.3), maxfev=20000)
        except (RuntimeError, ValueError) as exc:
            rows.append({**row, "note": f"the fit did not converge ({exc})"})
            continue
        se = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else np.full(4, np.nan)
        rmse = float(np.sqrt(np.mean((np.log(excess[keep]) - _law(x, *p)) ** 2)))
        rows.append({**row, "A": math.exp(p[0]), "alpha": p[1], "alpha_se": se[1], "B": math.exp(p[2]),
                     "beta": p[3], "beta_se": se[3], "log_A_se": se[0], "log_B_se": se[2], "rmse_log": rmse,
                     "note": ""})
    table = pd.DataFrame(rows)
    if len(table) and BASELINE in set(table["objective"]) and "alpha" in table:
        base = table[table["objective"] == BASELINE].iloc[0]
        changes = []
        for r in table.itertuples():
            if r.objective == BASELINE or not np.isfinite(getattr(r, "alpha", np.nan)):
                changes.append("")
                continue
            known = [name for name in ("alpha", "beta")
                     if identified(getattr(r, name), getattr(r, f"{name}_se"))
                     and identified(base[name], base[f"{name}_se"])]
            unknown = [name for name in ("alpha", "beta") if name not in known]
            moved = [name for name in known
                     if abs(getattr(r, name) - base[name]) > 2 * math.hypot(getattr(r, f"{name}_se"),
                                                                           base[f"{name}_se"])]
            text = (f"changes {' and '.join(moved)}" if moved else
                    f"only a constant ({' and '.join(known)} within error)" if known else "cannot tell")
            if unknown:
                text += f"; {' and '.join(unknown)} not identified on this grid"
            changes.append(text)
        table["versus_cross_entropy"] = changes
        table["identified"] = [" ".join(name for name in ("alpha", "beta")
                                        if identified(getattr(r, name, np.nan), getattr(r, f"{name}_se", np.nan)))
                               for r in table.itertuples()]
    return table


def identified(value: float, se: float) -> bool:
    """Whether a fitted exponent is identified: its standard error finite and below its own size."""
    return bool(np.isfinite(value) and np.isfinite(se) and se < abs(value))
