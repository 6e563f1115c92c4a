"""The explorer: finished runs by objective, parameter, seed and size (model, data), in a notebook widget
(``explore()``)."""

from .index import (
    ALL_DATA,
    EXPLORER_EXPERIMENT,
    N_WORDS,
    SIZES,
    Explorer,
    FinishedRun,
    RunKey,
    Selection,
    canonical_weight,
    on_log_scale,
    read_finished_runs,
)
from .render import CURVES
from .view import (
    EXPONENT_STEP,
    SMOOTHING_STEP,
    WEIGHT_EXPONENTS,
    WEIGHT_STEP,
    ExplorerWidget,
    SliderRange,
    explore,
    slider_range,
)

__all__ = [
    "ALL_DATA",
    "CURVES",
    "EXPLORER_EXPERIMENT",
    "EXPONENT_STEP",
    "N_WORDS",
    "SIZES",
    "SMOOTHING_STEP",
    "WEIGHT_EXPONENTS",
    "WEIGHT_STEP",
    "Explorer",
    "ExplorerWidget",
    "FinishedRun",
    "RunKey",
    "Selection",
    "SliderRange",
    "canonical_weight",
    "explore",
    "on_log_scale",
    "read_finished_runs",
    "slider_range",
]
