"""Figures of a corpus: the histogram of headline lengths and the Zipf plot of word frequencies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .corpus import Corpus
from .stats import headline_lengths, word_counts, zipf_exponent

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def headline_length_figure(corpus: Corpus) -> Figure:
    """Histogram of the corpus's headline lengths in words (after cleaning)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    lengths = headline_lengths(corpus).tolist()
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    sns.histplot(x=lengths, discrete=True, ax=ax, color="#4c72b0")
    ax.set_xlabel("headline length (words, after cleaning)")
    ax.set_ylabel("headlines")
    fig.suptitle(f"{corpus.name}: {len(lengths):,} headlines, longest {max(lengths)} words")
    return fig


def zipf_figure(corpus: Corpus) -> Figure:
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
