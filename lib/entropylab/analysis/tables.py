"""Report tables: the report folders, Markdown/CSV writing, the final-epoch summary and the reference table.

Tables group the runs by every identity column that varies (seeds pooled).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import objectives, paths
from ..experiments.results import final_epoch, group_columns
from ..training import store

#: The project's first experiment keeps the top-level folders (``outputs/figures/figure1.png`` ...); every other
#: experiment writes under its own name, so one never overwrites another.
PAPER_EXPERIMENT = "paper"
REPORT_KINDS = ("figures", "tables", "notebooks")


def report_dir(kind: str, experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """Where an experiment's ``figures``, ``tables`` or executed report ``notebooks`` go: ``<outputs>/<kind>`` for
    the paper's experiment, ``<outputs>/<kind>/<experiment>`` for any other (``paper-synthetic`` included)."""
    if kind not in REPORT_KINDS:
        raise ValueError(f"unknown report folder {kind!r}; use one of {', '.join(REPORT_KINDS)}")
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
    store.atomic_write_text(md, markdown)
    store.write_csv(csv, frame)
    return md, csv


def in_objective_order(table: pd.DataFrame, then: Sequence[str] = ()) -> pd.DataFrame:
    """Rows in the order of :data:`entropylab.objectives.OBJECTIVES` (the paper's first), by weight within each,
    then by the columns ``then``."""
    rank = {name: i for i, name in enumerate(objectives.names())}
    order = sorted(range(len(table)), key=lambda i: (rank.get(table["objective"].iloc[i], len(rank)),
                                                     str(table["objective"].iloc[i]), float(table["weight"].iloc[i]),
                                                     *[str(table[c].iloc[i]) for c in then]))
    return table.iloc[order].reset_index(drop=True)


def _grouped_means(results: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame | None:
    """Final-epoch means of ``columns`` per configuration (objective, its parameter and every varying identity
    column; seeds pooled), with ``parameter`` (what ``weight`` is) and ``n_seeds``; ``None`` when empty."""
    last = final_epoch(results)
    present = [c for c in columns if c in last.columns]
    if last.empty or not present:
        return None
    by = group_columns(last)
    grouped = last.groupby(by, sort=True, dropna=False)
    table = grouped[present].mean()
    table.insert(0, "n_seeds", grouped["seed"].nunique())
    table = table.reset_index()
    table.insert(1, "parameter", table["objective"].map(objectives.parameter_name))
    return in_objective_order(table, [c for c in by if c not in ("objective", "weight")])


def summary_table(results: pd.DataFrame, metrics: Sequence[str] = ("paper_entropy", "paper_kl", "loss",
                                                                       "val_loss", "val_perplexity")) -> pd.DataFrame:
    """Final-epoch metrics per configuration: the mean over seeds and ``n_seeds``."""
    table = _grouped_means(results, metrics)
    return pd.DataFrame(columns=["objective", "parameter", "weight", "n_seeds", *metrics]) if table is None else table


def reference_table(results: pd.DataFrame) -> pd.DataFrame:
    """Final validation perplexity of each configuration (mean over seeds) against the count-model references of
    its split: the add-one unigram, the bigram and, where the runs have it, the best Kneser-Ney model (its order
    chosen without the reported side), with the ratios ``model / reference`` (below 1: the model is better)."""
    needed = ["val_perplexity", "ref_unigram_perplexity", "ref_bigram_perplexity"]
    optional = [c for c in ("ref_kneser_ney_perplexity",) if c in results.columns and results[c].notna().any()]
    table = _grouped_means(results, needed + optional) if all(c in results.columns for c in needed) else None
    if table is None:
        return pd.DataFrame(columns=["objective", "parameter", "weight", "n_seeds", *needed])
    table["vs_unigram"] = table["val_perplexity"] / table["ref_unigram_perplexity"]
    table["vs_bigram"] = table["val_perplexity"] / table["ref_bigram_perplexity"]
    if optional:
        table["vs_kneser_ney"] = table["val_perplexity"] / table["ref_kneser_ney_perplexity"]
    return table
