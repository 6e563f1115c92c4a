"""The scale study's headline figure: each objective's difference to cross-entropy against the cross-entropy
model's distance to the floor, one line per model size (:func:`headline_figure`)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

LABELS = {"cross_entropy": "test cross-entropy (nats)", "true_kl": "true KL (nats)",
          "ece_adaptive": "adaptive ECE"}


def headline_figure(diffs: pd.DataFrame):
    """Rows: objectives; columns: metrics (:func:`.tables.differences`). In each panel, per model size, the
    difference ``objective - cross-entropy`` (below 0: the objective is lower, better for every metric here) with
    its 95 % paired interval, against the cell's distance to the floor (log axis; the truth is to the left)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if diffs.empty:
        raise ValueError("no differences to draw; run the scale study first (make scale)")
    objectives = list(dict.fromkeys(diffs["objective"]))
    metrics = [m for m in LABELS if m in set(diffs["metric"])] + \
        [m for m in dict.fromkeys(diffs["metric"]) if m not in LABELS]
    models = sorted(set(diffs["model"]), key=lambda m: [int(x) for x in m.split("/")])
    colors = dict(zip(models, plt.get_cmap("viridis")([i / max(len(models) - 1, 1) for i in range(len(models))]),
                      strict=True))
    fig, axes = plt.subplots(len(objectives), len(metrics), figsize=(3.6 * len(metrics), 2.6 * len(objectives)),
                             squeeze=False, constrained_layout=True, sharex=True)
    for i, objective in enumerate(objectives):
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            ax.axhline(0.0, color="black", linewidth=0.8)
            for model in models:
                rows = diffs[(diffs["objective"] == objective) & (diffs["metric"] == metric)
                             & (diffs["model"] == model)].sort_values("distance")
                if rows.empty:
                    continue
                yerr = [rows["delta"] - rows["low"], rows["high"] - rows["delta"]]
                ax.errorbar(rows["distance"], rows["delta"], yerr=yerr, marker="o", markersize=4, capsize=2,
                            color=colors[model], label=f"model {model}")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            if i == 0:
                ax.set_title(LABELS.get(metric, metric), fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{objective}\nminus cross-entropy", fontsize=9)
            if i == len(objectives) - 1:
                ax.set_xlabel("CE model's distance to the floor (nats)", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(models))
    fig.suptitle("Does an objective's advantage over cross-entropy hold as the model approaches the truth?")
    return fig


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save ``fig`` as a PNG at ``path`` (folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
