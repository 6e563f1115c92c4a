"""Choosing a tuned run entry's value: from its tuning runs (on a carve of the training split) to the runs to report.

A run entry with ``tune`` (:class:`entropylab.experiments.params.Tune`) is first trained once per grid value with
``tuning: true`` (its validation side is carved from the training side: the reported validation data is never
seen). Per group (the entry in one data setting) the rule is:

* the chosen value is the grid value whose run has the lowest validation cross-entropy at its best epoch (a run
  whose training loss became NaN or infinite never wins; ties go to the smaller value); nothing is chosen while a
  run of the group is unfinished or failed for another reason (the next sweep retries it first);
* the runs to report are the chosen value and its ``neighbours`` grid values on each side; when the chosen value
  is at an edge of the grid, the window keeps its width by taking more values on the other side, and the group is
  flagged ``at_edge`` (the grid should be widened there);
* each of those values is trained with every seed of ``tune.seeds`` on the real split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..training import store
from .params import Point

MONITOR = "val_cross_entropy"


@dataclass
class Choice:
    """The outcome of one tuning group."""

    points: list[Point]  # the group's tuning points, in grid order
    scores: list[float]  # their best-epoch validation cross-entropy on the tuning carve (inf: diverged)
    chosen: float
    at_edge: bool
    values: list[float]  # the values to run with every seed
    dataset: str = ""  # the resolved dataset (a file's ``auto`` is resolved by the sweep)

    @property
    def first(self) -> Point:
        return self.points[0]

    def final_points(self) -> list[Point]:
        seeds = self.first.tune.seeds if self.first.tune else (self.first.parameters.get("seed", 0),)
        return [self.first.chosen(weight=value, seed=seed) for value in self.values for seed in seeds]

    def row(self) -> dict[str, Any]:
        p = self.first.parameters
        return {"entry": self.first.entry, "setting": self.first.setting, "dataset": self.dataset or p.get("dataset"),
                "split": p.get("split"), "objective": p.get("loss"),
                "grid": " ".join(f"{pt.parameters['weight']:g}" for pt in self.points),
                "tuning_cross_entropy": " ".join(f"{s:.4f}" for s in self.scores),
                "chosen": self.chosen, "at_edge": self.at_edge, "values": " ".join(f"{v:g}" for v in self.values),
                "seeds": " ".join(str(s) for s in (self.first.tune.seeds if self.first.tune else ()))}


DIVERGED = "NaN or infinite"  # in the reason a run records when its training loss stops being finite


def best_score(run_dir: str | os.PathLike) -> float:
    """The best-epoch validation cross-entropy of a finished run folder; ``inf`` for a run whose training loss
    became NaN or infinite (or with no finite value); NaN for a run that is unfinished or failed otherwise."""
    run_dir = Path(run_dir)
    if not store.is_complete(run_dir):
        reason = store.failure_reason(run_dir) if store.is_failed(run_dir) else None
        return math.inf if reason and DIVERGED in reason else math.nan
    try:
        best = store.read_json(run_dir / store.METRICS).get("best") or {}
    except (OSError, ValueError):
        return math.nan
    value = float(best.get(MONITOR, math.nan))
    return value if math.isfinite(value) else math.inf


def window(n_values: int, chosen: int, neighbours: int) -> tuple[list[int], bool]:
    """Indices of the chosen grid value and its ``neighbours`` on each side (shifted inward at an edge), and
    whether the chosen value is at an edge of the grid."""
    width = min(2 * neighbours + 1, n_values)
    start = min(max(chosen - neighbours, 0), n_values - width)
    return list(range(start, start + width)), chosen in (0, n_values - 1)


def choose(points: list[Point], scores: list[float]) -> Choice | None:
    """The :class:`Choice` of one group of tuning points: ``None`` while a score is NaN (a run unfinished or failed
    for another reason than divergence) or when every run diverged (``inf``)."""
    order = sorted(range(len(points)), key=lambda i: float(points[i].parameters["weight"]))
    points = [points[i] for i in order]
    scores = [scores[i] for i in order]
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite or any(math.isnan(s) for s in scores):
        return None
    best = min(finite, key=lambda i: (scores[i], i))
    indices, at_edge = window(len(points), best, points[0].tune.neighbours if points[0].tune else 1)
    values = [float(points[i].parameters["weight"]) for i in indices]
    return Choice(points, scores, float(points[best].parameters["weight"]), at_edge, values)


def groups(points: list[Point]) -> dict[tuple[int, int], list[int]]:
    """Positions of the tuning points of each group ``(entry, setting)``, in file order."""
    out: dict[tuple[int, int], list[int]] = {}
    for position, point in enumerate(points):
        out.setdefault((point.entry, point.setting), []).append(position)
    return out


def choices(points: list[Point], run_dirs: list[str | os.PathLike],
            datasets: list[str] | None = None) -> tuple[list[Choice], list[tuple[int, int]]]:
    """The choice of every group of ``points`` (trained into ``run_dirs``, position by position, on the resolved
    ``datasets``), and the groups nothing can be chosen for yet (see :func:`choose`)."""
    made, missing = [], []
    for key, positions in groups(points).items():
        choice = choose([points[i] for i in positions], [best_score(run_dirs[i]) for i in positions])
        if choice is None:
            missing.append(key)
        else:
            choice.dataset = datasets[positions[0]] if datasets else ""
            made.append(choice)
    return made, missing


def choices_table(made: list[Choice]) -> pd.DataFrame:
    """One row per group: its grid, the tuning scores, the chosen value, ``at_edge`` and the values run."""
    return pd.DataFrame([c.row() for c in made])
