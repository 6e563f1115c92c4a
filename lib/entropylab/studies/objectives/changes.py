"""What changed between two runs of the objectives study: every verdict that moved, old -> new, and which of the new
rules moved it (issue 21's table "What changed").

The old tables are a two-sided study's (``verdict_val_cross_entropy``, ``verdict_val_ece``: the paired 95 % interval
on 3 seeds of one split seed, validation reported, equal-width ECE); the new ones judge the test side under the
file's verdict rule (``verdict_cross_entropy``, ``verdict_ece_adaptive``: Holm, the smallest effect ``δ``, 5 seeds
with their own split seeds). A rerun changes several things at once, so a moved verdict is attributed by this rule,
applied in order (the first that holds):

1. the calibration verdict's metric changed (equal-width ECE -> adaptive ECE): **adaptive ECE**;
2. the new mean difference is significant after Holm's correction but smaller than ``δ``: **smallest effect**;
3. the new difference is significant uncorrected (``p < 0.05``) but not after Holm's correction: **Holm**;
4. old "no difference" (the old rule's word for an interval that holds 0) became "inconclusive" while the new
   interval still holds 0: the new rule says "no difference" only when the interval lies within ``±δ``:
   **±δ rule**;
5. otherwise the difference itself moved on the new sides (a different sign, a size that no longer or now
   reaches ``δ``, or an interval that no longer or now excludes it): **test side, 5 split seeds** (the data a
   verdict is read on and the seeds that cover it).

An objective whose chosen value changed is marked, since its row then compares another model.
"""

from __future__ import annotations

import pandas as pd

from ...analysis.verdicts import ALPHA

#: (old verdict column, new verdict column, the new metric's name, what it is called in the table)
PAIRS = (("verdict_val_cross_entropy", "verdict_cross_entropy", "cross_entropy", "cross-entropy"),
         ("verdict_val_ece", "verdict_ece_adaptive", "ece_adaptive", "calibration (ECE)"))


def cause(new_row: pd.Series, metric: str, old_column: str, old_verdict: str = "") -> str:
    """Which new rule moved a verdict (module docstring, in that order)."""
    if old_column == "verdict_val_ece" and metric == "ece_adaptive":
        return "adaptive ECE"
    p, p_holm = new_row.get(f"p_{metric}"), new_row.get(f"p_holm_{metric}")
    delta, effect = new_row.get(f"delta_{metric}"), new_row.get(f"effect_{metric}", 0.0)
    if pd.notna(p_holm) and p_holm < ALPHA and pd.notna(delta) and abs(delta) < effect:
        return "smallest effect"
    if pd.notna(p) and p < ALPHA and pd.notna(p_holm) and p_holm >= ALPHA:
        return "Holm"
    low, high = new_row.get(f"delta_{metric}_low"), new_row.get(f"delta_{metric}_high")
    if old_verdict == "no difference" and new_row.get(f"verdict_{metric}") == "inconclusive" \
            and pd.notna(low) and pd.notna(high) and low <= 0 <= high:
        return "±δ rule"
    return "test side, 5 split seeds"


def verdict_changes(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """One row per verdict that moved between the ``old`` and ``new`` numeric tables of one setting (their
    objectives in common): setting, objective, what was judged, old -> new, the cause and whether the chosen value
    changed."""
    rows = []
    old = old.set_index("objective")
    for _, row in new.iterrows():
        objective = row["objective"]
        if objective not in old.index or row.get(f"verdict_{PAIRS[0][2]}") == "baseline":
            continue
        before = old.loc[objective]
        for old_column, new_column, metric, name in PAIRS:
            if old_column not in before or new_column not in row or pd.isna(row[new_column]):
                continue
            if before[old_column] == row[new_column]:
                continue
            moved_value = pd.notna(before.get("value")) and pd.notna(row.get("value")) and \
                abs(float(before["value"]) - float(row["value"])) > 1e-12
            rows.append({"setting": row["setting"], "objective": objective, "judged on": name,
                         "old": before[old_column], "new": row[new_column],
                         "cause": cause(row, metric, old_column, before[old_column]),
                         "value": f"{before['value']:g} -> {row['value']:g}" if moved_value else
                         ("" if pd.isna(row.get("value")) else f"{row['value']:g}")})
    return pd.DataFrame(rows, columns=["setting", "objective", "judged on", "old", "new", "cause", "value"])

