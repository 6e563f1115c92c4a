"""What the paper reports, as data: its six seed texts, the runs of its prediction tables and their words.

These are facts from the paper (its §4.1 and §4.4 tables), not computed here; every comparison with them is in
:mod:`entropylab.studies.paper.predictions` and :mod:`entropylab.studies.paper.claims`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: The paper's seed texts (§4.4), in its order.
PAPER_SEED_TEXTS = ("United States", "President Trump", "Donald Trump", "India and China", "New York",
                    "Science and Technology")
#: The entropy weight of the paper's Figure 1 (its code writes ``10e-8``).
PAPER_ENTROPY_WEIGHT = 1e-7
#: The runs of the paper's §4.4 tables: key -> (objective, weight).
PREDICTION_RUNS: dict[str, tuple[str, float]] = {
    "control": ("mse", 0.0),
    "kl_regularized_w10": ("kl_regularized", 10.0),
    "kl_regularized_w100": ("kl_regularized", 100.0),
}
PREDICTION_TITLES = {
    "control": "§4.1: the control model (MSE)",
    "kl_regularized_w10": "§4.4: KL regularization, weight 10",
    "kl_regularized_w100": "§4.4: KL regularization, weight 100",
}

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

