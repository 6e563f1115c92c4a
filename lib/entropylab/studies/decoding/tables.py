"""The decoding study's tables: cells averaged over sampling seeds, the quality-diversity frontier, the hyperfitting
comparison and the example continuations, from the results CSVs of :func:`.study.collect`.

**The frontier** (synthetic corpus, per model): each decoder setting ``(decoder, value)`` is a point of mean
diversity ``D`` (``word_entropy``, nats) and mean quality ``Q`` (``true_loglik``, the source's mean log-probability
of the generated words) over the sampling seeds. A point is **on the frontier** when no other setting of the same
model has ``Q' >= Q`` and ``D' >= D`` with one of them strictly larger (Pareto dominance of the means). Each
decoder's **frontier share** is the share of its settings on the frontier; a decoder whose points are all
dominated never gives the best quality at its diversity. Differences within one seed spread (``std`` columns) are
within noise: the tables show the spreads beside the means.

**Matched diversity** (synthetic corpus, per model): decoders are compared at one diversity level fixed before any
comparison, ``D* =`` the median of the mean diversities of all of that model's sampled settings. Each decoder's
quality at ``D*`` is the linear interpolation between its two settings whose diversities bracket ``D*`` (none when
its range does not reach ``D*``); the decoders are ranked by it. Two decoders within ``2 s`` of each other, ``s``
the largest seed standard deviation of quality among the bracketing settings, are a **tie**.

**Hyperfitting** (per setting): the greedy continuations of the hyperfitted model and of the model it started
from are compared prefix by prefix on ``repetition`` (the share of a continuation's words that repeat an earlier
one); the verdict is **less repetitive** when the 95 % t-interval of the mean paired difference (hyperfitted minus
original, over the prefixes) lies entirely below 0, **more repetitive** when above, **no difference** otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...analysis.stats import paired_difference
from ...decoding import deterministic_decoders
from ...experiments.results import results_path
from ...training import store
from .spec import RERUN

#: The metrics summarised per decoder setting (mean and standard deviation over the sampling seeds).
METRICS = ("distinct_1", "distinct_2", "repeat", "repetition", "zipf", "word_entropy", "js_heldout",
           "surprisal_mean", "surprisal_std", "true_loglik", "impossible")
QUALITY, DIVERSITY = "true_loglik", "word_entropy"
REFERENCE_KINDS = ("unigram", "bigram", "source")


@dataclass
class StudyResults:
    """The collected results of one decoding experiment."""

    generation: pd.DataFrame
    examples: pd.DataFrame
    hyperfit: pd.DataFrame


def load(experiment: str = "decoding", output_root: str | os.PathLike | None = None) -> StudyResults:
    """The three results CSVs of the study; a clear error naming the command when the grid has not run."""
    path = results_path(f"{experiment}-generation", output_root)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the study first: python -m entropylab reproduce "
                                f"--study decoding")

    def optional(name: str) -> pd.DataFrame:
        other = results_path(f"{experiment}-{name}", output_root)
        return store.read_csv(other, fix=RERUN) if other.is_file() else pd.DataFrame()

    return StudyResults(store.read_csv(path, fix=RERUN), optional("examples"), optional("hyperfit"))


def settings_of(generation: pd.DataFrame) -> list[str]:
    """The settings in report order: NYT first, then the synthetic corpus."""
    return sorted(generation["setting"].unique(), key=lambda s: (not s.startswith("nyt"), s))


def cell_table(generation: pd.DataFrame, setting: str) -> pd.DataFrame:
    """One row per ``(model, decoder, value)`` of ``setting``: each metric's mean and ``_std`` over seeds."""
    frame = generation[generation["setting"] == setting].copy()
    frame["value"] = frame["value"].fillna(-1.0)  # greedy has no value; kept as a group
    metrics = [m for m in METRICS if m in frame.columns and frame[m].notna().any()]
    grouped = frame.groupby(["model", "kind", "decoder", "value"], sort=False)[metrics]
    table = grouped.mean().join(grouped.std(ddof=1).add_suffix("_std")).join(
        frame.groupby(["model", "kind", "decoder", "value"], sort=False).size().rename("seeds"))
    table = table.reset_index()
    table["value"] = table["value"].where(table["value"] >= 0)
    return table


def frontier(table: pd.DataFrame, quality: str = QUALITY, diversity: str = DIVERSITY) -> pd.DataFrame:
    """``table`` (one model's decoder settings) with ``on_frontier``: not Pareto-dominated by another row on
    (``quality``, ``diversity``), both higher is better (module docstring)."""
    q, d = table[quality].to_numpy(), table[diversity].to_numpy()
    dominated = np.zeros(len(table), dtype=bool)
    for i in range(len(table)):
        better_or_equal = (q >= q[i]) & (d >= d[i])
        strictly = (q > q[i]) | (d > d[i])
        dominated[i] = bool(np.any(better_or_equal & strictly))
    return table.assign(on_frontier=~dominated)


def frontier_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per model and decoder: its settings, how many are on the model's frontier and the share (synthetic)."""
    rows = []
    decoded = cells[~cells["kind"].isin(REFERENCE_KINDS)]
    for model, table in decoded.groupby("model", sort=False):
        marked = frontier(table.reset_index(drop=True))
        for decoder, group in marked.groupby("decoder", sort=False):
            rows.append({"model": model, "decoder": decoder, "settings": len(group),
                         "on_frontier": int(group["on_frontier"].sum()),
                         "frontier_share": float(group["on_frontier"].mean()),
                         "best_quality": float(group[QUALITY].max()), "max_diversity": float(group[DIVERSITY].max())})
    return pd.DataFrame(rows)


