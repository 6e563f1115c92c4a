"""The paper's figures 1-6 and ours, drawn with seaborn from the tidy results frame.

The results frame has one row per run and epoch (see :func:`entropylab.report.collect_results`): the config
columns ``objective`` (the loss's name: ``mse``, ``entropy_regularized``, ``kl_regularized``, ...), ``weight``,
``seed`` and the history columns ``epoch``, ``loss`` (training loss), ``val_loss``, ``paper_entropy``,
``paper_kl``, ``val_perplexity``, ...

* Figure 1: the control (``mse``) against entropy regularization at ``w = 1e-7``, the four metrics per epoch.
* Figure 2: the four metrics per epoch for each entropy weight.
* Figures 3-6: ``paper_entropy``, ``paper_kl``, ``loss``, ``val_loss`` per epoch for each KL weight.
* Ours: validation perplexity per run against the unigram and bigram references of its split.

With several seeds a line is the mean over seeds and its band the 95% t-interval of that mean,
``mean ± t_{0.975, n-1} · sd / sqrt(n)``. An axis whose values span two decades or more is drawn on a log
scale, and its label says so.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

CONTROL = "mse"
ENTROPY = "entropy_regularized"
KL = "kl_regularized"
PAPER_ENTROPY_WEIGHT = 1e-7
PAPER_METRICS = ("paper_entropy", "paper_kl", "loss", "val_loss")
KL_FIGURES = {3: "paper_entropy", 4: "paper_kl", 5: "loss", 6: "val_loss"}
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
OBJECTIVE_LABELS = {CONTROL: "control (MSE)", ENTROPY: "entropy regularized", KL: "KL regularized"}
LOG_SPAN = 100.0  # max / min at or above this (two decades): log scale
REQUIRED_COLUMNS = ("objective", "weight", "seed", "epoch")
# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


class NoRunsError(ValueError):
    """The results hold no run that a figure needs; the message says which runs to train."""


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``, the two-sided 95% quantile of Student's t."""
    if df < 1:
        raise ValueError("a t-interval needs at least two values (df >= 1)")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def seed_band(values: Sequence[float]) -> tuple[float, float]:
    """95% t-interval of the mean of ``values`` (one per seed): ``mean ± t · sd / sqrt(n)``.

    A single value gives the degenerate interval ``(value, value)``.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean
    half = t_quantile_975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean - half, mean + half


def check_results(results: pd.DataFrame, metrics: Sequence[str] = ()) -> None:
    """Raise a clear error when the results frame lacks a column a figure needs."""
    missing = [c for c in (*REQUIRED_COLUMNS, *metrics) if c not in results.columns]
    if missing:
        raise ValueError(f"the results frame lacks column(s) {', '.join(missing)}; build it with "
                         f"entropylab.report.load_results(experiment) (columns: {', '.join(results.columns)})")


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


def geometric_mean(values: Sequence[float]) -> float:
    """``exp(mean(log x))``: the centre of a band drawn on a log axis."""
    x = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.log(x))))


def log_seed_band(values: Sequence[float]) -> tuple[float, float]:
    """:func:`seed_band` of ``log x``, exponentiated: a positive band around the geometric mean (log axes)."""
    low, high = seed_band(np.log(np.asarray(values, dtype=np.float64)))
    return math.exp(low), math.exp(high)


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


def _weight_frame(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    rows = rows.copy()
    rows["weight_label"] = rows["weight"].map(weight_label)
    order = [weight_label(w) for w in sorted(rows["weight"].astype(float).unique())]
    rows["weight_label"] = pd.Categorical(rows["weight_label"], categories=order)
    return rows, order


def _four_panels(frame: pd.DataFrame, hue: str, order: Sequence[str], palette, title: str, legend_title: str,
                 dashes: bool = False):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), constrained_layout=True)
    for i, (ax, metric) in enumerate(zip(axes.flat, PAPER_METRICS, strict=True)):
        metric_panel(ax, frame, metric, hue, order, palette, legend=(i == 0), dashes=dashes)
    _legend_outside(fig, axes.flat[0], legend_title)
    fig.suptitle(title)
    return fig


def _legend_outside(fig, ax, title: str) -> None:
    """Move ``ax``'s legend to the right of the figure, so it hides no data."""
    legend = ax.get_legend()
    if legend is None:
        return
    handles, labels = ax.get_legend_handles_labels()
    legend.remove()
    fig.legend(handles, labels, title=title, loc="outside right center")


