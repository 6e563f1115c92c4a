"""The report: collected results, the prediction tables (ours beside the paper's) and the claims table.

* :func:`load_results` gives the tidy results frame (one row per run and epoch) of an experiment, collected
  from its run folders (or read from ``<outputs>/results/<experiment>.csv``). The config's loss name is the
  column ``objective``; ``loss`` is the training loss of the history. Each run's n-gram references (its
  ``metrics.json``) are the columns ``ref_unigram_perplexity``, ``ref_bigram_perplexity``, ...
* :func:`prediction_table` continues the paper's six seed texts greedily (10 words, title-cased) and reports
  our mean per-word probability ``(1/10) Σ_k p(w_k | seed, w_1..w_{k-1})`` of the chosen words under the
  normalised distribution ``p`` (``c / Σ_j c_j`` with ``c = clip(o, 1e-7, 1)`` for the linear head).
* :data:`PAPER_PREDICTIONS` holds the words of the paper's §4.1 and §4.4 tables, **as the paper reports them**.
* :func:`claims_table` states each claim of the paper's §4.1-§5 as a short sentence, computes a check from the
  results where one can be computed and gives a verdict (agree / disagree / cannot tell) by a stated rule.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import paths, runs
from .generate import PAPER_SEED_TEXTS

CONTROL, ENTROPY, KL = "mse", "entropy_regularized", "kl_regularized"
AGREE, DISAGREE, CANNOT_TELL = "agree", "disagree", "cannot tell"
#: The runs of the paper's §4.4 tables: key -> (objective, weight).
PREDICTION_RUNS: dict[str, tuple[str, float]] = {
    "control": (CONTROL, 0.0),
    "kl_regularized_w10": (KL, 10.0),
    "kl_regularized_w100": (KL, 100.0),
}
PREDICTION_TITLES = {
    "control": "§4.1: the control model (MSE)",
    "kl_regularized_w10": "§4.4: KL regularization, weight 10",
    "kl_regularized_w100": "§4.4: KL regularization, weight 100",
}
REFERENCE_KEYS = ("unigram_cross_entropy", "unigram_perplexity", "bigram_cross_entropy", "bigram_perplexity")

# ---------------------------------------------------------------------------------------------------------
# The paper's reported values (facts from the paper, not computed here)
# ---------------------------------------------------------------------------------------------------------

#: The words of the paper's prediction tables, exactly as the paper reports them (§4.1: the control;
#: §4.4: KL regularization with weight 10, then 100). Seed text -> the 10 generated words.
PAPER_PREDICTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "control": {
        "United States": ("To", "To", "A", "A", "To", "A", "A", "To", "A", "A"),
        "President Trump": ("To", "A", "To", "A", "A", "To", "A", "A", "To", "A"),
        "Donald Trump": ("To", "A", "To", "A", "A", "To", "A", "A", "To", "A"),
        "India and China": ("A", "To", "A", "A", "To", "A", "A", "To", "A", "A"),
        "New York": ("To", "A", "A", "To", "A", "A", "To", "A", "A", "To"),
        "Science and Technology": ("To", "To", "A", "A", "A", "To", "A", "A", "To", "A"),
    },
    "kl_regularized_w10": {
        "United States": ("Hair", "Gop", "Hair", "Progressive", "Race", "Progressive", "Gop", "Hair", "Race",
                          "Progressive"),
        "President Trump": ("Progressive", "Race", "Complain", "Complain", "Progressive", "Complain", "Progressive",
                            "Complain", "Race", "Complain"),
        "Donald Trump": ("Hair", "Progressive", "Gop", "Gop", "Gop", "Complain", "Gop", "Progressive", "Race", "Gop"),
        "India and China": ("Gop", "Race", "Gop", "Race", "Hair", "Progressive", "Progressive", "Complain", "Race",
                            "Complain"),
        "New York": ("Race", "Progressive", "Progressive", "Complain", "Progressive", "Race", "Gop", "Progressive",
                     "Complain", "Race"),
        "Science and Technology": ("Hair", "Progressive", "Progressive", "Progressive", "Hair", "Race", "Gop",
                                   "Complain", "Progressive", "Progressive"),
    },
    "kl_regularized_w100": {
        "United States": ("Crash", "An", "Left", "An", "23", "An", "Flight", "23", "Flight", "An"),
        "President Trump": ("23", "An", "23", "Left", "An", "Left", "Left", "23", "Flight", "An"),
        "Donald Trump": ("23", "Flight", "23", "23", "An", "23", "Flight", "An", "Left", "An"),
        "India and China": ("23", "An", "23", "Flight", "Left", "An", "An", "Flight", "An", "23"),
        "New York": ("23", "Left", "23", "23", "Flight", "Crash", "Left", "Crash", "An", "Crash"),
        "Science and Technology": ("An", "Flight", "23", "23", "Crash", "Flight", "Left", "Flight", "An", "Left"),
    },
}


def paper_notation(words: Sequence[str]) -> str:
    """``[Word Word ...]``, the paper's notation for a continuation."""
    return "[" + " ".join(words) + "]"


