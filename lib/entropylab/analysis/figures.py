"""Figures of a results table (seaborn): metrics per epoch with seed bands, perplexity against references, PNGs.

Also the spread over seeds, one run's curves, and atomic PNG writing.

With several seeds a line is the mean over seeds and its band the 95% t-interval of that mean,
``mean ± t_{0.975, n-1} · sd / sqrt(n)`` (:mod:`entropylab.analysis.stats`). An axis whose values span two
decades or more is drawn on a log scale, and its label says so.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import objectives
from ..experiments.results import final_epoch
from .stats import geometric_mean, log_seed_band, seed_band

METRIC_LABELS = {
    "paper_entropy": "mean entropy H_paper (nats)",
    "paper_kl": "mean KL_paper (nats)",
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_perplexity": "validation perplexity",
    "val_cross_entropy": "validation cross-entropy (nats)",
    "val_accuracy": "validation top-1 accuracy",
    "val_entropy": "mean entropy of p (nats)",
}
LOG_SPAN = 100.0  # max / min at or above this (two decades): log scale
REQUIRED_COLUMNS = ("objective", "weight", "seed", "epoch")
# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


class NoRunsError(ValueError):
    """The results hold no run that a figure needs; the message says which runs to train."""


def check_results(results: pd.DataFrame, metrics: Sequence[str] = ()) -> None:
    """Raise a clear error when the results frame lacks a column a figure needs."""
    missing = [c for c in (*REQUIRED_COLUMNS, *metrics) if c not in results.columns]
    if missing:
        raise ValueError(f"the results frame lacks column(s) {', '.join(missing)}; build it with "
                         f"entropylab.experiments.results.load_results(experiment) "
                         f"(columns: {', '.join(results.columns)})")


def weight_label(weight: float) -> str:
    """``1e-07``, ``10``, ``0.001``: the weight as the run folders spell it."""
    return f"{float(weight):g}"


def select(results: pd.DataFrame, objective: str, weight: float | None = None) -> pd.DataFrame:
    """The rows of one objective (and, if given, one weight, compared with a relative tolerance)."""
    rows = results[results["objective"] == objective]
    if weight is not None:
        rows = rows[np.isclose(rows["weight"].astype(float), float(weight), rtol=1e-6, atol=0.0)]
    return rows


def use_log_scale(values: Sequence[float] | pd.Series, span: float = LOG_SPAN) -> bool:
    """True when every finite value is positive and ``max / min >= span``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return bool(len(x) and x.min() > 0 and x.max() / x.min() >= span)


def _label(metric: str, log: bool) -> str:
    label = METRIC_LABELS.get(metric, metric)
    return f"{label} (log scale)" if log else label


def _n_seeds(frame: pd.DataFrame, by: str) -> int:
    return int(frame.groupby(by)["seed"].nunique().max()) if len(frame) else 0


def metric_panel(ax, frame: pd.DataFrame, metric: str, hue: str, hue_order: Sequence[str] | None = None,
                 palette: str | Sequence | None = None, legend: bool = True, log: bool | None = None,
                 dashes: bool = False) -> bool:
    """One metric per epoch, a line per ``hue`` value; returns whether the y axis is logarithmic.

    Several seeds: the line is the mean over seeds and the band its 95% t-interval; on a log axis (``log``, by
    default chosen by :func:`use_log_scale`) both are taken on ``log x`` (geometric mean), so the band stays
    positive. ``dashes`` draws each ``hue`` value with its own dash pattern (lines that coincide stay visible).
    """
    import seaborn as sns

    log = use_log_scale(frame[metric]) if log is None else log
    several = _n_seeds(frame, hue) > 1
    estimator = geometric_mean if log else "mean"
    band = (log_seed_band if log else seed_band) if several else None
    style = {"style": hue, "style_order": hue_order, "dashes": True} if dashes else {}
    sns.lineplot(data=frame, x="epoch", y=metric, hue=hue, hue_order=hue_order, palette=palette,
                 estimator=estimator, errorbar=band, marker="o", ax=ax, legend=legend, **style)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(_label(metric, log))
    ax.set_xlabel("epoch")
    epochs = sorted(frame["epoch"].unique())
    if epochs:
        ax.set_xticks(epochs)
    if several:
        centre = "geometric mean" if log else "mean"
        ax.set_title(f"{centre} over {_n_seeds(frame, hue)} seeds, 95% t-band", fontsize="small")
    return log


