"""The decoding study's tables: cells averaged over sampling seeds, the quality-diversity frontier, the hyperfitting
comparison and the example continuations, from the results CSVs of :func:`.study.collect`.

**Sides: D* is chosen on dev, qualities read on test.** A study whose runs have a test side decodes every cell on
dev prefixes and on test prefixes (the cells' ``side`` column, :mod:`.grid`). Every choice is made on **dev**: the
matched diversity level ``D*`` of a model (below) is the median of its sampled settings' mean diversities on the dev
cells. Everything reported (the cell tables, the frontier, the quality, impossible share and standard error at
``D*``, the verdicts, the hyperfitting comparison, the figures) is read on the **test** cells, once
(:func:`reported_side`, :func:`cell_table`). Results of runs without a test side (one side, ``validation``), and
results from before sides (no ``side`` column), are read as they were: the level and the qualities from the same
cells.

**Quality** (synthetic corpus, where the source's law ``q`` is known) is two numbers per decoder setting, each a
mean over its sampling seeds (:mod:`entropylab.metrics.generation`): ``impossible``, the share of the generated
words the source cannot emit (``q = 0``), and ``possible_loglik`` (:data:`QUALITY`), the mean ``ln q`` over the
words it can emit. The tables rank on ``possible_loglik`` and show ``impossible`` beside it. (``true_loglik``, the
mean ``ln max(q, 1e-10)`` over all words, is kept in the cell tables but ranks nothing: each impossible word cost it
``ln 1e-10 = -23``, so its floor term was a median 52 % of its value and the ranking followed the floor.)

**The impossible rule.** A setting is **eligible** to be ranked (on the frontier, at the matched level) only when
its mean share of impossible words is at most ``IMPOSSIBLE_TOLERANCE = 0.10``: one word in ten, one per
continuation of the study's ten words. An ineligible setting is listed, with its quality and impossible share, under
the verdict ``emits impossible words``, never ranked: ``possible_loglik`` leaves its impossible words out, so a
ranking on it alone would reward a setting for the words it gets wrong. Why 0.10 and not a stricter figure: every
model trained on this corpus emits some impossible words under every decoder (the hyperfitted model 2 % or more even
greedily, the cross-entropy model 4.5-7 % at its matched diversity), so with 0.01 no decoder of any model would be
ranked at the matched level; at 0.10 the truncation samplers of the well-trained models are ranked, while the models
whose text is mostly impossible (the MSE control 38-45 % and the KL penalty 93 % at their matched levels, the bigram
count model 30 % and the unigram 73 % at T = 1) and the hot temperatures (T = 1.3: 22 % and more) are not. Pure
sampling (T = 1) of the cross-entropy model sits at the line (10.4 % in the committed study): which side it falls is
within its seed spread. Why a fixed tolerance and not the model's own pure sampling (T = 1) as the line: that needs
a T = 1 cell in every grid and lets every decoder of a model that is wrong half the time be ranked. Below the
tolerance the impossible share still differs between decoders (the column beside quality shows by how much) but
does not decide the ranking.

**The frontier** (synthetic corpus, per model): each eligible decoder setting ``(decoder, value)`` is a point of
mean diversity ``D`` (``word_entropy``, nats) and mean quality ``Q`` (``possible_loglik``). A point is **on the
frontier** when no other eligible setting of the same model has ``Q' >= Q`` and ``D' >= D`` with one of them strictly
larger (Pareto dominance of the means); ineligible settings neither lie on it nor dominate. Each decoder's **frontier
share** is the share of its settings (eligible or not) on the frontier; a decoder whose points are all dominated
never gives the best quality at its diversity. The references sampled at T = 1 (the source, the count models) are
listed under the models with their quality and impossible share, not ranked.

**Matched diversity** (synthetic corpus, per model): decoders are compared at one diversity level fixed before any
comparison, ``D* =`` the median of the mean diversities of all of that model's sampled settings (eligible or not)
on the dev cells (with a test side; else on the same cells).
Each decoder's quality, impossible share and standard error at ``D*`` are the linear interpolation between its two
settings whose diversities bracket ``D*``, ``x* = (1 - w) x_lo + w x_hi``, ``w = (D* - D_lo) / (D_hi - D_lo)`` (none
when its range does not reach ``D*``). A decoder whose ``impossible*`` exceeds the tolerance is listed as ``emits
impossible words``; the others are ranked by ``Q*``. The standard error of a setting's quality is ``se = sd /
sqrt(n)``, ``sd`` its standard deviation over its ``n`` sampling seeds; at ``D*`` it is ``se* = (1 - w) se_lo + w
se_hi``: the two settings share their seeds and prefixes, so their errors are correlated, and this linear
propagation is the interpolated mean's exact standard error when they are perfectly correlated and an upper bound
for any correlation (never above the larger of the two). **The tie rule**: with ``Q*_best`` the best eligible
decoder of the model, a decoder ``a`` is **best or tie** when ``Q*_a - Q*_best >= -2 sqrt(se*_a^2 + se*_best^2)``,
**worse** otherwise; a gap whose standard error is unknown (a setting of one sampling seed: the study's file refuses
fewer than two) is ``no standard error (one seed)``, not a verdict.

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
           "surprisal_mean", "surprisal_std", "true_loglik", "possible_loglik", "impossible")
#: The two axes of the frontier and the matched-diversity ranking, and the share of impossible words shown beside.
QUALITY, DIVERSITY, IMPOSSIBLE = "possible_loglik", "word_entropy", "impossible"
#: The most impossible words a setting may emit (mean share over its seeds) to be ranked (module docstring).
IMPOSSIBLE_TOLERANCE = 0.10
#: The verdict of a setting (or a decoder at the matched level) above :data:`IMPOSSIBLE_TOLERANCE`.
EMITS_IMPOSSIBLE = "emits impossible words"
#: The matched-diversity verdict of a gap that has no standard error (a setting of one sampling seed).
ONE_SEED = "no standard error (one seed)"
REFERENCE_KINDS = ("unigram", "bigram", "kneser_ney", "source")
#: The sides of the cells (:mod:`.grid`): choices on dev, test reported; validation for runs without a test side.
DEV, TEST, VALIDATION = "dev", "test", "validation"


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


def reported_side(generation: pd.DataFrame) -> str | None:
    """The side the tables report: test where the cells have one, else validation; ``None`` for cells from before
    sides (no ``side`` column: every row is reported)."""
    if "side" not in generation.columns:
        return None
    return TEST if (generation["side"] == TEST).any() else VALIDATION


def has_dev(generation: pd.DataFrame) -> bool:
    """Whether the cells hold a dev side (where the matched level is chosen)."""
    return "side" in generation.columns and bool((generation["side"] == DEV).any())


def cell_table(generation: pd.DataFrame, setting: str, side: str | None = None) -> pd.DataFrame:
    """One row per ``(model, decoder, value)`` of ``setting`` on one side: each metric's mean and ``_std`` over
    seeds, and ``seeds``, their number. ``side`` ``None`` is the reported side (:func:`reported_side`: test where
    there is one); cells without a ``side`` column are read whole, as before sides."""
    frame = generation[generation["setting"] == setting]
    if "side" in frame.columns:
        frame = frame[frame["side"] == (reported_side(generation) if side is None else side)]
    frame = frame.copy()
    frame["value"] = frame["value"].fillna(-1.0)  # greedy has no value; kept as a group
    metrics = [m for m in METRICS if m in frame.columns and frame[m].notna().any()]
    grouped = frame.groupby(["model", "kind", "decoder", "value"], sort=False)[metrics]
    table = grouped.mean().join(grouped.std(ddof=1).add_suffix("_std")).join(
        frame.groupby(["model", "kind", "decoder", "value"], sort=False).size().rename("seeds"))
    table = table.reset_index()
    table["value"] = table["value"].where(table["value"] >= 0)
    return table


def standard_error(table: pd.DataFrame, metric: str = QUALITY) -> pd.Series:
    """``se = sd / sqrt(n)`` of each row's mean ``metric``: ``sd`` its standard deviation over the row's ``n =
    seeds`` sampling seeds (NaN for one seed)."""
    spread = table[f"{metric}_std"] if f"{metric}_std" in table else pd.Series(np.nan, index=table.index)
    return spread / np.sqrt(table["seeds"].astype(float))


def eligible(table: pd.DataFrame, tolerance: float = IMPOSSIBLE_TOLERANCE, quality: str = QUALITY) -> pd.Series:
    """Whether each setting may be ranked: its mean share of impossible words is at most ``tolerance`` (and it has
    a ``quality``: some word the source can emit). Without an ``impossible`` column every setting with a quality
    is."""
    has_quality = table[quality].notna()
    if IMPOSSIBLE not in table:
        return has_quality
    return has_quality & (table[IMPOSSIBLE] <= tolerance)


def frontier(table: pd.DataFrame, quality: str = QUALITY, diversity: str = DIVERSITY,
             tolerance: float = IMPOSSIBLE_TOLERANCE) -> pd.DataFrame:
    """``table`` (one model's decoder settings) with ``eligible`` (:func:`eligible`) and ``on_frontier``: an eligible
    setting not Pareto-dominated by another eligible one on (``quality``, ``diversity``), both higher is better
    (module docstring); an ineligible setting is never on the frontier and dominates none."""
    ok = eligible(table, tolerance, quality).to_numpy()
    q, d = table[quality].to_numpy(), table[diversity].to_numpy()
    on = np.zeros(len(table), dtype=bool)
    for i in np.flatnonzero(ok):
        better_or_equal = ok & (q >= q[i]) & (d >= d[i])
        strictly = (q > q[i]) | (d > d[i])
        on[i] = not bool(np.any(better_or_equal & strictly))
    return table.assign(eligible=ok, on_frontier=on)


#: The columns of :func:`frontier_table`.
FRONTIER_COLUMNS = ["model", "decoder", "settings", "eligible", "on_frontier", "frontier_share", "best_quality",
                    "impossible", "max_diversity", "verdict"]


def frontier_table(cells: pd.DataFrame, tolerance: float = IMPOSSIBLE_TOLERANCE) -> pd.DataFrame:
    """Per model and decoder (synthetic corpus): its settings, how many are eligible (at most ``tolerance``
    impossible words), how many are on the model's frontier and their share of its settings, its best quality
    with that setting's impossible share beside it, and a verdict: ``on the frontier``, ``dominated`` or
    :data:`EMITS_IMPOSSIBLE` (no eligible setting: its quality and impossible share are then those of its setting
    with the fewest impossible words, listed, not ranked). The references sampled at T = 1 follow, one row each,
    never ranked against the models (verdict ``reference``, or :data:`EMITS_IMPOSSIBLE`)."""
    rows = []
    decoded = cells[~cells["kind"].isin(REFERENCE_KINDS)]
    for model, table in decoded.groupby("model", sort=False):
        marked = frontier(table.reset_index(drop=True), tolerance=tolerance)
        for decoder, group in marked.groupby("decoder", sort=False):
            rows.append({"model": model, "decoder": decoder, "settings": len(group),
                         **_best_setting(group), "on_frontier": int(group["on_frontier"].sum()),
                         "frontier_share": float(group["on_frontier"].mean()),
                         "max_diversity": float(group[DIVERSITY].max())})
            rows[-1]["verdict"] = EMITS_IMPOSSIBLE if not rows[-1]["eligible"] else \
                "on the frontier" if rows[-1]["on_frontier"] else "dominated"
    references = cells[cells["kind"].isin(REFERENCE_KINDS)]
    for model, group in references.groupby("model", sort=False):
        group = group.assign(eligible=eligible(group, tolerance))
        best = _best_setting(group)
        rows.append({"model": model, "decoder": ", ".join(dict.fromkeys(group["decoder"])) + " (reference)",
                     "settings": len(group), **best, "on_frontier": np.nan, "frontier_share": np.nan,
                     "max_diversity": float(group[DIVERSITY].max()),
                     "verdict": "reference" if best["eligible"] else EMITS_IMPOSSIBLE})
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)


def _best_setting(group: pd.DataFrame) -> dict[str, float | int]:
    """``eligible`` (how many of ``group``'s settings are), ``best_quality`` and ``impossible``: the best quality
    among its eligible settings and that setting's impossible share, or, with none eligible, those of its setting
    with the fewest impossible words."""
    ok = group[group["eligible"]]
    if len(ok):
        best = ok.loc[ok[QUALITY].idxmax()]
    elif IMPOSSIBLE in group and group[IMPOSSIBLE].notna().any():
        best = group.loc[group[IMPOSSIBLE].idxmin()]
    else:
        best = group.iloc[0]
    return {"eligible": int(group["eligible"].sum()), "best_quality": float(best[QUALITY]),
            "impossible": float(best[IMPOSSIBLE]) if IMPOSSIBLE in best else np.nan}


#: The columns of :func:`matched_quality`.
MATCHED_COLUMNS = ["model", "diversity_level", "decoder", "quality_at_level", "impossible_at_level", "seed_se",
                   "gap_to_best", "verdict"]


def _sampled(cells: pd.DataFrame) -> pd.DataFrame:
    """The settings of ``cells`` that sample: no reference, no deterministic decoder."""
    return cells[~cells["kind"].isin(REFERENCE_KINDS) & ~cells["decoder"].isin(deterministic_decoders())]


def matched_quality(cells: pd.DataFrame, dev_cells: pd.DataFrame | None = None,
                    tolerance: float = IMPOSSIBLE_TOLERANCE) -> pd.DataFrame:
    """Per model and sampling decoder: its quality at the model's matched diversity ``D*``, its impossible share
    and the quality's standard error there, the gap to the model's best eligible decoder and the verdict (module
    docstring: interpolation, the impossible rule, the tie rule).

    ``D*`` is chosen on ``dev_cells`` (the dev side's :func:`cell_table`): the median of the mean diversities of
    the model's sampled settings there; the qualities, impossible shares and standard errors are read on ``cells``
    (the test side's). ``dev_cells`` ``None``: the level from ``cells`` themselves (a study without a test side). A
    model without sampled dev settings has no level (NaN): none of its decoders reaches it."""
    rows = []
    sampled = _sampled(cells)
    levels = None if dev_cells is None else _sampled(dev_cells).groupby("model", sort=False)[DIVERSITY].median()
    for model, own in sampled.groupby("model", sort=False):
        level = float(own[DIVERSITY].median()) if levels is None else float(levels.get(model, np.nan))
        for decoder, group in own.groupby("decoder", sort=False):
            group = group.sort_values(DIVERSITY)
            d, q = group[DIVERSITY].to_numpy(), group[QUALITY].to_numpy()
            se = standard_error(group).to_numpy()
            impossible = group[IMPOSSIBLE].to_numpy() if IMPOSSIBLE in group else np.zeros(len(group))
            row = {"model": model, "diversity_level": level, "decoder": decoder, "reached": False,
                   "quality_at_level": np.nan, "impossible_at_level": np.nan, "seed_se": np.nan}
            if len(d) and d[0] <= level <= d[-1]:
                upper = int(np.searchsorted(d, level, side="left"))
                lower = max(upper - 1, 0) if d[upper] > level else upper
                weight = 0.0 if d[upper] == d[lower] else (level - d[lower]) / (d[upper] - d[lower])

                def at_level(values: np.ndarray, lower: int = lower, upper: int = upper, weight: float = weight) \
                        -> float:
                    return float((1 - weight) * values[lower] + weight * values[upper])

                row.update(reached=True, quality_at_level=at_level(q), impossible_at_level=at_level(impossible),
                           seed_se=at_level(se))
            rows.append(row)
    table = pd.DataFrame(rows, columns=[*MATCHED_COLUMNS[:6], "reached"])
    if table.empty:
        return table.assign(gap_to_best=np.nan, verdict="")[MATCHED_COLUMNS]
    ranked = table["reached"] & table["quality_at_level"].notna() & \
        ~(table["impossible_at_level"] > tolerance)
    best = table[ranked].loc[table[ranked].groupby("model")["quality_at_level"].idxmax()].set_index("model") \
        if ranked.any() else pd.DataFrame(columns=table.columns).set_index("model")
    table["gap_to_best"] = (table["quality_at_level"] - table["model"].map(best["quality_at_level"])).where(ranked)
    noise = np.sqrt(table["seed_se"] ** 2 + table["model"].map(best["seed_se"]).astype(float) ** 2)
    is_best = ranked & (table["gap_to_best"] == 0)
    table["verdict"] = np.select(
        [~table["reached"], ~ranked, is_best, noise.isna(), table["gap_to_best"] >= -2 * noise],
        ["does not reach the level", EMITS_IMPOSSIBLE, "best or tie", ONE_SEED, "best or tie"], "worse")
    table["order"] = np.select([ranked, table["reached"]], [0, 1], 2)
    return table.sort_values(["model", "order", "quality_at_level"], ascending=[True, True, False],
                             na_position="last")[MATCHED_COLUMNS]


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