def matched_quality(cells: pd.DataFrame) -> pd.DataFrame:
    """Per model and sampling decoder: its quality at the model's matched diversity ``D*`` (module docstring),
    the gap to the model's best decoder there, and whether that gap is a tie."""
    rows = []
    sampled = cells[~cells["kind"].isin(REFERENCE_KINDS) & ~cells["decoder"].isin(deterministic_decoders())]
    for model, own in sampled.groupby("model", sort=False):
        level = float(own[DIVERSITY].median())
        for decoder, group in own.groupby("decoder", sort=False):
            group = group.sort_values(DIVERSITY)
            d, q = group[DIVERSITY].to_numpy(), group[QUALITY].to_numpy()
            spread = group[f"{QUALITY}_std"].to_numpy() if f"{QUALITY}_std" in group else np.zeros(len(group))
            quality, noise = float("nan"), float("nan")
            if len(d) and d[0] <= level <= d[-1]:
                upper = int(np.searchsorted(d, level, side="left"))
                lower = max(upper - 1, 0) if d[upper] > level else upper
                weight = 0.0 if d[upper] == d[lower] else (level - d[lower]) / (d[upper] - d[lower])
                quality = float(q[lower] + weight * (q[upper] - q[lower]))
                noise = float(np.nanmax(spread[[lower, upper]]))
            rows.append({"model": model, "diversity_level": level, "decoder": decoder,
                         "quality_at_level": quality, "seed_sd": noise})
    columns = ["model", "diversity_level", "decoder", "quality_at_level", "seed_sd", "gap_to_best", "verdict"]
    table = pd.DataFrame(rows, columns=columns[:5])
    reached = table.dropna(subset=["quality_at_level"])
    if reached.empty:
        return table.assign(gap_to_best=np.nan, verdict="does not reach the level")[columns]
    best_rows = reached.loc[reached.groupby("model")["quality_at_level"].idxmax()].set_index("model")
    table["gap_to_best"] = table["quality_at_level"] - table["model"].map(best_rows["quality_at_level"])
    noise = np.fmax(table["seed_sd"].fillna(0.0), table["model"].map(best_rows["seed_sd"]).fillna(0.0))
    table["verdict"] = np.where(table["quality_at_level"].isna(), "does not reach the level",
                                np.where(table["gap_to_best"] >= -2 * noise, "best or tie", "worse"))
    return table.sort_values(["model", "quality_at_level"], ascending=[True, False], na_position="last")[columns]


def hyperfit_comparison(experiment: str, setting: str, output_root: str | os.PathLike | None = None,
                        original: str = "cross-entropy", hyperfitted: str = "hyperfitted") -> dict[str, float | str]:
    """The paired repetition test of the module docstring from the saved greedy words of ``original`` (the model
    the hyperfitted one started from) and ``hyperfitted``: per prefix ``i`` the difference
    ``d_i = repetition(hyperfitted_i) - repetition(original_i)``, its mean and 95 % t-interval
    ``mean(d) ± t_{0.975, n-1} sd(d) / sqrt(n)`` (:func:`entropylab.analysis.stats.paired_difference`).

    Greedy words of another shape (another number of prefixes or words: the two were not decoded on the same
    prefixes) are not paired: the row's verdict then says ``not comparable`` and why, its difference and interval
    are NaN and ``prefixes`` is 0."""
    from ...metrics.generation import repetition
    from .study import study_dir

    folder = study_dir(experiment, output_root) / "cells" / setting.replace("/", "_")
    paths = {name: folder / f"{name}-greedy.npy" for name in (original, hyperfitted)}
    if not all(p.is_file() for p in paths.values()):
        return {"setting": setting, "original": original, "verdict": "not run"}
    words = {name: np.load(p) for name, p in paths.items()}
    per_prefix = {name: np.array([repetition(row[None, :]) for row in w]) for name, w in words.items()}
    if words[original].shape != words[hyperfitted].shape:
        return {"setting": setting, "original": original, "original_repetition": float(per_prefix[original].mean()),
                "hyperfitted_repetition": float(per_prefix[hyperfitted].mean()), "difference": float("nan"),
                "low": float("nan"), "high": float("nan"), "prefixes": 0,
                "verdict": f"not comparable: different prefixes ({original} {words[original].shape[0]} x "
                           f"{words[original].shape[1]} words, {hyperfitted} {words[hyperfitted].shape[0]} x "
                           f"{words[hyperfitted].shape[1]})"}
    mean, low, high, n = paired_difference(per_prefix[hyperfitted], per_prefix[original])
    verdict = "less repetitive" if high < 0 else "more repetitive" if low > 0 else "no difference"
    return {"setting": setting, "original": original, "original_repetition": float(per_prefix[original].mean()),
            "hyperfitted_repetition": float(per_prefix[hyperfitted].mean()), "difference": mean,
            "low": low, "high": high, "prefixes": n, "verdict": verdict}


def example_table(examples: pd.DataFrame, setting: str, model: str = "cross-entropy") -> pd.DataFrame:
    """Seed texts as rows, one column per decoder (at its middle value) for ``model`` in ``setting``."""
    frame = examples[(examples["setting"] == setting) & (examples["model"] == model)].copy()
    if frame.empty:
        return frame
    frame["decoder"] = [d if pd.isna(v) else f"{d} {v:g}" for d, v in zip(frame["decoder"], frame["value"],
                                                                             strict=True)]
    return frame.pivot(index="seed_text", columns="decoder", values="continuation").reindex(
        columns=list(dict.fromkeys(frame["decoder"])), index=list(dict.fromkeys(frame["seed_text"])))
