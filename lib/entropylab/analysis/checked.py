"""What a notebook's checked cells (``# NBVAL_CHECK_OUTPUT``, compared by nbval) print: only what another CPU
reproduces.

A run's numbers are bit-for-bit reproducible on one machine type, not across CPU models: the kernels round
differently. Nudging every initial weight by ``k`` float32 steps (ulps,
:func:`entropylab.training.train.nudge_initial_weights`) stands in for that. Measured on the smoke profile of the
synthetic corpus (400 sequences, 1 epoch): a 100-ulp nudge turns the KL-regularised run's validation perplexity
314.6 into 314.5, the very difference reported between two CPU models; a 300-ulp nudge moves the paper's
KL-regularised runs by up to 3 % (perplexity 385 -> 374 at weight 100) and changes their greedy words, while the
control, the entropy penalty and cross-entropy move in their fourth significant digit at most. The paper's KL
objective clips the outputs to ``[1e-7, 1]`` and its gradient jumps where an output crosses a clip: its short runs
are chaotic.

The rule: checked cells print numbers to :data:`SIGNIFICANT_DIGITS` significant digits and leave out the runs of
:data:`CHAOTIC_OBJECTIVES` (shown in full in unchecked cells beside them); ``make nbval-refresh`` executes every
notebook a second time with a nudge of :data:`ROBUSTNESS_NUDGE_ULPS` and refuses references whose checked cells
change.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

SIGNIFICANT_DIGITS = 3
#: Objectives whose short runs change their printed numbers and greedy words under a 300-ulp nudge.
CHAOTIC_OBJECTIVES = ("kl_regularized",)
#: The nudge (ulps) of the references' robustness pass: three times the one that reproduces a CPU model's change.
ROBUSTNESS_NUDGE_ULPS = 300


def number(value: Any) -> str:
    """``value`` to :data:`SIGNIFICANT_DIGITS` significant digits (``188.2`` -> ``188``, ``0.002477`` ->
    ``0.00248``)."""
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


def table(frame: pd.DataFrame) -> str:
    """``frame`` as plain text without its index, every float to :data:`SIGNIFICANT_DIGITS` significant digits."""
    return frame.to_string(index=False, float_format=number)


def is_chaotic(objective: str) -> bool:
    """Whether a run of ``objective`` is left out of checked cells (:data:`CHAOTIC_OBJECTIVES`)."""
    return objective in CHAOTIC_OBJECTIVES


def stable_rows(frame: pd.DataFrame, column: str = "objective") -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` is not a chaotic objective."""
    if column not in frame.columns:
        return frame
    return frame[~frame[column].map(is_chaotic)]


def outline(history: pd.DataFrame) -> str:
    """What a chaotic run's history shows on any CPU: its epochs, its columns, and whether every number is finite."""
    numbers = history.select_dtypes("number")
    finite = all(math.isfinite(v) for v in numbers.to_numpy().ravel())
    return (f"epochs: {len(history)}\ncolumns: {', '.join(history.columns)}\n"
            f"every metric finite: {'yes' if finite else 'no'}")
