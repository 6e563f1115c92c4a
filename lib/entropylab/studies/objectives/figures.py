"""The objectives study's figures (seaborn): perplexity against each objective's value, reliability diagrams, and
the true KL against the value on the synthetic corpus.

Lines are means over seeds at a run's best epoch, bands the 95 % t-interval of that mean
(:func:`entropylab.analysis.stats.seed_band`); the grey band is cross-entropy's, on the same setting. A reliability
diagram pools the calibration bins of a configuration's seeds: in each of 15 bins of the confidence (the
probability of the model's prediction, :mod:`entropylab.metrics.validation`), the accuracy against the mean
confidence (the diagonal is perfect calibration). The bins are the **adaptive** ones, of equal count (bin ``k``: the
``k``-th fifteenth of each seed's validation examples sorted by confidence; ``val_ece_adaptive``), where the runs
have them; runs saved before them (no ``adaptive_*`` keys in ``metrics["reliability"]``, no ``binning`` column in
an older ``<experiment>-reliability.csv``) get their 15 equal-width bins ``[(k-1)/15, k/15)`` (``val_ece``), and the
panel's title says which. A flat model has every confidence below 1/15: its equal-width diagram is one point.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ... import objectives
from ...analysis.stats import seed_band
from ...training import store
from .tables import BASELINE, setting_name

#: One row per run, binning and bin: the bin's example count, sum of confidences and number correct, and its edges
#: (equal-width: ``k/15`` and ``(k+1)/15``; adaptive: the lowest confidence below it and its highest, from
#: ``adaptive_edges``). ``binning`` is ``equal_width`` or ``adaptive``; a table without it (older) is equal-width.
RELIABILITY_COLUMNS = ("setting", "objective", "weight", "seed", "bin", "count", "confidence", "correct", "binning",
                       "low", "high")
EQUAL_WIDTH, ADAPTIVE = "equal_width", "adaptive"
#: How each binning is named on the figure.
BINNING_LABELS = {EQUAL_WIDTH: "15 equal-width bins", ADAPTIVE: "15 equal-count (adaptive) bins"}


def _bands(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = []
    for weight, group in frame.groupby("weight"):
        low, high = seed_band(group[metric].to_numpy(dtype=float))
        rows.append({"weight": weight, "mean": float(group[metric].mean()), "low": low, "high": high})
    return pd.DataFrame(rows).sort_values("weight")


def value_figure(results: pd.DataFrame, metric: str = "val_perplexity", settings: list[str] | None = None,
                 choices: pd.DataFrame | None = None):
    """``metric`` against the objective's value: a row of panels per tuned objective, a column per setting."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    settings = settings or sorted(results["setting"].unique())
    tuned = [o for o in objectives.names() if o in set(results["objective"]) and objectives.get(o).takes_parameter]
    fig, axes = plt.subplots(len(tuned), len(settings), figsize=(3.4 * len(settings), 2.1 * len(tuned)),
                             squeeze=False)
    for i, objective in enumerate(tuned):
        for j, setting in enumerate(settings):
            ax = axes[i][j]
            here = results[results["setting"] == setting]
            bands = _bands(here[here["objective"] == objective], metric)
            base = here[here["objective"] == BASELINE][metric].to_numpy(dtype=float)
            if len(base):
                low, high = seed_band(base)
                ax.axhspan(low, high, color="0.8", alpha=0.6, label="cross-entropy (95 % band)")
                ax.axhline(float(np.mean(base)), color="0.4", lw=1)
            if len(bands):
                ax.plot(bands["weight"], bands["mean"], marker="o", color="C0", lw=1.5)
                ax.fill_between(bands["weight"], bands["low"], bands["high"], color="C0", alpha=0.25)
                if choices is not None:
                    chosen = choices[(choices["setting"] == setting) & (choices["objective"] == objective)]
                    for value in chosen["chosen"]:
                        ax.axvline(float(value), color="C3", lw=1, ls="--")
                if bands["weight"].max() / max(bands["weight"].min(), 1e-12) >= 10:
                    ax.set_xscale("log")
            if i == 0:
                ax.set_title(setting)
            if j == 0:
                ax.set_ylabel(f"{objectives.get(objective).label}\n{metric.replace('val_', '')}", fontsize=8)
            ax.set_xlabel(objectives.parameter_name(objective), fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{metric} (validation/dev side) at the best epoch against each objective's value (mean, 95 % band "
                 f"over seeds)\ngrey: cross-entropy; dashed: the value chosen on dev (or on the tuning carve of a "
                 f"two-sided study)", fontsize=9)
    fig.tight_layout()
    return fig


