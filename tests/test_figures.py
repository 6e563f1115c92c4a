"""Figures: the seed bands, the paper's figures and ours, when they are skipped, how they are saved, the corpus's."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from entropylab.analysis import figures, stats
from entropylab.data import figures as corpus_figures
from entropylab.data import stats as stats_data
from entropylab.studies.paper import figures as paper_figures

METRICS = ("paper_entropy", "paper_kl", "loss", "val_loss", "val_perplexity")


def results_frame(seeds=(0, 1), epochs=3) -> pd.DataFrame:
    """The paper's grid in miniature, with seeded noise; KL losses scale with the weight (spanning decades)."""
    rng = np.random.default_rng(0)
    grid = [("mse", 0.0)] + [("entropy_regularized", w) for w in (1e-7, 1e-3)] + \
           [("kl_regularized", w) for w in (0.1, 10.0, 100.0)]
    rows = []
    for objective, weight in grid:
        for seed in seeds:
            for epoch in range(1, epochs + 1):
                scale = max(weight, 1e-3) if objective == "kl_regularized" else 1e-4
                rows.append({"objective": objective, "weight": weight, "seed": seed, "epoch": epoch,
                             "paper_entropy": 10 - epoch + rng.normal(0, 0.1),
                             "paper_kl": 5 - 0.5 * epoch + rng.normal(0, 0.1),
                             "loss": scale * (1 - 0.1 * epoch), "val_loss": scale * (1.1 - 0.1 * epoch),
                             "val_perplexity": 1000 / epoch + rng.normal(0, 5),
                             "ref_unigram_perplexity": 700.0, "ref_bigram_perplexity": 550.0})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_seed_band_is_the_t_interval_of_the_mean():
    low, high = stats.seed_band([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert stats.seed_band([5.0]) == (5.0, 5.0)
    low, high = stats.log_seed_band([1.0, 100.0])
    assert 0 < low < 10 < high  # positive, around the geometric mean 10
    assert stats.geometric_mean([1.0, 100.0]) == pytest.approx(10.0)
    assert stats.t_quantile_975(100) == 1.96
    with pytest.raises(ValueError, match="two values"):
        stats.t_quantile_975(0)


def test_log_scale_only_when_positive_values_span_two_decades():
    assert figures.use_log_scale([0.01, 1.0, 5.0])
    assert not figures.use_log_scale([1.0, 50.0])
    assert not figures.use_log_scale([-1.0, 1000.0])
    assert not figures.use_log_scale([])


def test_paper_figures_have_the_papers_panels():
    results = results_frame()
    drawn, skipped = paper_figures.paper_figures(results)
    assert list(drawn) == [f"figure{n}" for n in range(1, 7)] and not skipped
    fig1 = drawn["figure1"]
    assert [ax.get_ylabel() for ax in fig1.axes] == [figures.METRIC_LABELS[m] for m in paper_figures.PAPER_METRICS]
    legend_labels = [t.get_text() for t in fig1.legends[0].get_texts()]
    assert legend_labels == ["control (MSE)", "entropy regularized, w=1e-07"]
    fig2_labels = [t.get_text() for t in drawn["figure2"].legends[0].get_texts()]
    assert fig2_labels == ["1e-07", "0.001"]
    # the KL losses span 0.1 .. 100: log scale, and the label says so
    ax5 = drawn["figure5"].axes[0]
    assert ax5.get_yscale() == "log" and "(log scale)" in ax5.get_ylabel()
    assert drawn["figure3"].axes[0].get_yscale() == "linear"
    assert "95% t-band" in ax5.get_title()  # two seeds: a band


def test_one_seed_draws_no_band():
    fig = paper_figures.kl_figure(results_frame(seeds=(0,)), "paper_kl")
    ax = fig.axes[0]
    assert ax.get_title() == "" and not ax.collections  # seaborn draws bands as PolyCollections


def test_missing_runs_are_skipped_with_the_fix():
    results = results_frame()
    only_kl = results[results["objective"] == "kl_regularized"]
    with pytest.raises(figures.NoRunsError, match="control"):
        paper_figures.figure1(only_kl)
    drawn, skipped = paper_figures.paper_figures(only_kl)
    assert set(skipped) == {"figure1", "figure2"} and "sweep" in skipped["figure2"]
    assert set(drawn) == {"figure3", "figure4", "figure5", "figure6"}
    with pytest.raises(ValueError, match="lacks column"):
        paper_figures.figure1(results.drop(columns="paper_kl"))
    with pytest.raises(ValueError, match="unknown metric"):
        paper_figures.kl_figure(results, "val_accuracy")


def test_perplexity_figure_draws_each_reference():
    results = results_frame()
    fig = figures.perplexity_figure(results)
    ax = fig.axes[0]
    flat = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2]
    assert sorted(line.get_ydata()[0] for line in flat) == [550.0, 700.0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "mse" and labels[5] == "kl_regularized weight=100"  # the parameter named for what it is
    assert labels[6:] == ["unigram (add-one) reference: 700", "bigram reference: 550"]
    assert ax.get_yscale() == "log" and "(log scale)" in ax.get_ylabel()  # perplexity: always log
    spread = figures.seed_spread_figure(results)
    assert spread.axes[0].get_yticklabels()[0].get_text() == "mse"
    with pytest.raises(figures.NoRunsError):
        figures.perplexity_figure(results.iloc[0:0])


def test_save_figure_writes_a_png_atomically(tmp_path):
    fig = paper_figures.kl_figure(results_frame(), "loss")
    path = figures.save_figure(fig, tmp_path / "figures" / "figure5.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["figure5.png"]
    with pytest.raises(ValueError, match=r"\.png"):
        figures.save_figure(fig, tmp_path / "figure5.pdf")


def test_zipf_exponent_recovers_a_power_law(small_synthetic):
    counts = np.round(1e6 * np.arange(1, 2001, dtype=float) ** -1.2)
    assert stats_data.zipf_exponent(counts) == pytest.approx(1.2, abs=0.01)
    observed = stats_data.word_counts(small_synthetic)
    assert observed.sum() == sum(len(h.split()) for h in small_synthetic.headlines)
    assert (np.diff(observed) <= 0).all()
    fig = corpus_figures.zipf_figure(small_synthetic)
    assert fig.axes[0].get_xscale() == "log"
    fig = corpus_figures.headline_length_figure(small_synthetic)
    assert "headline length" in fig.axes[0].get_xlabel()
