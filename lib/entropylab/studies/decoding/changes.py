"""What changed in the decoding study's verdicts between two runs (issue 21's table "What changed"): every
matched-diversity verdict that moved, old -> new, and the rule that attributes it."""

from __future__ import annotations

import pandas as pd

#: The decoders whose definitions changed with issue 21 (Top-H as published; at most one word kept for a tie at the
#: top in top_p, Top-H and Mirostat).
REDEFINED_DECODERS = ("top_h", "top_p", "mirostat")


def matched_changes(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Every matched-diversity verdict of the decoding study that moved (``model``, ``decoder``, ``verdict``
    columns of the two ``<setting>_matched.csv``), old -> new, with its cause by this rule, in order: the new verdict
    is "emits impossible words" -> **impossible rule** (a setting above the tolerance is not ranked); the decoder's
    definition changed -> **published definition**; otherwise -> **quality axis and standard errors** (the ranking
    on the mean ``ln q`` of possible words, ties on two standard errors, D* chosen on dev, test prefixes: a rerun
    changes these together)."""
    before = old.set_index(["model", "decoder"])["verdict"]
    rows = []
    for row in new.itertuples():
        key = (row.model, row.decoder)
        if key not in before.index or before[key] == row.verdict:
            continue
        cause = ("impossible rule" if row.verdict == "emits impossible words" else
                 "published definition" if row.decoder in REDEFINED_DECODERS else "quality axis and standard errors")
        rows.append({"model": row.model, "decoder": row.decoder, "old": before[key], "new": row.verdict,
                     "cause": cause})
    return pd.DataFrame(rows, columns=["model", "decoder", "old", "new", "cause"])