def reliability_table(experiment: str, output_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The calibration bins of every finished run's kept model on its reported side (``metrics.json``: the test
    side's bins when the run has one, else the validation side's at the best epoch), one row per run, binning and
    bin (:data:`RELIABILITY_COLUMNS`; the adaptive bins only where the run has them)."""
    from ... import paths

    rows = []
    for record in store.completed_runs(paths.runs_dir(experiment, output_root)):
        bins = record.metrics.get("test_reliability") or record.metrics.get("reliability") or {}
        config = record.config
        if not bins or not config:
            continue
        run = {"setting": setting_name(config["dataset"], config["split"]), "objective": config["loss"],
               "weight": float(config["weight"]), "seed": config["seed"]}
        n_bins = len(bins["bin_count"])
        for k, (count, confidence, correct) in enumerate(zip(bins["bin_count"], bins["bin_confidence"],
                                                             bins["bin_correct"], strict=True)):
            rows.append({**run, "bin": k, "count": count, "confidence": confidence, "correct": correct,
                         "binning": EQUAL_WIDTH, "low": k / n_bins, "high": (k + 1) / n_bins})
        if "adaptive_count" in bins:
            edges = bins["adaptive_edges"]
            for k, (count, confidence, correct) in enumerate(zip(bins["adaptive_count"], bins["adaptive_confidence"],
                                                                 bins["adaptive_correct"], strict=True)):
                rows.append({**run, "bin": k, "count": count, "confidence": confidence, "correct": correct,
                             "binning": ADAPTIVE, "low": edges[k], "high": edges[k + 1]})
    return pd.DataFrame(rows, columns=list(RELIABILITY_COLUMNS))


def panel_binning(rows: pd.DataFrame) -> str:
    """The binning a panel shows: adaptive when every configuration in ``rows`` (one setting's picks) has adaptive
    bins, else equal-width (runs saved before the adaptive bins; one panel never mixes the two)."""
    if "binning" not in rows.columns or rows.empty:
        return EQUAL_WIDTH
    binning = rows["binning"].fillna(EQUAL_WIDTH)
    configurations = rows.groupby(["objective", "weight"]).size().index
    adaptive = set(rows.loc[binning == ADAPTIVE].groupby(["objective", "weight"]).size().index)
    return ADAPTIVE if adaptive and all(c in adaptive for c in configurations) else EQUAL_WIDTH


def _binned(rows: pd.DataFrame, binning: str) -> pd.DataFrame:
    if "binning" not in rows.columns:
        return rows if binning == EQUAL_WIDTH else rows.iloc[:0]
    return rows[rows["binning"].fillna(EQUAL_WIDTH) == binning]


def reliability_figure(bins: pd.DataFrame, picks: dict[str, list[tuple[str, float]]]):
    """Accuracy against confidence per bin (seeds pooled), a panel per setting, a line per ``(objective, value)``
    of ``picks[setting]``; the marker size follows the bin's share of the examples. Each panel shows the adaptive
    bins where its runs have them (:func:`panel_binning`) and names its binning in its title."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 4.0), squeeze=False)
    shown = set()
    for ax, (setting, chosen) in zip(axes[0], picks.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1)
        reach = 0.1
        picked = [bins[(bins["setting"] == setting) & (bins["objective"] == objective)
                       & np.isclose(bins["weight"], weight, rtol=1e-9, atol=0.0)] for objective, weight in chosen]
        binning = panel_binning(pd.concat(picked)) if picked else EQUAL_WIDTH
        shown.add(binning)
        for n, ((objective, weight), rows) in enumerate(zip(chosen, picked, strict=True)):
            pooled = _binned(rows, binning).groupby("bin")[["count", "confidence", "correct"]].sum()
            pooled = pooled[pooled["count"] > 0]
            if pooled.empty:
                continue
            share = pooled["count"] / pooled["count"].sum()
            reach = max(reach, float(pooled[["confidence", "correct"]].div(pooled["count"], axis=0).max().max()))
            ax.plot(pooled["confidence"] / pooled["count"], pooled["correct"] / pooled["count"], marker="o",
                    ms=3, lw=1.2, color=f"C{n}", label=objectives.describe(objective, weight))
            ax.scatter(pooled["confidence"] / pooled["count"], pooled["correct"] / pooled["count"],
                       s=400 * share, color=f"C{n}", alpha=0.3)
        limit = min(1.0, 1.1 * reach)  # zoomed to where the bins are (the axes stay equal)
        ax.set(xlim=(0, limit), ylim=(0, limit), xlabel="mean confidence in the bin",
               ylabel="accuracy in the bin", title=f"{setting}: {BINNING_LABELS[binning]}")
        ax.legend(fontsize=7, loc="upper left")
    named = " or ".join(BINNING_LABELS[b] for b in (ADAPTIVE, EQUAL_WIDTH) if b in shown)
    fig.suptitle(f"Reliability at the best epoch ({named} of the confidence, seeds pooled; diagonal: perfectly "
                 "calibrated):\ncross-entropy and the two tuned objectives of lowest mean validation cross-entropy "
                 "(picked for this figure only)")
    fig.tight_layout()
    return fig


def best_two(table: pd.DataFrame) -> list[tuple[str, float]]:
    """Cross-entropy and the two tuned objectives of lowest mean validation cross-entropy in a setting table."""
    models = table[(table["seeds"] > 0) & table["objective"].isin(objectives.names())]  # not the reference rows
    base = models[models["objective"] == BASELINE]
    column = "cross_entropy" if "cross_entropy" in models.columns else "val_cross_entropy"
    others = models[models["objective"] != BASELINE].sort_values(column).head(2)
    return [(r.objective, float(r.value)) for r in pd.concat([base, others]).itertuples()]


def save_reliability(bins: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the bins table (for reports made without the run folders)."""
    store.write_csv(Path(path), bins, checked=True)
    return Path(path)
