"""The objectives study's tables: per data setting, each objective at its tuned value against cross-entropy.

Every number is a run's **best epoch** (lowest validation cross-entropy under early stopping). Per setting and
objective the row is the value chosen on the tuning carve (``<experiment>-choices.csv``; cross-entropy has no
parameter), with, per metric, the mean over seeds and its 95 % t-interval. The verdict against ``cross_entropy``
is paired by seed (same seed, same split): with ``d_s`` the objective's value minus cross-entropy's for seed ``s``,
**better** when the 95 % t-interval of ``mean(d)`` lies entirely on the better side of 0 (lower, for
cross-entropy and ECE), **worse** when entirely on the other side, **no difference** otherwise (the two-sided
paired t-test at 5 %; 3 seeds give ``t_{0.975, 2} = 4.303``). The calibration verdict is on the adaptive ECE
(``val_ece_adaptive``, 15 equal-count bins: the equal-width ``val_ece`` puts a flat model's every prediction in its
first bin); results saved before that column existed get it on ``val_ece`` (:data:`VERDICT_FALLBACKS`,
:func:`verdict_metrics`). The grid neighbours of the chosen value are not
rows: choosing among them by the reported validation numbers would tune on the data reported; they appear in the
sensitivity figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ... import objectives
from ...analysis.stats import paired_difference, paired_verdict, seed_band
from ...experiments.results import best_epoch, load_results, results_fix, results_path
from ...training import store

BASELINE = objectives.CROSS_ENTROPY
#: Metrics of every setting, in table order (lower is better for the first, higher for accuracy, see the doc).
METRICS = ("val_cross_entropy", "val_perplexity", "val_accuracy", "val_ece", "val_ece_adaptive", "val_brier",
           "val_entropy_gap", "gen_greedy_distinct_2", "gen_greedy_repeat", "gen_sample_distinct_1",
           "gen_sample_distinct_2", "gen_sample_repeat")
#: Metrics only the synthetic corpus has (its exact next-word law).
TRUE_METRICS = ("true_kl", "entropy_floor", "gen_greedy_true_loglik", "gen_sample_true_loglik")
#: Metrics that get a paired verdict against cross-entropy, and whether lower is better.
VERDICTS = {"val_cross_entropy": True, "val_ece_adaptive": True}
#: The metric a verdict falls back to where results lack its column (runs saved before it existed).
VERDICT_FALLBACKS = {"val_ece_adaptive": "val_ece"}
SHORT = {"val_cross_entropy": "CE", "val_perplexity": "ppl", "val_accuracy": "acc", "val_ece": "ECE",
         "val_ece_adaptive": "adaptive ECE", "val_brier": "Brier", "val_entropy_gap": "H-CE",
         "gen_greedy_distinct_2": "greedy d2",
         "gen_greedy_repeat": "greedy rep", "gen_sample_distinct_1": "sample d1", "gen_sample_distinct_2": "sample d2",
         "gen_sample_repeat": "sample rep", "true_kl": "true KL", "entropy_floor": "H(q)",
         "gen_greedy_true_loglik": "greedy true ll", "gen_sample_true_loglik": "sample true ll"}


def setting_name(dataset: str, split: str) -> str:
    """``nyt/headline``: a data setting's name."""
    return f"{dataset}/{split}"


