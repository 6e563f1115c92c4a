"""The decoding study's figures: the quality-diversity frontier per model (synthetic corpus), diversity against each
decoder's parameter, and the hyperfitting curves."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ...decoding import DECODERS
from .tables import DIVERSITY, IMPOSSIBLE_TOLERANCE, QUALITY, REFERENCE_KINDS, eligible

#: Parameters spread over decades, drawn on a log axis.
LOG_PARAMETERS = ("top_k", "epsilon_cutoff", "eta_cutoff")
REFERENCE_MARKERS = {"source": "*", "bigram": "s", "unigram": "D", "kneser_ney": "^"}


def _palette(decoders: Sequence[str]) -> dict[str, tuple]:
    import seaborn as sns

    return dict(zip(decoders, sns.color_palette("husl", len(decoders)), strict=True))


def _decoder_label(decoder: str) -> str:
    parameter = DECODERS[decoder].parameter
    return decoder if parameter is None or parameter == decoder else f"{decoder} ({parameter})"


def frontier_figure(cells: pd.DataFrame, models: Sequence[str], title: str):
    """One panel per model: each decoder's settings as a line through (diversity, quality) means with seed
    spreads as error bars; the references (the source, the count models, sampled at T = 1) as markers. Quality is
    ``possible_loglik`` (mean ``ln q`` over the words the source can emit); a setting (or reference) above
    :data:`~.tables.IMPOSSIBLE_TOLERANCE` impossible words, not ranked by the tables, is drawn with an open
    marker."""
    import matplotlib.pyplot as plt

    decoders = list(dict.fromkeys(cells.loc[~cells["kind"].isin(REFERENCE_KINDS), "decoder"]))
    colors = _palette(decoders)
    columns = min(3, len(models))
    rows = math.ceil(len(models) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)  # own scales
    references = cells[cells["kind"].isin(REFERENCE_KINDS)]
    for ax, model in zip(axes.flat, models, strict=False):
        own = cells[cells["model"] == model]
        for decoder in decoders:
            line = own[own["decoder"] == decoder].sort_values(DIVERSITY)
            if line.empty:
                continue
            ax.errorbar(line[DIVERSITY], line[QUALITY], xerr=line.get(f"{DIVERSITY}_std"),
                        yerr=line.get(f"{QUALITY}_std"), color=colors[decoder], marker="o", markersize=3.5,
                        linewidth=1.2, capsize=1.5, label=_decoder_label(decoder))
            out = line[~eligible(line)]
            ax.plot(out[DIVERSITY], out[QUALITY], "o", markersize=4.5, markerfacecolor="white",
                    markeredgecolor=colors[decoder], linestyle="none", zorder=3)
        for (_, ref), ranked in zip(references.iterrows(), eligible(references), strict=True):
            ax.plot(ref[DIVERSITY], ref[QUALITY], REFERENCE_MARKERS.get(ref["kind"], "x"), color="black",
                    markersize=9 if ref["kind"] == "source" else 6, label=f"{ref['kind']} (T = 1)",
                    fillstyle="full" if ranked else "none")
        ax.set_title(model)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    for ax in axes.flat[:len(models)]:
        ax.set_xlabel("diversity: entropy of generated words (nats)")
        ax.set_ylabel(f"quality: mean ln q over possible words\n(open: > {IMPOSSIBLE_TOLERANCE:.0%} impossible)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    right = 0.84 if columns > 1 else 0.7
    fig.legend(unique.values(), unique.keys(), loc="center left", bbox_to_anchor=(right, 0.5), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, right, 1))
    return fig


def diversity_figure(cells: pd.DataFrame, metric: str, title: str):
    """One panel per decoder with a parameter: ``metric`` (mean and seed spread) against the parameter, one line
    per model; the references' value as dotted lines."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    decoded = cells[~cells["kind"].isin(REFERENCE_KINDS) & cells["value"].notna()]
    decoders = list(dict.fromkeys(decoded["decoder"]))
    models = list(dict.fromkeys(decoded["model"]))
    colors = dict(zip(models, sns.color_palette("deep", len(models)), strict=True))
    columns = 4
    rows = math.ceil(len(decoders) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False, sharey=True)
    references = cells[cells["kind"].isin(REFERENCE_KINDS)]
    for ax, decoder in zip(axes.flat, decoders, strict=False):
        for model in models:
            line = decoded[(decoded["decoder"] == decoder) & (decoded["model"] == model)].sort_values("value")
            ax.errorbar(line["value"], line[metric], yerr=line.get(f"{metric}_std"), color=colors[model],
                        marker="o", markersize=3.5, capsize=1.5, label=model)
        for _, ref in references.iterrows():
            ax.axhline(ref[metric], color="grey", linestyle=":", linewidth=1)
        if decoder in LOG_PARAMETERS:
            ax.set_xscale("log")
        ax.set_xlabel(DECODERS[decoder].parameter or decoder)
        ax.set_title(decoder)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(decoders):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.86, 0.5), fontsize=8,
               title="model (dotted: references)")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def hyperfit_figure(history: pd.DataFrame):
    """Per setting: the training cross-entropy on the fitted headlines, the validation cross-entropy and the
    validation predictions' mean entropy, epoch by epoch of hyperfitting."""
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(history["setting"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.6), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        own = history[history["setting"] == setting]
        for column, label in (("fit_cross_entropy", "cross-entropy on the fitted headlines"),
                              ("val_cross_entropy", "validation cross-entropy"),
                              ("val_entropy", "validation mean entropy H(p)")):
            ax.plot(own["epoch"], own[column], marker=".", label=label)
        ax.set_title(setting)
        ax.set_xlabel("hyperfitting epoch")
        ax.set_ylabel("nats")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
