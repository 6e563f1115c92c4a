"""Claims with verdicts: a claim, its rule, its check, and the combination of per-seed and per-unit verdicts.

A rule turns measured values into agree / disagree / cannot tell; a claim about "every weight" fails on one weight.

A study lists its claims (:class:`Claim`, each with a check function of the results table and the study's
other tables) and :func:`claims_table` evaluates them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .trends import FLAT_CHANGE, relative_change, relative_slope, trend

AGREE, DISAGREE, CANNOT_TELL = "agree", "disagree", "cannot tell"


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


def runs_of(results: pd.DataFrame, objective: str, weight: float | None = None) -> dict[int, pd.DataFrame]:
    """Seed -> that run's rows (sorted by epoch)."""
    rows = results[results["objective"] == objective]
    if weight is not None:
        rows = rows[np.isclose(rows["weight"].astype(float), weight, rtol=1e-6, atol=0.0)]
    return {int(seed): group.sort_values("epoch") for seed, group in rows.groupby("seed")}


def fmt_pct(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    text = f"{100 * float(np.mean(finite)):+.1f}%"
    return text + (f" (seeds {100 * min(finite):+.1f}..{100 * max(finite):+.1f}%)" if len(finite) > 1 else "")


def missing(what: str) -> Check:
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
        seeds = runs_of(results, objective, weight)
        if not seeds:
            return missing(f"{objective}" + (f" w={weight:g}" if weight is not None else "") + " runs")
        label = f"w={weight:g}" if weight is not None else objective
        slopes = [relative_slope(r["epoch"], r[metric]) for r in seeds.values()]
        units[f"{label} {metric}"] = combine([None if trend(s) is None else AGREE if wanted(trend(s)) else DISAGREE
                                              for s in slopes])
        parts.append(f"{label}: {fmt_pct(slopes)}/epoch")
    return f"slope of {metric}: " + "; ".join(parts), units


def trend_check(results: pd.DataFrame, objective: str, weights: Sequence[float | None], metrics: Sequence[str],
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


def flat_losses_check(results: pd.DataFrame, objective: str, weights: Sequence[float | None]) -> Check:
    parts, units = [], {}
    for weight in weights:
        seeds = runs_of(results, objective, weight)
        if not seeds:
            return missing(f"{objective} runs")
        for metric in ("loss", "val_loss"):
            changes = [relative_change(r[metric]) for r in seeds.values()]
            label = f"w={weight:g} {metric}" if weight is not None else metric
            units[label] = combine([None if not math.isfinite(c) else AGREE if abs(c) <= FLAT_CHANGE else DISAGREE
                                    for c in changes])
            parts.append(f"{label} {fmt_pct(changes)}")
    verdict, note = combine_all(units)
    return Check("first→last change: " + "; ".join(parts), verdict, note)


def weights_of(results: pd.DataFrame, objective: str) -> list[float]:
    return sorted(results.loc[results["objective"] == objective, "weight"].astype(float).unique())



@dataclass(frozen=True)
class Claim:
    """A claim of a study's source, the rule that turns the computed value into a verdict, and its check."""

    section: str
    claim: str
    rule: str
    check: Callable[[pd.DataFrame, Mapping[str, pd.DataFrame]], Check]
    paper_value: str = ""



def claims_table(claims: Sequence[Claim], results: pd.DataFrame,
                 predictions: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Each claim with its computed check: columns ``section``, ``claim``, ``paper`` (the source's own value where
    it gives one), ``measured``, ``rule``, ``verdict``, ``note``."""
    predictions = predictions or {}
    rows = []
    for claim in claims:
        check = claim.check(results, predictions)
        if check.verdict not in (AGREE, DISAGREE, CANNOT_TELL):
            raise AssertionError(f"bad verdict {check.verdict!r} for {claim.claim!r}")
        rows.append({"section": claim.section, "claim": claim.claim, "paper": claim.paper_value,
                     "measured": check.measured, "rule": claim.rule, "verdict": check.verdict, "note": check.note})
    return pd.DataFrame(rows)


def format_claims(claims: pd.DataFrame, measured: bool = True) -> str:
    """The claims table as plain text, one block per claim (for notebooks: nothing is cut off).

    ``measured=False`` leaves out the measured numbers (they move with the CPU; the verdicts must not), for a
    checked notebook cell."""
    blocks = []
    for row in claims.itertuples(index=False):
        lines = [f"§{row.section} {row.claim}"]
        if row.paper:
            lines.append(f"    paper (its tables): {row.paper}")
        if measured:
            lines.append(f"    measured: {row.measured}")
        lines.append(f"    rule: {row.rule}")
        lines.append(f"    verdict: {row.verdict.upper()}" + (f" ({row.note})" if row.note else ""))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """How many claims we agree with, disagree with, and cannot tell."""
    return {v: int((claims["verdict"] == v).sum()) for v in (AGREE, DISAGREE, CANNOT_TELL)}