def weight_frame(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    rows = rows.copy()
    rows["weight_label"] = rows["weight"].map(weight_label)
    order = [weight_label(w) for w in sorted(rows["weight"].astype(float).unique())]
    rows["weight_label"] = pd.Categorical(rows["weight_label"], categories=order)
    return rows, order


def four_panels(frame: pd.DataFrame, metrics: Sequence[str], hue: str, order: Sequence[str], palette, title: str,
                legend_title: str, dashes: bool = False):
    """A 2 x 2 grid: one :func:`metric_panel` per metric, a line per ``hue`` value, one legend outside."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), constrained_layout=True)
    for i, (ax, metric) in enumerate(zip(axes.flat, metrics, strict=True)):
        metric_panel(ax, frame, metric, hue, order, palette, legend=(i == 0), dashes=dashes)
    legend_outside(fig, axes.flat[0], legend_title)
    fig.suptitle(title)
    return fig


def legend_outside(fig, ax, title: str) -> None:
    """Move ``ax``'s legend to the right of the figure, so it hides no data."""
    legend = ax.get_legend()
    if legend is None:
        return
    handles, labels = ax.get_legend_handles_labels()
    legend.remove()
    fig.legend(handles, labels, title=title, loc="outside right center")


def run_label(objective: str, weight: float) -> str:
    """``mse``, ``kl_regularized weight=10``, ``label_smoothing smoothing=0.1``: a configuration in legends."""
    return objectives.describe(objective, weight)


def run_order(frame: pd.DataFrame) -> list[str]:
    """Run labels in a fixed order: the objectives' order (the paper's first), by weight within each."""
    rank = {name: i for i, name in enumerate(objectives.names())}
    pairs = sorted(set(zip(frame["objective"], frame["weight"].astype(float), strict=True)),
                   key=lambda ow: (rank.get(ow[0], len(rank)), ow[0], ow[1]))
    return [run_label(o, w) for o, w in pairs]


def _with_run_labels(results: pd.DataFrame) -> pd.DataFrame:
    frame = results.copy()
    frame["run"] = [run_label(o, w) for o, w in zip(frame["objective"], frame["weight"], strict=True)]
    return frame


def perplexity_figure(results: pd.DataFrame, metric: str = "val_perplexity"):
    """Ours: validation perplexity per epoch for each run (objective and weight; seeds pooled into a band)
    against the count-model references of the runs' splits (columns ``ref_unigram_perplexity``,
    ``ref_bigram_perplexity`` and, where the runs have it, ``ref_kneser_ney_perplexity`` of the results, from each
    run's ``metrics.json``).

    Runs on different splits have different references; each distinct value gets its own line (in the legend).
    The perplexity axis is always logarithmic.
    """
    import matplotlib.pyplot as plt

    check_results(results, (metric,))
    if results.empty:
        raise NoRunsError("no runs to draw; train some first (notebooks 01-03 or the sweep)")
    frame = _with_run_labels(results)
    order = run_order(frame)
    styles = {"ref_unigram_perplexity": ("unigram (add-one)", ":"), "ref_bigram_perplexity": ("bigram", "--"),
              "ref_kneser_ney_perplexity": ("Kneser-Ney (best order)", "-.")}
    references = {column: sorted(frame[column].dropna().unique()) for column in styles
                  if metric == "val_perplexity" and column in frame.columns and frame[column].notna().any()}
    # a perplexity is exp(cross-entropy): on a log axis equal distances are equal differences in nats
    log = metric == "val_perplexity" or use_log_scale(frame[metric])
    fig, ax = plt.subplots(figsize=(10, 5), constrained_layout=True)
    metric_panel(ax, frame, metric, "run", order, "tab10" if len(order) <= 10 else "husl", log=log)
    for column, values in references.items():
        name, style = styles[column]
        for value in values:
            ax.axhline(value, color="black", linestyle=style, linewidth=1, label=f"{name} reference: {value:.4g}")
    legend_outside(fig, ax, "run")
    fig.suptitle("Ours: validation perplexity of p against n-gram references (lower is better)")
    return fig


def seed_spread_figure(results: pd.DataFrame, metric: str = "val_perplexity"):
    """Ours: the final-epoch value of ``metric`` for every seed of every run (a point per seed, the mean as a
    bar), so the spread across seeds is visible next to the differences between objectives and weights."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    check_results(results, (metric,))
    if results.empty:
        raise NoRunsError("no runs to draw; train some first (notebooks 01-03 or the sweep)")
    last = _with_run_labels(final_epoch(results))
    order = run_order(last)
    log = use_log_scale(last[metric])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(order) + 2), constrained_layout=True)
    sns.barplot(data=last, y="run", x=metric, order=order, estimator=geometric_mean if log else "mean",
                errorbar=None, color="#dddddd", ax=ax)
    sns.stripplot(data=last, y="run", x=metric, order=order, hue="seed", palette="dark", ax=ax, size=6)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(_label(metric, log) + ", final epoch (bar: " + ("geometric " if log else "") + "mean)")
    ax.set_ylabel("")
    legend_outside(fig, ax, "seed")
    fig.suptitle(f"Ours: final {METRIC_LABELS.get(metric, metric)} per seed")
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG; give a path ending in .png, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png.tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a figure is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

def run_curves(history: pd.DataFrame, title: str,
               metrics: Sequence[str] = ("paper_entropy", "paper_kl", "loss", "val_loss")):
    """One run's ``metrics`` per epoch, a small panel each (what a training notebook shows after its run)."""
    import seaborn as sns

    present = [m for m in metrics if m in history.columns]
    long = history.melt(id_vars="epoch", value_vars=present, var_name="metric", value_name="value")
    grid = sns.relplot(data=long, x="epoch", y="value", col="metric", col_wrap=4, kind="line", marker="o",
                       height=2.4, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    grid.figure.suptitle(title, y=1.04)
    return grid.figure