def choices_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>-choices.csv`` (written by the sweep's tuning stage)."""
    return results_path(f"{experiment}-choices", output_root)


def load_study(experiment: str, output_root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(best-epoch rows of every run, choices)`` of a study, each row with its ``setting``; raises
    ``FileNotFoundError`` naming the command that makes what is missing."""
    results = best_epoch(load_results(experiment, output_root))
    plan = results_path(f"{experiment}-plan", output_root)
    if plan.is_file():  # exactly the runs the parameter file reports (not a stale or a hand-made run beside them)
        runs = store.read_csv(plan, fix=results_fix(experiment))["run"]
        results = results[results["run"].isin(set(runs))].reset_index(drop=True)
    results = results.assign(setting=[setting_name(d, s) for d, s in zip(results["dataset"], results["split"],
                                                                           strict=True)])
    path = choices_path(experiment, output_root)
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: the tuning stage has not finished; run `python -m entropylab sweep "
                                f"params/<the study's file>.yaml`")
    choices = store.read_csv(path, fix=results_fix(experiment))
    choices = choices.assign(setting=[setting_name(d, s) for d, s in zip(choices["dataset"], choices["split"],
                                                                         strict=True)])
    return results, choices


def chosen_runs(results: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """The runs of each objective's chosen value (every seed), and cross-entropy's, per setting; two runs of one
    configuration and seed are refused (the table would mix them)."""
    keep = results["objective"] == BASELINE
    for row in choices.itertuples():
        keep |= ((results["setting"] == row.setting) & (results["objective"] == row.objective)
                 & np.isclose(results["weight"], float(row.chosen), rtol=1e-9, atol=0.0))
    runs = results[keep].reset_index(drop=True)
    twice = runs[runs.duplicated(["setting", "objective", "weight", "seed"], keep=False)]
    if len(twice):
        raise ValueError(f"two runs of one configuration and seed: {', '.join(sorted(twice['run']))}; remove the "
                         f"stale one from the experiment's run folder (the sweep writes <experiment>-plan.csv, "
                         f"which selects its own)")
    return runs


def _metrics(frame: pd.DataFrame) -> list[str]:
    names = [*METRICS, *TRUE_METRICS]
    return [m for m in names if m in frame.columns and frame[m].notna().any()]


def verdict_metrics(runs: pd.DataFrame) -> dict[str, bool]:
    """:data:`VERDICTS` for ``runs`` (the rows that are compared): a metric whose column is missing, or has a gap
    where its :data:`VERDICT_FALLBACKS` entry has a value (some runs saved before it existed), is replaced by that
    entry; a metric with neither column is left out."""
    chosen = {}
    for metric, lower_is_better in VERDICTS.items():
        fallback = VERDICT_FALLBACKS.get(metric)
        has_fallback = fallback is not None and fallback in runs.columns
        if metric in runs.columns and not (has_fallback and (runs[metric].isna() & runs[fallback].notna()).any()):
            chosen[metric] = lower_is_better
        elif has_fallback:
            chosen[fallback] = lower_is_better
    return chosen


def verdict_columns(table: pd.DataFrame) -> list[str]:
    """The metrics a :func:`setting_table` has verdicts on (``delta_<metric>`` columns), in :data:`VERDICTS` order."""
    candidates = [m for metric in VERDICTS for m in (metric, VERDICT_FALLBACKS.get(metric)) if m]
    return [m for m in candidates if f"delta_{m}" in table.columns]


def setting_table(results: pd.DataFrame, choices: pd.DataFrame, setting: str) -> pd.DataFrame:
    """One row per objective in ``setting`` (cross-entropy first): its value, seeds, each metric's ``mean``,
    ``low`` and ``high`` (95 % t-interval) and, for :data:`VERDICTS`, the paired difference to cross-entropy with
    its interval and verdict (see the module docstring; the metrics of :func:`verdict_metrics`)."""
    runs = chosen_runs(results[results["setting"] == setting], choices[choices["setting"] == setting])
    metrics = _metrics(runs)
    verdicts = verdict_metrics(runs)
    baseline = runs[runs["objective"] == BASELINE].set_index("seed")
    at_edge = {r.objective: bool(r.at_edge) for r in choices[choices["setting"] == setting].itertuples()}
    rows = []
    order = [BASELINE, *[o for o in objectives.names() if o != BASELINE]]
    for objective in [o for o in order if o in set(runs["objective"])]:
        frame = runs[runs["objective"] == objective].set_index("seed").sort_index()
        row = {"setting": setting, "objective": objective, "parameter": objectives.parameter_name(objective),
               "value": float(frame["weight"].iloc[0]), "at_edge": at_edge.get(objective, False),
               "seeds": len(frame), "best_epoch": float(frame["best_epoch"].mean())}
        for metric in metrics:
            values = frame[metric].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            low, high = seed_band(finite)
            row.update({f"{metric}": float(finite.mean()) if len(finite) else np.nan, f"{metric}_low": low,
                        f"{metric}_high": high})
        for metric, lower_is_better in verdicts.items():
            seeds = sorted(set(frame.index) & set(baseline.index))
            a = frame.loc[seeds, metric].to_numpy(dtype=float)
            b = baseline.loc[seeds, metric].to_numpy(dtype=float)
            mean, low, high, _ = paired_difference(a, b)
            row.update({f"delta_{metric}": mean, f"delta_{metric}_low": low, f"delta_{metric}_high": high,
                        f"verdict_{metric}": "baseline" if objective == BASELINE else
                        paired_verdict(a, b, lower_is_better)})
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in ("unigram", "bigram"):  # the count models on the same split (identical for every run of it)
        column = f"ref_{name}_cross_entropy"
        if column in runs.columns and len(runs):
            value = float(runs[column].iloc[0])
            table = pd.concat([table, pd.DataFrame([{"setting": setting, "objective": f"{name} count model",
                                                     "parameter": "", "seeds": 0, "val_cross_entropy": value,
                                                     "val_perplexity": float(np.exp(value))}])], ignore_index=True)
    return table


#: The columns of :func:`readable`'s table, in order (those a table lacks are left out).
READABLE_METRICS = ("val_cross_entropy", "val_perplexity", "val_ece", "val_ece_adaptive", "val_brier",
                    "val_entropy_gap", "gen_sample_distinct_2", "gen_greedy_repeat", "true_kl",
                    "gen_sample_true_loglik")


def readable(table: pd.DataFrame, metrics: tuple[str, ...] = READABLE_METRICS) -> pd.DataFrame:
    """A :func:`setting_table` as text cells ``mean [low, high]`` for the README and the notebook."""
    out = pd.DataFrame({"objective": table["objective"]})
    out["value"] = [("" if p in ("", "none") or pd.isna(v) else f"{p}={v:g}" + (" (edge)" if e is True else ""))
                    for p, v, e in zip(table["parameter"], table.get("value", np.nan), table.get("at_edge", False),
                                       strict=True)]
    for metric in metrics:
        if metric not in table.columns or table[metric].isna().all():
            continue
        low, high = table.get(f"{metric}_low"), table.get(f"{metric}_high")
        out[SHORT.get(metric, metric)] = [
            "" if pd.isna(m) else (f"{m:.3g}" if low is None or pd.isna(low.iloc[i]) or low.iloc[i] == high.iloc[i]
                                   else f"{m:.3g} [{low.iloc[i]:.3g}, {high.iloc[i]:.3g}]")
            for i, m in enumerate(table[metric])]
    for metric in verdict_columns(table):
        column = f"delta_{metric}"
        if column in table.columns:
            out[f"Δ{SHORT[metric]} vs CE"] = [
                "" if pd.isna(m) or v == "baseline" else f"{m:+.3g} [{lo:+.3g}, {hi:+.3g}] {v}"
                for m, lo, hi, v in zip(table[column], table[f"{column}_low"], table[f"{column}_high"],
                                        table[f"verdict_{metric}"], strict=True)]
    return out.fillna("")
