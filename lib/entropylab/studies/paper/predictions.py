"""The paper's §4.4 predictions: greedy continuations of its six seed texts, beside its words, and their diversity.

Our ``mean_probability`` of a continuation is ``(1/n) Σ_k p(w_k | seed, w_1..w_{k-1})`` of the chosen words
under the normalised distribution ``p`` (``c / Σ_j c_j`` with ``c = clip(o, 1e-7, 1)`` for the linear head).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...analysis.checked import is_chaotic
from ...analysis.tables import tables_dir, write_table
from ...experiments.results import find_run
from .reported import PAPER_PREDICTIONS, PAPER_SEED_TEXTS, PREDICTION_RUNS, PREDICTION_TITLES, paper_prediction_table


def prediction_table(model: Any, corpus: Any, head: str = "linear", seed_texts: Sequence[str] = PAPER_SEED_TEXTS,
                     n_words: int = 10) -> pd.DataFrame:
    """Greedy continuations of ``seed_texts`` (title-cased, as the paper prints them).

    Columns: ``seed_text``, ``words`` (the paper's ``[Word ...]`` notation) and ``mean_probability``,
    ``(1/n) Σ_k p(w_k | context)`` of the chosen words under the normalised distribution ``p``.
    """
    from ...decoding import continue_text

    rows = []
    for text in seed_texts:
        continuation = continue_text(model, corpus, text, n_words=n_words, head=head, strategy="greedy")
        rows.append({"seed_text": text, "words": continuation.as_paper(),
                     "mean_probability": float(np.mean(continuation.probabilities))})
    return pd.DataFrame(rows)


def predictions_for_run(run_dir: str | os.PathLike, corpus: Any = None, **options: Any) -> pd.DataFrame:
    """:func:`prediction_table` for the finished run in ``run_dir`` (its corpus rebuilt unless given)."""
    from ...training import load_trained

    model, corpus, config = load_trained(run_dir, corpus)
    return prediction_table(model, corpus, head=config.head, **options)


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


def ensure_prediction_runs(experiment: str, output_root: str | os.PathLike | None = None, verbose: int = 0,
                           **values: Any) -> dict[str, Path]:
    """The finished run of each of :data:`PREDICTION_RUNS` in ``experiment`` (the sweep's, found by objective,
    weight and the given config ``values`` such as ``seed``, ``epochs``, ``max_sequences``, whatever its thread
    count and backend); a missing one is trained into ``<outputs>/runs/<experiment>/<run name>`` (a failure raises
    ``RuntimeError`` with its reason)."""
    from ...experiments.point import train_in_experiment
    from ...training import RunConfig

    folders = {}
    for key, (objective, weight) in PREDICTION_RUNS.items():
        wanted = {k: v for k, v in values.items() if k not in ("data_dir", "threads", "backend")}
        found = find_run(experiment, output_root, loss=objective, weight=weight, **wanted)
        if found is None:
            config = RunConfig(loss=objective, weight=weight, **values)
            print(f"training {config.run_name} (no finished run of it in experiment {experiment!r})")
            found = train_in_experiment(config, experiment, output_root, verbose).run_dir
        folders[key] = found
    return folders


def diversity_table(ours: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`generation_summary` of the paper's continuations and of ours, for each run of :data:`PREDICTION_RUNS`."""
    rows = []
    for key in PREDICTION_RUNS:
        rows.append({"run": key, "source": "paper", **generation_summary(PAPER_PREDICTIONS[key])})
        if key in ours:
            rows.append({"run": key, "source": "ours", **generation_summary(words_of(ours[key]))})
    return pd.DataFrame(rows)


def write_prediction_tables(ours: Mapping[str, pd.DataFrame], folders: Mapping[str, Path], experiment: str,
                            output_root: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Write ours (``predictions_<key>``), ours beside the paper's (``comparison_<key>``) and the diversity table
    (``prediction_diversity``) to the experiment's tables folder; returns the comparisons and the diversity."""
    tables = tables_dir(experiment, output_root)
    written: dict[str, pd.DataFrame] = {}
    for key in PREDICTION_RUNS:
        title = f"{PREDICTION_TITLES[key]} ({experiment}/{Path(folders[key]).name})"
        written[key] = side_by_side(ours[key], key)
        write_table(ours[key], tables, f"predictions_{key}", title=f"Ours: {title}")
        write_table(written[key], tables, f"comparison_{key}", title=f"The paper's and ours: {title}")
    written["diversity"] = diversity_table(ours)
    write_table(written["diversity"], tables, "prediction_diversity", title="Diversity of the six continuations")
    return written


def read_prediction_tables(experiment: str, output_root: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Our prediction tables written by notebook 04 (``predictions_<key>.csv``), those that exist."""
    folder = tables_dir(experiment, output_root)
    found = {}
    for key in PREDICTION_RUNS:
        path = folder / f"predictions_{key}.csv"
        if path.is_file():
            found[key] = pd.read_csv(path)
    return found


def format_prediction_tables(ours: Mapping[str, pd.DataFrame], stable_only: bool = False) -> str:
    """Each prediction table beside the paper's, as text under its title (runs without a table say so).

    ``stable_only``: the runs of a chaotic objective (:data:`entropylab.analysis.checked.CHAOTIC_OBJECTIVES`) show
    the paper's words and only the shape of ours (their words change with the CPU), for a checked notebook cell."""
    blocks = []
    for key in PREDICTION_RUNS:
        if key not in ours:
            table = "  not found: run notebook 04 for this experiment first"
        elif stable_only and is_chaotic(PREDICTION_RUNS[key][0]):
            paper = paper_prediction_table(key).rename(columns={"words": "paper"})
            shape = words_of(ours[key])
            lengths = sorted({len(words) for words in shape.values()})
            table = (f"{paper.to_string(index=False)}\n  ours: {len(shape)} continuations of "
                     f"{'/'.join(map(str, lengths))} words (a chaotic objective: its words are in the table above)")
        else:
            table = side_by_side(ours[key], key).to_string(index=False,
                                                            formatters={"ours_mean_probability": "{:.2g}".format})
        blocks.append(f"{PREDICTION_TITLES[key]}\n{table}\n")
    return "\n".join(blocks)


def stable_diversity(diversity: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`diversity_table` that another CPU reproduces: the paper's, and ours of the runs whose
    objective is not chaotic (:data:`entropylab.analysis.checked.CHAOTIC_OBJECTIVES`)."""
    chaotic = diversity["run"].map(lambda key: is_chaotic(PREDICTION_RUNS[key][0]))
    return diversity[(diversity["source"] == "paper") | ~chaotic]