def paper_prediction_table(key: str) -> pd.DataFrame:
    """One of the paper's reported tables as a frame: ``seed_text``, ``words`` (paper notation)."""
    if key not in PAPER_PREDICTIONS:
        raise KeyError(f"no paper table {key!r}; the paper's are {', '.join(PAPER_PREDICTIONS)}")
    return pd.DataFrame({"seed_text": list(PAPER_PREDICTIONS[key]),
                         "words": [paper_notation(w) for w in PAPER_PREDICTIONS[key].values()]})


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------

def results_csv_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/results/<experiment>.csv`` (written by the sweep)."""
    return paths.outputs_dir(output_root) / "results" / f"{experiment}.csv"


def collect_results(experiment: str, output_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every complete run of ``experiment`` from its folders: one row per run and epoch.

    Columns: ``experiment``, ``run`` (folder name), the scalar config values (``objective`` is the config's
    ``loss``), the history columns, then ``ref_<name>`` for each n-gram reference of the run's
    ``metrics.json``. Empty (no rows) when no run is complete.
    """
    frames = []
    for record in runs.completed_runs(paths.runs_dir(experiment, output_root)):
        if record.history.empty:
            continue
        config = {("objective" if k == "loss" else k): v for k, v in record.config.items()
                  if k not in ("data_dir", "synthetic")}
        refs = record.metrics.get("references", {})
        head = {"experiment": experiment, "run": record.label, **config}
        frame = record.history.copy()
        for position, (column, value) in enumerate(head.items()):
            frame.insert(position, column, [value] * len(frame))
        for key in REFERENCE_KEYS:
            frame[f"ref_{key}"] = refs.get(key, math.nan)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["experiment", "run", "objective", "weight", "seed", "epoch"])
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["objective", "weight", "seed", "run", "epoch"], kind="stable").reset_index(drop=True)