def figure1(results: pd.DataFrame, entropy_weight: float = PAPER_ENTROPY_WEIGHT):
    """Figure 1: the control against entropy regularization at ``entropy_weight``, the four metrics."""
    check_results(results, PAPER_METRICS)
    control = select(results, CONTROL)
    entropy = select(results, ENTROPY, entropy_weight)
    if control.empty or entropy.empty:
        missing = [name for name, rows in (("the control (loss mse)", control),
                                           (f"entropy_regularized w={weight_label(entropy_weight)}", entropy))
                   if rows.empty]
        raise NoRunsError(f"figure 1 needs {' and '.join(missing)}; train them (notebooks 01 and 02, or "
                          f"`python -m entropylab sweep params/paper.yaml`)")
    entropy_name = f"entropy regularized, w={weight_label(entropy_weight)}"
    frame = pd.concat([control.assign(model=OBJECTIVE_LABELS[CONTROL]), entropy.assign(model=entropy_name)])
    order = [OBJECTIVE_LABELS[CONTROL], entropy_name]
    return _four_panels(frame, "model", order, ["#444444", "#d95f02"],
                        "Figure 1: control model vs. entropy regularized model", "model", dashes=True)


def figure2(results: pd.DataFrame):
    """Figure 2: the four metrics per epoch for each entropy-regularization weight."""
    check_results(results, PAPER_METRICS)
    rows = select(results, ENTROPY)
    if rows.empty:
        raise NoRunsError("figure 2 needs entropy_regularized runs; train them (notebook 02 across weights: "
                          "`python -m entropylab sweep params/paper.yaml`)")
    frame, order = _weight_frame(rows)
    return _four_panels(frame, "weight_label", order, "viridis",
                        "Figure 2: entropy regularization for different weights", "entropy weight")


