"""The objectives study's tables: per data setting, each objective at its tuned value against cross-entropy.

Every number is a run's **best epoch** (lowest dev cross-entropy under early stopping), read on the run's
**reported side**: its test side when the runs hold one (``test_fraction > 0``: ``test_*`` columns, read once
after training), else its validation side (the two-sided studies before issue 21). The table's metric columns have
the side's prefix removed (``cross_entropy``, ``ece_adaptive``, ...; ``side`` says which). Per setting and objective
the row is the value chosen on dev (``<experiment>-choices.csv``; cross-entropy has no parameter), with, per metric,
the mean over seeds and its 95 % t-interval, and (with a test side) ``dev_cross_entropy``, the mean dev
cross-entropy at the best epoch: the number a later choice among the objectives is made on.

**The verdict** against ``cross_entropy`` is paired by seed (same seed, same split seed: with ``split_seed: seed``
each seed holds out its own headlines, so the interval covers which headlines were held out, not only the
initialisation). It follows :mod:`entropylab.analysis.verdicts`, with the rule the parameter file fixed before the
run (its ``verdicts`` section, saved by the sweep as ``<experiment>-rule.json``): the paired t-test's p-values of
every comparison of one setting's table (objectives x :data:`VERDICTS` metrics) are corrected together by Holm and
Bonferroni; **better** / **worse** only when the corrected test (5 %) says so and the mean difference is at least the
metric's smallest effect worth reporting ``δ``; **no difference** when the 95 % interval lies within ``±δ``;
**inconclusive** otherwise; **too few seeds** below the rule's ``min_seeds`` pairs. Without a saved rule, ``δ = 0``
and :data:`entropylab.analysis.verdicts.MIN_PAIRS` seeds. The grid neighbours of the chosen value are not rows
(choosing among them by the reported numbers would tune on the data reported); they appear in the sensitivity
figure.

**The band table** (:func:`band_table`) splits the cross-entropy by word frequency (the bands of
:mod:`entropylab.metrics.bands`, fixed per run from its training split: ``frequent``, ``middle``, ``rare``,
``unseen``): per setting, objective and band, the paired difference to cross-entropy's ``ce_<band>`` on the reported
side, with its 95 % t-interval, the paired t-test's p-value and that p-value Holm-corrected over the setting's
comparisons (objectives x bands); no verdict (the rule fixes no smallest effect per band).

**Reference rows** (per seed's split, mean and interval over the baseline's seeds): the add-one unigram, the bigram
interpolated at a fixed 0.6, the interpolated modified Kneser-Ney model of the order chosen on dev (runs with a test
side; its orders are named), and on the synthetic corpus the source itself, whose cross-entropy is the floor
``H(q)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import objectives
from ...analysis.stats import seed_band
from ...analysis.verdicts import MIN_PAIRS, holm, paired_test, table_verdicts
from ...experiments.results import best_epoch, load_results, results_fix, results_path, rule_path
from ...metrics.bands import BANDS
from ...training import store

BASELINE = objectives.CROSS_ENTROPY
#: Metrics of every setting without the side's prefix, in table order (lower is better but for accuracy).
METRICS = ("cross_entropy", "perplexity", "accuracy", "ece_adaptive", "ece", "brier", "entropy_gap",
           "gen_greedy_distinct_2", "gen_greedy_repeat", "gen_sample_distinct_1", "gen_sample_distinct_2",
           "gen_sample_repeat")
#: Metrics only the synthetic corpus has (its exact next-word law).
TRUE_METRICS = ("true_kl", "entropy_floor", "gen_greedy_true_loglik", "gen_sample_true_loglik")
#: Metrics that get a paired verdict against cross-entropy, and whether lower is better (each where measured; the
#: adaptive ECE is the calibration verdict, the equal-width one only where the adaptive one was not measured).
VERDICTS = {"cross_entropy": True, "ece_adaptive": True, "true_kl": True}
SHORT = {"cross_entropy": "CE", "perplexity": "ppl", "accuracy": "acc", "ece_adaptive": "ECE (adaptive)",
         "ece": "ECE (equal width)", "brier": "Brier", "entropy_gap": "H-CE", "gen_greedy_distinct_2": "greedy d2",
         "gen_greedy_repeat": "greedy rep", "gen_sample_distinct_1": "sample d1", "gen_sample_distinct_2": "sample d2",
         "gen_sample_repeat": "sample rep", "true_kl": "true KL", "entropy_floor": "H(q)",
         "gen_greedy_true_loglik": "greedy true ll", "gen_sample_true_loglik": "sample true ll"}


@dataclass(frozen=True)
class VerdictRule:
    """The verdict rule of a study, fixed in its parameter file before the run: the smallest effect worth reporting
    per metric (``smallest_effect``, in the metric's units; a metric not named gets 0) and the fewest seeds."""

    smallest_effect: dict[str, float] = field(default_factory=dict)
    min_seeds: int = MIN_PAIRS

    def effect(self, metric: str) -> float:
        return float(self.smallest_effect.get(metric, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"smallest_effect": dict(self.smallest_effect), "min_seeds": self.min_seeds}


def load_rule(experiment: str, output_root: str | os.PathLike | None = None) -> VerdictRule:
    """The saved :class:`VerdictRule` of a study (the default one when none was saved)."""
    path = rule_path(experiment, output_root)
    if not path.is_file():
        return VerdictRule()
    values = store.read_json(path)
    return VerdictRule({k: float(v) for k, v in (values.get("smallest_effect") or {}).items()},
                       int(values.get("min_seeds", MIN_PAIRS)))


def reported_side(results: pd.DataFrame) -> str:
    """``test`` when the runs hold a test side (a ``test_cross_entropy`` column with values), else ``val``."""
    column = results.get("test_cross_entropy")
    return "test" if column is not None and column.notna().any() else "val"


def side_column(metric: str, side: str) -> str:
    """The results column of ``metric`` on ``side``: ``val_cross_entropy``, ``test_cross_entropy``, ``true_kl`` (the
    validation side's law metrics have no prefix), ``test_true_kl``; the generation metrics are the reported side's
    already."""
    if metric.startswith("gen_"):
        return metric
    if metric in ("true_kl", "entropy_floor"):
        return metric if side == "val" else f"test_{metric}"
    return f"{side}_{metric}"


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
    """The runs of each objective's chosen value (every seed), cross-entropy's, and those of an objective run
    untuned at one value (EMO, say), per setting; an untuned objective at several values has no chosen one and is
    left out. Two runs of one configuration and seed are refused (the table would mix them)."""
    keep = results["objective"] == BASELINE
    for row in choices.itertuples():
        keep |= ((results["setting"] == row.setting) & (results["objective"] == row.objective)
                 & np.isclose(results["weight"], float(row.chosen), rtol=1e-9, atol=0.0))
    tuned = set(zip(choices["setting"], choices["objective"], strict=True)) if len(choices) else set()
    for (setting, objective), runs in results.groupby(["setting", "objective"], sort=False):
        if objective != BASELINE and (setting, objective) not in tuned and runs["weight"].nunique() == 1:
            keep |= (results["setting"] == setting) & (results["objective"] == objective)
    runs = results[keep].reset_index(drop=True)
    twice = runs[runs.duplicated(["setting", "objective", "weight", "seed"], keep=False)]
    if len(twice):
        raise ValueError(f"two runs of one configuration and seed: {', '.join(sorted(twice['run']))}; remove the "
                         f"stale one from the experiment's run folder (the sweep writes <experiment>-plan.csv, "
                         f"which selects its own)")
    return runs


def _metrics(frame: pd.DataFrame, side: str) -> list[str]:
    names = [*METRICS, *TRUE_METRICS]
    return [m for m in names if side_column(m, side) in frame.columns and frame[side_column(m, side)].notna().any()]


def _band_row(values: np.ndarray, metric: str) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    low, high = seed_band(finite)
    return {metric: float(finite.mean()) if len(finite) else np.nan, f"{metric}_low": low, f"{metric}_high": high}


def setting_table(results: pd.DataFrame, choices: pd.DataFrame, setting: str,
                  rule: VerdictRule | None = None) -> pd.DataFrame:
    """One row per objective in ``setting`` (cross-entropy first), then the reference rows: its value, seeds, each
    metric's ``mean``, ``low`` and ``high`` (95 % t-interval) on the reported side and, for :data:`VERDICTS`, the
    paired difference to cross-entropy with its interval, Holm-corrected p-value and verdict under ``rule`` (see the
    module docstring)."""
    rule = rule or VerdictRule()
    runs = chosen_runs(results[results["setting"] == setting], choices[choices["setting"] == setting])
    side = reported_side(runs)
    metrics = _metrics(runs, side)
    judged = [m for m in VERDICTS if m in metrics]
    if "ece_adaptive" not in judged and "ece" in metrics:  # runs made before the adaptive ECE existed
        judged.insert(1, "ece")
    baseline = runs[runs["objective"] == BASELINE].set_index("seed")
    at_edge = {r.objective: bool(r.at_edge) for r in choices[choices["setting"] == setting].itertuples()}
    rows, comparisons = [], []
    order = [BASELINE, *[o for o in objectives.names() if o != BASELINE]]
    for objective in [o for o in order if o in set(runs["objective"])]:
        frame = runs[runs["objective"] == objective].set_index("seed").sort_index()
        row: dict[str, Any] = {"setting": setting, "objective": objective, "side": side,
                               "parameter": objectives.parameter_name(objective),
                               "value": float(frame["weight"].iloc[0]), "at_edge": at_edge.get(objective, False),
                               "seeds": len(frame), "best_epoch": float(frame["best_epoch"].mean())}
        if side == "test" and "val_cross_entropy" in frame:  # what a later choice may use: dev, never test
            row["dev_cross_entropy"] = float(frame["val_cross_entropy"].mean())
        for metric in metrics:
            row.update(_band_row(frame[side_column(metric, side)].to_numpy(dtype=float), metric))
        for metric in judged:
            column = side_column(metric, side)
            seeds = sorted(set(frame.index) & set(baseline.index))
            comparison = paired_test(frame.loc[seeds, column].to_numpy(dtype=float),
                                     baseline.loc[seeds, column].to_numpy(dtype=float))
            row.update({f"delta_{metric}": comparison.mean, f"delta_{metric}_low": comparison.low,
                        f"delta_{metric}_high": comparison.high, f"p_{metric}": comparison.p})
            if objective != BASELINE:
                comparisons.append((len(rows), metric, comparison))
            else:
                row[f"verdict_{metric}"] = "baseline"
        rows.append(row)
    outcomes = table_verdicts([c for _, _, c in comparisons], [rule.effect(m) for _, m, _ in comparisons],
                              [VERDICTS.get(m, True) for _, m, _ in comparisons], min_pairs=rule.min_seeds)
    for (position, metric, _), (corrected, outcome) in zip(comparisons, outcomes, strict=True):
        rows[position].update({f"p_holm_{metric}": corrected, f"verdict_{metric}": outcome,
                               f"effect_{metric}": rule.effect(metric)})
    return pd.concat([pd.DataFrame(rows), reference_rows(runs, setting, side)], ignore_index=True)


#: The reference rows: (name in the table, its results column without ``ref_``).
REFERENCES = (("add-one unigram", "unigram_cross_entropy"), ("bigram (interpolated, 0.6)", "bigram_cross_entropy"),
              ("Kneser-Ney (order chosen on dev)", "kneser_ney_cross_entropy"))


def reference_rows(runs: pd.DataFrame, setting: str, side: str) -> pd.DataFrame:
    """The count models and, on the synthetic corpus, the source's floor, each on the baseline runs' splits (one
    value per seed, since each seed may hold out its own headlines): mean and interval over those seeds."""
    base = runs[runs["objective"] == BASELINE].sort_values("seed")
    rows = []
    for name, key in REFERENCES:
        column = f"ref_{key}"
        if column not in base.columns or base[column].isna().all():
            continue
        row: dict[str, Any] = {"setting": setting, "objective": name, "side": side, "parameter": "",
                               "seeds": len(base), **_band_row(base[column].to_numpy(dtype=float), "cross_entropy")}
        row["perplexity"] = float(np.exp(row["cross_entropy"]))
        if key.startswith("kneser_ney") and "ref_kneser_ney_order" in base.columns:
            orders = sorted({int(o) for o in base["ref_kneser_ney_order"].dropna()})
            row.update({"parameter": "order", "value": orders[0] if len(orders) == 1 else math.nan,
                        "orders": " ".join(str(o) for o in orders)})
        rows.append(row)
    floor = side_column("entropy_floor", side)
    if floor in base.columns and base[floor].notna().any():
        row = {"setting": setting, "objective": "source (the floor H(q))", "side": side, "parameter": "",
               "seeds": len(base), **_band_row(base[floor].to_numpy(dtype=float), "cross_entropy")}
        row["perplexity"] = float(np.exp(row["cross_entropy"]))
        row["true_kl"] = 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def readable(table: pd.DataFrame, metrics: tuple[str, ...] = ("cross_entropy", "perplexity", "ece_adaptive", "ece",
                                                                "brier", "entropy_gap", "gen_sample_distinct_2",
                                                                "gen_greedy_repeat", "true_kl",
                                                                "gen_sample_true_loglik")) -> pd.DataFrame:
    """A :func:`setting_table` as text cells ``mean [low, high]`` for the README and the notebook."""
    out = pd.DataFrame({"objective": table["objective"]})
    orders = table["orders"] if "orders" in table.columns else pd.Series([np.nan] * len(table))
    out["value"] = [("" if p in ("", "none") or pd.isna(p) or (pd.isna(v) and pd.isna(o)) else
                     f"order {o}" if p == "order" else f"{p}={v:g}" + (" (edge)" if e is True else ""))
                    for p, v, e, o in zip(table["parameter"], table.get("value", np.nan),
                                          table.get("at_edge", False), orders, strict=True)]
    for metric in metrics:
        if metric not in table.columns or table[metric].isna().all():
            continue
        low, high = table.get(f"{metric}_low"), table.get(f"{metric}_high")
        out[SHORT.get(metric, metric)] = [
            "" if pd.isna(m) else (f"{m:.3g}" if low is None or pd.isna(low.iloc[i]) or low.iloc[i] == high.iloc[i]
                                   else f"{m:.3g} [{low.iloc[i]:.3g}, {high.iloc[i]:.3g}]")
            for i, m in enumerate(table[metric])]
    for metric in [*VERDICTS, "ece"]:
        column = f"verdict_{metric}"
        if column in table.columns and table[column].notna().any():
            out[f"Δ{SHORT[metric]} vs CE"] = [
                "" if pd.isna(v) or v == "baseline" else f"{m:+.3g} [{lo:+.3g}, {hi:+.3g}] {v}"
                for m, lo, hi, v in zip(table[f"delta_{metric}"], table[f"delta_{metric}_low"],
                                        table[f"delta_{metric}_high"], table[column], strict=True)]
    return out.fillna("")


#: The band table's columns after its grouping columns (:func:`band_table`).
BAND_TABLE_COLUMNS = ("objective", "weight", "side", "band", "share", "baseline_ce", "ce", "delta", "delta_low",
                      "delta_high", "p", "p_holm", "n_seeds")


def band_table(results: pd.DataFrame, group_by: tuple[str, ...] = ("dataset", "split"), *,
               baseline: str = BASELINE) -> pd.DataFrame:
    """Each objective's difference to ``baseline`` in cross-entropy per word-frequency band, paired by seed.

    ``results``: one row per run (a run's best epoch: :func:`chosen_runs` of :func:`load_study`'s rows, or
    :func:`entropylab.experiments.results.best_epoch`), each with the per-band columns ``<side>_ce_<band>`` and
    ``<side>_share_<band>``. Per group of ``group_by`` (e.g. ``("dataset", "split", "embedding_dim")`` for a study
    over model sizes), its reported side (:func:`reported_side`: test where the group's runs have it, else
    validation) and each configuration (objective and weight) but the baseline, one row per band of
    :data:`entropylab.metrics.bands.BANDS`: ``share`` (the band's mean share of the side's labels), ``baseline_ce``
    and ``ce`` (mean over the paired seeds), ``delta`` = mean over seeds of ``ce_s - baseline_ce_s`` with its 95 %
    t-interval ``delta_low .. delta_high`` and the paired t-test's ``p``
    (:func:`entropylab.analysis.verdicts.paired_test`), ``p_holm`` (Holm over the group's rows) and ``n_seeds``,
    the seeds with a finite value on both sides (0 for a band with no labels: ``delta`` is NaN)."""
    missing = [c for c in (*group_by, "objective", "weight", "seed") if c not in results.columns]
    if missing:
        raise ValueError(f"the band table groups by column(s) {', '.join(missing)} that the results lack; pass "
                         f"group_by with columns of the results ({', '.join(map(str, results.columns))})")
    rows: list[dict[str, Any]] = []
    for key, group in results.groupby(list(group_by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        side = reported_side(group)
        bands = [b for b in BANDS if side_column(f"ce_{b}", side) in group.columns]
        if not bands:
            raise ValueError(f"the results have no per-band cross-entropy ({side_column('ce_frequent', side)}, ...):"
                             f" its runs were trained before the word-frequency bands; train them again")
        twice = group[group.duplicated(["objective", "weight", "seed"], keep=False)]
        if len(twice):
            raise ValueError(f"two rows of one configuration and seed in group {key}: pass one row per run (its "
                             f"best epoch: entropylab.experiments.results.best_epoch)")
        base = group[group["objective"] == baseline].set_index("seed")
        if base.empty:
            continue
        first = len(rows)
        order = [o for o in objectives.names() if o != baseline]
        configurations = sorted({(o, float(w)) for o, w in zip(group["objective"], group["weight"], strict=True)
                                 if o != baseline},
                                key=lambda c: (order.index(c[0]) if c[0] in order else len(order), c[0], c[1]))
        for objective, weight in configurations:
            frame = group[(group["objective"] == objective) & (group["weight"] == weight)].set_index("seed")
            seeds = sorted(set(frame.index) & set(base.index))
            for band in bands:
                column = side_column(f"ce_{band}", side)
                values = frame.loc[seeds, column].to_numpy(dtype=float)
                reference = base.loc[seeds, column].to_numpy(dtype=float)
                comparison = paired_test(values, reference)
                paired = np.isfinite(values) & np.isfinite(reference)
                share = side_column(f"share_{band}", side)
                rows.append({**dict(zip(group_by, key, strict=True)), "objective": objective, "weight": weight,
                             "side": side, "band": band,
                             "share": float(base.loc[seeds, share].mean()) if share in base.columns else np.nan,
                             "baseline_ce": float(reference[paired].mean()) if paired.any() else np.nan,
                             "ce": float(values[paired].mean()) if paired.any() else np.nan,
                             "delta": comparison.mean, "delta_low": comparison.low, "delta_high": comparison.high,
                             "p": comparison.p, "n_seeds": comparison.n})
        for row, corrected in zip(rows[first:], holm([r["p"] for r in rows[first:]]), strict=True):
            row["p_holm"] = corrected
    return pd.DataFrame(rows, columns=[*group_by, *BAND_TABLE_COLUMNS])