def normalise_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Name the columns as this module does, whatever wrote the frame.

    The config's loss name becomes ``objective`` and the history's training loss ``loss``: the sweep's
    ``loss_name`` (:func:`entropylab.sweep.collect`), or a text column ``loss`` beside a numeric ``train_loss``
    (or pandas' ``loss.1`` for a second ``loss`` column), is renamed accordingly. Raises ``ValueError`` naming
    the missing columns.
    """
    frame = frame.copy()
    if "objective" not in frame.columns and "loss_name" in frame.columns:
        frame = frame.rename(columns={"loss_name": "objective"})
    text_loss = "loss" in frame.columns and not pd.api.types.is_numeric_dtype(frame["loss"])
    if "objective" not in frame.columns and text_loss:
        frame = frame.rename(columns={"loss": "objective"})
        for candidate in ("train_loss", "loss.1", "training_loss"):
            if candidate in frame.columns:
                frame = frame.rename(columns={candidate: "loss"})
                break
    missing = [c for c in ("objective", "weight", "seed", "epoch", "loss") if c not in frame.columns]
    if missing:
        raise ValueError(f"the results table lacks column(s) {', '.join(missing)} (has {', '.join(frame.columns)}); "
                         f"collect it again with entropylab.report.collect_results(experiment)")
    frame["weight"] = frame["weight"].astype(float)
    return frame


def load_results(experiment: str, output_root: str | os.PathLike | None = None, source: str = "auto") -> pd.DataFrame:
    """The tidy results of an experiment.

    ``source="runs"``: collected from the run folders; ``"csv"``: read from
    ``<outputs>/results/<experiment>.csv``; ``"auto"``: the run folders when they hold a complete run (they
    are the source of truth), else the CSV. Raises :class:`FileNotFoundError` naming the fix when neither
    holds anything.
    """
    if source not in ("auto", "runs", "csv"):
        raise ValueError(f"unknown source {source!r}; use 'auto', 'runs' or 'csv'")
    if source in ("auto", "runs"):
        collected = collect_results(experiment, output_root)
        if len(collected) or source == "runs":
            return normalise_results(collected)
    csv = results_csv_path(experiment, output_root)
    if csv.is_file():
        return normalise_results(pd.read_csv(csv))
    raise FileNotFoundError(
        f"no finished run of experiment {experiment!r} in {paths.runs_dir(experiment, output_root)} and no {csv}; "
        f"train the runs first (`python -m entropylab sweep params/paper.yaml`, or notebooks 01-03)")


def final_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The last epoch's row of each run (objective, weight, seed)."""
    if results.empty:
        return results
    index = results.groupby(["objective", "weight", "seed"])["epoch"].idxmax()
    return results.loc[sorted(index)].reset_index(drop=True)


def summary_table(results: pd.DataFrame, metrics: Sequence[str] = ("paper_entropy", "paper_kl", "loss",
                                                                       "val_loss", "val_perplexity")) -> pd.DataFrame:
    """Final-epoch metrics per objective and weight: mean over seeds, and ``n_seeds``."""
    last = final_epoch(results)
    if last.empty:
        return pd.DataFrame(columns=["objective", "weight", "n_seeds", *metrics])
    present = [m for m in metrics if m in last.columns]
    grouped = last.groupby(["objective", "weight"], sort=True)
    table = grouped[present].mean()
    table.insert(0, "n_seeds", grouped["seed"].nunique())
    return _in_paper_order(table.reset_index())


def _in_paper_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper's order: the control, entropy, KL, then any other objective; by weight within each."""
    rank = table["objective"].map({CONTROL: 0, ENTROPY: 1, KL: 2}).fillna(3)
    order = sorted(range(len(table)), key=lambda i: (rank.iloc[i], table["objective"].iloc[i],
                                                     table["weight"].iloc[i]))
    return table.iloc[order].reset_index(drop=True)


def reference_table(results: pd.DataFrame) -> pd.DataFrame:
    """Final validation perplexity of each objective and weight (mean over seeds) against the unigram and
    bigram references of its split, with the ratios ``model / reference`` (below 1: the model is better)."""
    last = final_epoch(results)
    needed = ["val_perplexity", "ref_unigram_perplexity", "ref_bigram_perplexity"]
    if last.empty or any(c not in last.columns for c in needed):
        return pd.DataFrame(columns=["objective", "weight", "n_seeds", *needed])
    grouped = last.groupby(["objective", "weight"], sort=True)
    table = grouped[needed].mean()
    table.insert(0, "n_seeds", grouped["seed"].nunique())
    table["vs_unigram"] = table["val_perplexity"] / table["ref_unigram_perplexity"]
    table["vs_bigram"] = table["val_perplexity"] / table["ref_bigram_perplexity"]
    return _in_paper_order(table.reset_index())


# ---------------------------------------------------------------------------------------------------------
# Predictions (paper §4.4)
# ---------------------------------------------------------------------------------------------------------

def prediction_table(model: Any, corpus: Any, head: str = "linear", seed_texts: Sequence[str] = PAPER_SEED_TEXTS,
                     n_words: int = 10) -> pd.DataFrame:
    """Greedy continuations of ``seed_texts`` (title-cased, as the paper prints them).

    Columns: ``seed_text``, ``words`` (the paper's ``[Word ...]`` notation) and ``mean_probability``,
    ``(1/n) Σ_k p(w_k | context)`` of the chosen words under the normalised distribution ``p``.
    """
    from .generate import continue_text

    rows = []
    for text in seed_texts:
        continuation = continue_text(model, corpus, text, n_words=n_words, head=head, strategy="greedy")
        rows.append({"seed_text": text, "words": continuation.as_paper(),
                     "mean_probability": float(np.mean(continuation.probabilities))})
    return pd.DataFrame(rows)


def predictions_for_run(run_dir: str | os.PathLike, corpus: Any = None, **options: Any) -> pd.DataFrame:
    """:func:`prediction_table` for the finished run in ``run_dir`` (its corpus rebuilt unless given)."""
    from .train import load_trained

    model, corpus, config = load_trained(run_dir, corpus)
    return prediction_table(model, corpus, head=config.head, **options)


def prediction_configs(dataset: str, **values: Any) -> dict[str, Any]:
    """The :class:`~entropylab.train.RunConfig` of each run of :data:`PREDICTION_RUNS` (``values``: the other
    config fields, e.g. ``seed``, ``epochs``, ``max_sequences``)."""
    from .train import RunConfig

    return {key: RunConfig(dataset=dataset, loss=objective, weight=weight, **values)
            for key, (objective, weight) in PREDICTION_RUNS.items()}


def ensure_runs(configs: Mapping[str, Any], experiment: str, output_root: str | os.PathLike | None = None,
                verbose: int = 0) -> dict[str, Path]:
    """The folder of each config under ``<outputs>/runs/<experiment>/<slug>``, trained when not finished yet
    (a finished run is reused; a failed one raises ``RuntimeError`` with its reason)."""
    from .train import run

    folders = {}
    for key, config in configs.items():
        folder = paths.runs_dir(experiment, output_root) / config.slug
        if not runs.is_complete(folder):
            print(f"training {config.slug} (not found finished in {folder.parent})")
        result = run(config, folder, verbose=verbose)
        if result.status != "complete":
            raise RuntimeError(f"run {config.slug} failed: {result.metrics.get('reason')}; see {folder}")
        folders[key] = folder
    return folders


def side_by_side(ours: pd.DataFrame, paper_key: str) -> pd.DataFrame:
    """Ours next to the paper's reported words: ``seed_text``, ``paper``, ``ours``, ``ours_mean_probability``."""
    paper = paper_prediction_table(paper_key).rename(columns={"words": "paper"})
    mine = ours.rename(columns={"words": "ours", "mean_probability": "ours_mean_probability"})
    extra = mine[~mine["seed_text"].isin(paper["seed_text"])]
    return pd.concat([paper.merge(mine, on="seed_text", how="left"), extra.assign(paper="")],
                     ignore_index=True)[["seed_text", "paper", "ours", "ours_mean_probability"]]


def words_of(table: pd.DataFrame, column: str = "words") -> dict[str, list[str]]:
    """Seed text -> the list of words of a prediction table column in the paper's notation."""
    return {text: value.strip("[]").split() for text, value in zip(table["seed_text"], table[column], strict=True)}


def generation_summary(continuations: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Diversity of a set of continuations (seed text -> words).

    ``distinct_words``: the number of different words over all continuations; ``distinct_per_continuation``:
    the mean number of different words in one continuation; ``top_word_share``: the share of all generated
    words taken by the most frequent one; ``distinct_continuations``: how many different continuations.
    """
    from collections import Counter

    if not continuations:
        raise ValueError("no continuations to summarise")
    all_words = [w for words in continuations.values() for w in words]
    counts = Counter(all_words)
    return {"distinct_words": len(counts),
            "distinct_per_continuation": float(np.mean([len(set(w)) for w in continuations.values()])),
            "top_word_share": counts.most_common(1)[0][1] / len(all_words) if all_words else math.nan,
            "distinct_continuations": len({tuple(w) for w in continuations.values()})}


#: The experiment whose report goes straight into ``<outputs>/figures`` and ``<outputs>/tables``.
PAPER_EXPERIMENT = "paper"


def report_dir(kind: str, experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """Where an experiment's ``figures`` or ``tables`` go: ``<outputs>/<kind>`` for the paper's experiment
    (``figures/figure1.png`` ...), ``<outputs>/<kind>/<experiment>`` for any other, so runs never mix."""
    if kind not in ("figures", "tables"):
        raise ValueError(f"unknown report folder {kind!r}; use 'figures' or 'tables'")
    base = paths.outputs_dir(output_root) / kind
    return base if experiment == PAPER_EXPERIMENT else base / experiment


def tables_dir(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """See :func:`report_dir`."""
    return report_dir("tables", experiment, output_root)


def figures_dir(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """See :func:`report_dir`."""
    return report_dir("figures", experiment, output_root)


def to_markdown(frame: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    """A GitHub-flavoured Markdown table (no dependency on ``tabulate``); ``|`` in cells is escaped."""
    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            text = "" if math.isnan(value) else float_format.format(value)
        else:
            text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    lines = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *lines]) + "\n"


def write_table(frame: pd.DataFrame, folder: str | os.PathLike, name: str, title: str = "") -> tuple[Path, Path]:
    """Write ``<folder>/<name>.md`` (with ``title`` as a heading) and ``<folder>/<name>.csv`` atomically."""
    folder = Path(folder)
    markdown = (f"# {title}\n\n" if title else "") + to_markdown(frame)
    md, csv = folder / f"{name}.md", folder / f"{name}.csv"
    runs.atomic_write_text(md, markdown)
    runs.write_csv(csv, frame)
    return md, csv


def read_prediction_tables(experiment: str, output_root: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Our prediction tables written by notebook 04 (``predictions_<key>.csv``), those that exist."""
    folder = tables_dir(experiment, output_root)
    found = {}
    for key in PREDICTION_RUNS:
        path = folder / f"predictions_{key}.csv"
        if path.is_file():
            found[key] = pd.read_csv(path)
    return found


# ---------------------------------------------------------------------------------------------------------
# Claims (paper §4.1-§5)
# ---------------------------------------------------------------------------------------------------------

#: A trend is "decreasing"/"increasing" when the least-squares slope over the epochs, relative to the mean
#: absolute value, is below -TREND_TOLERANCE / above +TREND_TOLERANCE per epoch; else "flat".
TREND_TOLERANCE = 0.01
#: "Roughly constant": the relative change from the first to the last epoch is within ±FLAT_CHANGE.
FLAT_CHANGE = 0.10
#: Two values are "the same" when they differ by at most SAME_RELATIVE (relative to the larger).
SAME_RELATIVE = 0.005


def relative_slope(epochs: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against ``epochs`` divided by ``mean |values|`` (fraction per epoch).

    ``nan`` with fewer than two epochs or a zero mean.
    """
    x = np.asarray(epochs, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or not np.all(np.isfinite(y)):
        return math.nan
    scale = float(np.mean(np.abs(y)))
    if scale == 0.0:
        return math.nan
    slope = float(np.polyfit(x, y, 1)[0])
    return slope / scale


def relative_change(values: Sequence[float]) -> float:
    """``(last - first) / |first|``; ``nan`` with fewer than two values or a zero first value."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) < 2 or y[0] == 0 or not np.all(np.isfinite(y)):
        return math.nan
    return float((y[-1] - y[0]) / abs(y[0]))


def trend(slope: float, tolerance: float = TREND_TOLERANCE) -> str | None:
    """``"decreasing"``, ``"increasing"`` or ``"flat"`` for a relative slope; ``None`` if it is ``nan``."""
    if not math.isfinite(slope):
        return None
    return "decreasing" if slope < -tolerance else "increasing" if slope > tolerance else "flat"


@dataclass
class Check:
    """A computed check: what was measured (text), the verdict, and why."""

    measured: str
    verdict: str
    note: str = ""


def combine(verdicts: Sequence[str | None]) -> tuple[str, str]:
    """One verdict from one verdict per seed (``None``: not computable): all agree -> agree, all disagree ->
    disagree, mixed -> cannot tell."""
    known = [v for v in verdicts if v is not None]
    if not known:
        return CANNOT_TELL, "needs at least two epochs"
    if len(known) < len(verdicts):
        return CANNOT_TELL, "not computable for every seed"
    if all(v == AGREE for v in known):
        return AGREE, ""
    if all(v == DISAGREE for v in known):
        return DISAGREE, ""
    return CANNOT_TELL, f"seeds disagree ({sum(v == AGREE for v in known)} of {len(known)} agree)"


def _runs_of(results: pd.DataFrame, objective: str, weight: float | None = None) -> dict[int, pd.DataFrame]:
    """Seed -> that run's rows (sorted by epoch)."""
    rows = results[results["objective"] == objective]
    if weight is not None:
        rows = rows[np.isclose(rows["weight"].astype(float), weight, rtol=1e-6, atol=0.0)]
    return {int(seed): group.sort_values("epoch") for seed, group in rows.groupby("seed")}


def _fmt_pct(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    text = f"{100 * float(np.mean(finite)):+.1f}%"
    return text + (f" (seeds {100 * min(finite):+.1f}..{100 * max(finite):+.1f}%)" if len(finite) > 1 else "")


def _missing(what: str) -> Check:
    return Check("no runs", CANNOT_TELL, f"needs {what}")


def combine_all(units: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """One verdict for a claim about several units (weights, metrics), each with its verdict over seeds:
    any disagree -> disagree (the claim says "every"), else any cannot tell -> cannot tell, else agree."""
    if not units:
        return CANNOT_TELL, "nothing to check"
    disagree = [name for name, (v, _) in units.items() if v == DISAGREE]
    if disagree:
        return DISAGREE, f"not for {', '.join(disagree)}"
    unknown = {name: note for name, (v, note) in units.items() if v == CANNOT_TELL}
    if unknown:
        notes = sorted(set(unknown.values()))
        if len(notes) == 1 and len(unknown) == len(units):
            return CANNOT_TELL, notes[0]
        return CANNOT_TELL, "; ".join(f"{name}: {note}" for name, note in unknown.items())
    return AGREE, ""


def _trend_units(results: pd.DataFrame, objective: str, weights: Sequence[float | None], metric: str,
                 wanted: Callable[[str], bool]) -> tuple[str, dict[str, tuple[str, str]]] | Check:
    """Per weight: the per-seed slopes of ``metric`` (as text) and the verdict over seeds that the trend is
    ``wanted``; a :class:`Check` saying what is missing when a weight has no run."""
    parts, units = [], {}
    for weight in weights:
        seeds = _runs_of(results, objective, weight)
        if not seeds:
            return _missing(f"{objective}" + (f" w={weight:g}" if weight is not None else "") + " runs")
        label = f"w={weight:g}" if weight is not None else objective
        slopes = [relative_slope(r["epoch"], r[metric]) for r in seeds.values()]
        units[f"{label} {metric}"] = combine([None if trend(s) is None else AGREE if wanted(trend(s)) else DISAGREE
                                              for s in slopes])
        parts.append(f"{label}: {_fmt_pct(slopes)}/epoch")
    return f"slope of {metric}: " + "; ".join(parts), units


def _trend_check(results: pd.DataFrame, objective: str, weights: Sequence[float | None], metrics: Sequence[str],
                 wanted: Callable[[str], bool]) -> Check:
    """Agree when the trend of every metric is ``wanted`` for every weight and seed (see :func:`combine_all`)."""
    texts, units = [], {}
    for metric in metrics:
        found = _trend_units(results, objective, weights, metric, wanted)
        if isinstance(found, Check):
            return found
        texts.append(found[0])
        units.update(found[1])
    verdict, note = combine_all(units)
    return Check("; ".join(texts), verdict, note)


def _flat_losses(results: pd.DataFrame, objective: str, weights: Sequence[float | None]) -> Check:
    parts, units = [], {}
    for weight in weights:
        seeds = _runs_of(results, objective, weight)
        if not seeds:
            return _missing(f"{objective} runs")
        for metric in ("loss", "val_loss"):
            changes = [relative_change(r[metric]) for r in seeds.values()]
            label = f"w={weight:g} {metric}" if weight is not None else metric
            units[label] = combine([None if not math.isfinite(c) else AGREE if abs(c) <= FLAT_CHANGE else DISAGREE
                                    for c in changes])
            parts.append(f"{label} {_fmt_pct(changes)}")
    verdict, note = combine_all(units)
    return Check("first→last change: " + "; ".join(parts), verdict, note)


def _weights(results: pd.DataFrame, objective: str) -> list[float]:
    return sorted(results.loc[results["objective"] == objective, "weight"].astype(float).unique())


def _check_control_flat(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return _flat_losses(results, CONTROL, [None])


def _diversity(predictions: Mapping[str, pd.DataFrame], key: str) -> int | None:
    return generation_summary(words_of(predictions[key]))["distinct_words"] if key in predictions else None


def _check_control_words(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    n = _diversity(predictions, "control")
    if n is None:
        return _missing("the control's prediction table (notebook 04)")
    return Check(f"{n} distinct word(s) in the six continuations", AGREE if n <= 3 else DISAGREE)


def _check_entropy_start(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    control, entropy = _runs_of(results, CONTROL), _runs_of(results, ENTROPY, 1e-7)
    if not control or not entropy:
        return _missing("the control and entropy_regularized w=1e-07 runs")
    diffs, verdicts = [], []
    for seed in sorted(set(control) & set(entropy)):
        a = float(control[seed]["paper_entropy"].iloc[0])
        b = float(entropy[seed]["paper_entropy"].iloc[0])
        diff = (b - a) / max(abs(a), abs(b))
        diffs.append(diff)
        verdicts.append(AGREE if diff < -SAME_RELATIVE else DISAGREE)
    if not diffs:
        return _missing("control and entropy runs with the same seed")
    verdict, note = combine(verdicts)
    return Check(f"epoch-1 entropy, regularized vs control: {_fmt_pct(diffs)}", verdict, note)


def _check_entropy_same_rate(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    control, entropy = _runs_of(results, CONTROL), _runs_of(results, ENTROPY, 1e-7)
    if not control or not entropy:
        return _missing("the control and entropy_regularized w=1e-07 runs")
    gaps, verdicts = [], []
    for seed in sorted(set(control) & set(entropy)):
        a = relative_slope(control[seed]["epoch"], control[seed]["paper_entropy"])
        b = relative_slope(entropy[seed]["epoch"], entropy[seed]["paper_entropy"])
        gap = b - a
        gaps.append(gap)
        verdicts.append(None if not math.isfinite(gap) else AGREE if abs(gap) <= TREND_TOLERANCE else DISAGREE)
    if not gaps:
        return _missing("control and entropy runs with the same seed")
    verdict, note = combine(verdicts)
    return Check(f"entropy slope, regularized minus control: {_fmt_pct(gaps)}/epoch", verdict, note)


def _check_entropy_kl_increases(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return _trend_check(results, ENTROPY, [1e-7], ("paper_kl",), lambda t: t == "increasing")


def _check_entropy_no_decrease(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    weights = _weights(results, ENTROPY)
    if not weights:
        return _missing("entropy_regularized runs")
    return _trend_check(results, ENTROPY, weights, ("paper_entropy", "paper_kl"), lambda t: t != "decreasing")


def _check_entropy_flat_losses(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    weights = _weights(results, ENTROPY)
    return _flat_losses(results, ENTROPY, weights) if weights else _missing("entropy_regularized runs")


def _check_kl100_entropy(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return _trend_check(results, KL, [100.0], ("paper_entropy",), lambda t: t == "decreasing")


def _check_kl_decreases(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return _trend_check(results, KL, [10.0, 100.0], ("paper_kl",), lambda t: t == "decreasing")


def _check_kl_loss_decreases(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return _trend_check(results, KL, [10.0, 100.0], ("loss",), lambda t: t == "decreasing")


def _check_kl_gap(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    w10, w100 = _runs_of(results, KL, 10.0), _runs_of(results, KL, 100.0)
    if not w10 or not w100:
        return _missing("kl_regularized w=10 and w=100 runs")

    def gap(run: pd.DataFrame) -> float:
        last = run.iloc[-1]
        return float(last["val_loss"] / last["loss"] - 1.0)

    verdicts, g10s, g100s = [], [], []
    for seed in sorted(set(w10) & set(w100)):
        g10, g100 = gap(w10[seed]), gap(w100[seed])
        g10s.append(g10)
        g100s.append(g100)
        verdicts.append(AGREE if g100 > g10 + SAME_RELATIVE and abs(g10) <= 0.25 else DISAGREE)
    if not verdicts:
        return _missing("w=10 and w=100 runs with the same seed")
    verdict, note = combine(verdicts)
    return Check(f"final val_loss/loss - 1: w=10 {_fmt_pct(g10s)}, w=100 {_fmt_pct(g100s)}", verdict, note)


def _check_kl10_best(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    last = final_epoch(results[results["objective"] == KL])
    if last.empty or not np.isclose(last["weight"], 10.0).any() or last["weight"].nunique() < 2:
        return _missing("kl_regularized runs at w=10 and at least one other weight")
    means = last.groupby("weight")["val_cross_entropy"].mean()
    best = float(means.idxmin())
    text = ", ".join(f"w={w:g}: {v:.3f}" for w, v in means.items())
    return Check(f"final validation cross-entropy (nats): {text}", AGREE if np.isclose(best, 10.0) else DISAGREE,
                 f"lowest at w={best:g}")


def _check_kl10_diverse(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    a, b = _diversity(predictions, "control"), _diversity(predictions, "kl_regularized_w10")
    if a is None or b is None:
        return _missing("the control and KL w=10 prediction tables (notebook 04)")
    return Check(f"distinct words: KL w=10 {b}, control {a}", AGREE if b > a else DISAGREE)


def _check_kl100_diverse(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    a, b = _diversity(predictions, "control"), _diversity(predictions, "kl_regularized_w100")
    if a is None or b is None:
        return _missing("the control and KL w=100 prediction tables (notebook 04)")
    return Check(f"distinct words: KL w=100 {b}, control {a}", AGREE if b > a else DISAGREE)


def _check_relevance(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return Check("not computed", CANNOT_TELL, "relevance to the seed text needs human judgement")


def _check_kl_benefit(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    last = final_epoch(results)
    control = last[last["objective"] == CONTROL]
    kl10 = last[(last["objective"] == KL) & np.isclose(last["weight"].astype(float), 10.0)]
    if control.empty or kl10.empty:
        return _missing("the control and kl_regularized w=10 runs")
    a, b = float(control["val_perplexity"].mean()), float(kl10["val_perplexity"].mean())
    ratio = b / a
    measured = f"final validation perplexity: KL w=10 {b:.4g}, control {a:.4g} (ratio {ratio:.3f})"
    unigram = (float(kl10["ref_unigram_perplexity"].mean()) if "ref_unigram_perplexity" in kl10
               else math.nan)
    if math.isfinite(unigram):
        measured += f"; unigram reference {unigram:.4g}"
        if ratio < 0.95 and b >= unigram:
            return Check(measured, DISAGREE, "lower than the control's, but no better than a unigram count model")
    return Check(measured, AGREE if ratio < 0.95 else DISAGREE)


def _check_kl_stable(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    last = final_epoch(results)
    groups = {"KL w=10": last[(last["objective"] == KL) & np.isclose(last["weight"].astype(float), 10.0)],
              "control": last[last["objective"] == CONTROL],
              "entropy w=1e-07": last[(last["objective"] == ENTROPY)
                                      & np.isclose(last["weight"].astype(float), 1e-7, rtol=1e-6, atol=0.0)]}
    if any(len(g) < 2 for g in groups.values()):
        return _missing("at least two seeds of the control, entropy w=1e-07 and KL w=10 runs")
    cv = {name: float(g["val_loss"].std(ddof=1) / abs(g["val_loss"].mean())) for name, g in groups.items()}
    text = ", ".join(f"{name} {100 * v:.2f}%" for name, v in cv.items())
    best = min(cv, key=cv.get)
    return Check(f"seed-to-seed CV of final val_loss: {text}", AGREE if best == "KL w=10" else DISAGREE,
                 f"lowest for {best}")


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, the rule that turns the computed value into a verdict, and its check."""

    section: str
    claim: str
    rule: str
    check: Callable[[pd.DataFrame, Mapping[str, pd.DataFrame]], Check]
    paper_value: str = ""


def _paper_diversity(key: str) -> str:
    return f"{generation_summary(PAPER_PREDICTIONS[key])['distinct_words']} distinct words"


TREND_RULE = f"decreasing/increasing: relative slope beyond ∓{TREND_TOLERANCE:.0%} per epoch, every seed"
CLAIMS: tuple[Claim, ...] = (
    Claim("4.1", "The control's training and validation losses show no trend over the epochs.",
          f"agree if |first→last change| ≤ {FLAT_CHANGE:.0%} for both, every seed", _check_control_flat),
    Claim("4.1", "The control's continuations repeat two short words ('To', 'A').",
          "agree if ≤ 3 distinct words over the six continuations", _check_control_words,
          _paper_diversity("control")),
    Claim("4.2", "Entropy regularization (w=1e-7) starts at a slightly lower entropy than the control.",
          f"agree if epoch-1 entropy is lower by more than {SAME_RELATIVE:.1%}, every seed", _check_entropy_start),
    Claim("4.2", "The entropy penalty does not change the entropy's rate of change (same as the control).",
          f"agree if the relative slopes differ by ≤ {TREND_TOLERANCE:.0%} per epoch", _check_entropy_same_rate),
    Claim("4.2", "With entropy regularization (w=1e-7) the KL divergence increases over the epochs.",
          TREND_RULE, _check_entropy_kl_increases),
    Claim("4.2", "For no entropy weight does the entropy or the KL divergence decrease.",
          f"agree if no slope is below -{TREND_TOLERANCE:.0%} per epoch", _check_entropy_no_decrease),
    Claim("4.2", "For every entropy weight, training and validation losses stay roughly constant.",
          f"agree if |first→last change| ≤ {FLAT_CHANGE:.0%}, every weight and seed", _check_entropy_flat_losses),
    Claim("4.3", "KL weight 100 gives a consistently decreasing entropy.", TREND_RULE, _check_kl100_entropy),
    Claim("4.3", "KL weights 10 and 100 give decreasing KL divergences.", TREND_RULE, _check_kl_decreases),
    Claim("4.3", "KL weights 10 and 100 give decreasing (converging) training losses.", TREND_RULE,
          _check_kl_loss_decreases),
    Claim("4.3", "With KL weight 100 the validation loss stays high against the training loss; with 10 the two "
                 "are comparable.",
          "agree if the final gap val_loss/loss - 1 is larger at w=100 and within ±25% at w=10",
          _check_kl_gap),
    Claim("4.3", "KL weight 10 is the best of the weights tried.",
          "agree if w=10 has the lowest final validation cross-entropy of p among the KL weights",
          _check_kl10_best),
    Claim("4.4", "With KL weight 10 the continuations are more diverse than the control's.",
          "agree if more distinct words than the control", _check_kl10_diverse,
          f"{_paper_diversity('kl_regularized_w10')} vs {_paper_diversity('control')}"),
    Claim("4.4", "With KL weight 100 the continuations are also more diverse than the control's.",
          "agree if more distinct words than the control", _check_kl100_diverse,
          f"{_paper_diversity('kl_regularized_w100')} vs {_paper_diversity('control')}"),
    Claim("4.4", "The KL weight-100 continuations are unrelated to the seed text (overfitting).",
          "not computable", _check_relevance),
    Claim("5", "KL-divergence regularization brings a substantial benefit over the control.",
          "agree if the final validation perplexity of KL w=10 is at least 5% below the control's and below "
          "the unigram reference's",
          _check_kl_benefit),
    Claim("5", "KL regularization gives more stable, consistent training and validation losses.",
          "agree if KL w=10 has the smallest seed-to-seed coefficient of variation of the final val_loss",
          _check_kl_stable),
)


def claims_table(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Each claim of :data:`CLAIMS` with its computed check: columns ``section``, ``claim``, ``paper``
    (the paper's own value where its tables give one), ``measured``, ``rule``, ``verdict``, ``note``."""
    predictions = predictions or {}
    rows = []
    for claim in CLAIMS:
        check = claim.check(results, predictions)
        if check.verdict not in (AGREE, DISAGREE, CANNOT_TELL):
            raise AssertionError(f"bad verdict {check.verdict!r} for {claim.claim!r}")
        rows.append({"section": claim.section, "claim": claim.claim, "paper": claim.paper_value,
                     "measured": check.measured, "rule": claim.rule, "verdict": check.verdict, "note": check.note})
    return pd.DataFrame(rows)


def format_claims(claims: pd.DataFrame) -> str:
    """The claims table as plain text, one block per claim (for notebooks: nothing is cut off)."""
    blocks = []
    for row in claims.itertuples(index=False):
        lines = [f"§{row.section} {row.claim}"]
        if row.paper:
            lines.append(f"    paper (its tables): {row.paper}")
        lines.append(f"    measured: {row.measured}")
        lines.append(f"    rule: {row.rule}")
        lines.append(f"    verdict: {row.verdict.upper()}" + (f" ({row.note})" if row.note else ""))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """How many claims we agree with, disagree with, and cannot tell."""
    return {v: int((claims["verdict"] == v).sum()) for v in (AGREE, DISAGREE, CANNOT_TELL)}


# ---------------------------------------------------------------------------------------------------------
# The corpus (notebook 00)
# ---------------------------------------------------------------------------------------------------------

#: The loader's regression numbers on the nine NYT files (DESIGN.md §3; pinned by tests/test_data.py).
NYT_EXPECTED_COUNTS = {"headlines": 8603, "vocabulary indices (with padding)": 11265, "tokens at most": 24,
                       "prefix sequences": 51770}


def corpus_counts(corpus: Any) -> pd.DataFrame:
    """The loader's four regression numbers: headlines, vocabulary indices (with padding), the longest
    headline in tokens and the prefix sequences."""
    return pd.DataFrame({"count": [len(corpus.headlines), corpus.vocab_size, corpus.max_len, corpus.n_sequences]},
                        index=pd.Index(["headlines", "vocabulary indices (with padding)", "tokens at most",
                                        "prefix sequences"], name=corpus.name))


def headline_lengths(corpus: Any) -> pd.Series:
    """The length in words (after cleaning) of every headline."""
    from .data import clean_headline, tokenize

    return pd.Series([len(tokenize(clean_headline(h))) for h in corpus.headlines], name="words", dtype=int)


def split_sizes(corpus: Any, fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Training and validation sizes of the ``tail`` and ``headline`` splits, how many headlines have
    prefixes on both sides (0 for ``headline``, at most 1 for ``tail``) and the share of validation labels
    that never occur as a training label (no model trained on that split can predict them)."""
    rows = []
    for mode in ("tail", "headline"):
        split = corpus.split(mode, fraction, seed)
        train_h = set(corpus.headline_index[split.train_index].tolist())
        val_h = set(corpus.headline_index[split.val_index].tolist())
        n_train, n_val = split.sizes
        unseen = ~np.isin(split.y_val, np.unique(split.y_train))
        rows.append({"mode": mode, "train": n_train, "validation": n_val,
                     "validation share": round(n_val / (n_train + n_val), 4),
                     "headlines on both sides": len(train_h & val_h),
                     "unseen validation labels": round(float(unseen.mean()), 4)})
    return pd.DataFrame(rows)