def kl_figure(results: pd.DataFrame, metric: str):
    """Figures 3-6: one of the paper's four metrics per epoch for each KL-regularization weight."""
    import matplotlib.pyplot as plt

    if metric not in KL_FIGURES.values():
        raise ValueError(f"unknown metric {metric!r} for the KL figures; use one of {', '.join(KL_FIGURES.values())}")
    check_results(results, (metric,))
    rows = select(results, KL)
    number = next(n for n, m in KL_FIGURES.items() if m == metric)
    if rows.empty:
        raise NoRunsError(f"figure {number} needs kl_regularized runs; train them (notebook 03 across weights: "
                          "`python -m entropylab sweep params/paper.yaml`)")
    frame, order = _weight_frame(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    metric_panel(ax, frame, metric, "weight_label", order, "viridis")
    _legend_outside(fig, ax, "KL weight")
    fig.suptitle(f"Figure {number}: {METRIC_LABELS[metric]} of KL regularization for different weights")
    return fig


def paper_figures(results: pd.DataFrame) -> tuple[dict[str, object], dict[str, str]]:
    """Every paper figure the results allow: ``({"figure1": fig, ...}, {"figure2": "why it was skipped"})``."""
    figures: dict[str, object] = {}
    skipped: dict[str, str] = {}
    makers = {"figure1": lambda: figure1(results), "figure2": lambda: figure2(results)}
    makers.update({f"figure{n}": (lambda m=m: kl_figure(results, m)) for n, m in KL_FIGURES.items()})
    for name, make in makers.items():
        try:
            figures[name] = make()
        except NoRunsError as exc:
            skipped[name] = str(exc)
    return figures, skipped


def run_label(objective: str, weight: float) -> str:
    """``control (MSE)``, ``kl_regularized w=10``: a run's name in our figures' legends."""
    if objective == CONTROL:
        return OBJECTIVE_LABELS[CONTROL]
    return f"{objective} w={weight_label(weight)}" if float(weight) else objective


def run_order(frame: pd.DataFrame) -> list[str]:
    """Run labels in a fixed order: the control, entropy, KL, then other objectives; by weight within each."""
    rank = {CONTROL: 0, ENTROPY: 1, KL: 2}
    pairs = sorted(set(zip(frame["objective"], frame["weight"].astype(float), strict=True)),
                   key=lambda ow: (rank.get(ow[0], 3), ow[0], ow[1]))
    return [run_label(o, w) for o, w in pairs]


def _with_run_labels(results: pd.DataFrame) -> pd.DataFrame:
    frame = results.copy()
    frame["run"] = [run_label(o, w) for o, w in zip(frame["objective"], frame["weight"], strict=True)]
    return frame


def perplexity_figure(results: pd.DataFrame, metric: str = "val_perplexity"):
    """Ours: validation perplexity per epoch for each run (objective and weight; seeds pooled into a band)
    against the unigram and bigram references of the runs' splits (columns ``ref_unigram_perplexity`` and
    ``ref_bigram_perplexity`` of the results, from each run's ``metrics.json``).

    Runs on different splits have different references; each distinct value gets its own line (in the legend).
    The perplexity axis is always logarithmic.
    """
    import matplotlib.pyplot as plt

    check_results(results, (metric,))
    if results.empty:
        raise NoRunsError("no runs to draw; train some first (notebooks 01-03 or the sweep)")
    frame = _with_run_labels(results)
    order = run_order(frame)
    styles = {"ref_unigram_perplexity": ("unigram (add-one)", ":"), "ref_bigram_perplexity": ("bigram", "--")}
    references = {column: sorted(frame[column].dropna().unique()) for column in styles
                  if metric == "val_perplexity" and column in frame.columns}
    # a perplexity is exp(cross-entropy): on a log axis equal distances are equal differences in nats
    log = metric == "val_perplexity" or use_log_scale(frame[metric])
    fig, ax = plt.subplots(figsize=(10, 5), constrained_layout=True)
    metric_panel(ax, frame, metric, "run", order, "tab10" if len(order) <= 10 else "husl", log=log)
    for column, values in references.items():
        name, style = styles[column]
        for value in values:
            ax.axhline(value, color="black", linestyle=style, linewidth=1, label=f"{name} reference: {value:.4g}")
    _legend_outside(fig, ax, "run")
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
    last = _with_run_labels(results.loc[results.groupby(["objective", "weight", "seed"])["epoch"].idxmax()])
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
    _legend_outside(fig, ax, "seed")
    fig.suptitle(f"Ours: final {METRIC_LABELS.get(metric, metric)} per seed")
    return fig


def headline_length_figure(corpus):
    """Histogram of the corpus's headline lengths in words (after cleaning)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .report import headline_lengths

    lengths = headline_lengths(corpus).tolist()
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    sns.histplot(x=lengths, discrete=True, ax=ax, color="#4c72b0")
    ax.set_xlabel("headline length (words, after cleaning)")
    ax.set_ylabel("headlines")
    fig.suptitle(f"{corpus.name}: {len(lengths):,} headlines, longest {max(lengths)} words")
    return fig


def word_counts(corpus) -> np.ndarray:
    """Occurrences of each vocabulary word in the cleaned headlines, by rank (most frequent first)."""
    from collections import Counter

    from .data import clean_headline, tokenize

    counts: Counter[str] = Counter()
    for h in corpus.headlines:
        counts.update(tokenize(clean_headline(h)))
    return np.array(sorted(counts.values(), reverse=True), dtype=np.int64)


def zipf_exponent(counts: Sequence[int]) -> float:
    """Least-squares slope ``s`` of ``log count = c - s log rank`` over all ranks (Zipf's law: ``s ≈ 1``)."""
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) < 2:
        raise ValueError("a Zipf fit needs at least two words")
    ranks = np.arange(1, len(counts) + 1, dtype=np.float64)
    slope, _ = np.polyfit(np.log(ranks), np.log(counts), 1)
    return float(-slope)


def zipf_figure(corpus):
    """Word frequency against rank on log-log axes, with the fitted Zipf line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    counts = word_counts(corpus)
    ranks = np.arange(1, len(counts) + 1)
    s = zipf_exponent(counts)
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    sns.lineplot(x=ranks, y=counts, ax=ax, drawstyle="steps-post", label="words")
    fitted = np.exp(np.polyval(np.polyfit(np.log(ranks), np.log(counts), 1), np.log(ranks)))
    ax.plot(ranks, fitted, "--", color="black", linewidth=1, label=f"fit: count ∝ rank^-{s:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank (log scale)")
    ax.set_ylabel("occurrences (log scale)")
    ax.legend()
    fig.suptitle(f"{corpus.name}: word frequency by rank (Zipf plot), {len(counts):,} words")
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
