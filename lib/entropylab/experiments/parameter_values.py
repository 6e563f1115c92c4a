"""One value of a training notebook's parameters: the names a parameter file may set, what each must be, and
:func:`check_value`, which checks (and normalises) a value. Nothing here imports Keras or TensorFlow."""

from __future__ import annotations

import math
import re
from typing import Any

from .. import objectives
from ..training.config import SPLIT_SEED_FROM_SEED

#: The names of the training notebooks' ``parameters`` cell, with what each must be.
NOTEBOOK_PARAMETERS: dict[str, str] = {
    "experiment": "a folder name (letters, digits, '_', '-', '.')",
    "loss": "an objective name of entropylab.objectives",
    "weight": "a finite number >= 0 (the objective's weight, smoothing or exponent)",
    "seed": "an integer >= 0",
    "epochs": "an integer >= 1",
    "batch_size": "an integer >= 1",
    "split": "'tail' or 'headline'",
    "val_fraction": "a number strictly between 0 and 1",
    "split_seed": "an integer in [0, 2**32) (the headline split's seed), or 'seed' (the run's seed)",
    "learning_rate": "a positive number (Adam's learning rate)",
    "max_sequences": "null or an integer >= 2",
    "dataset": "'auto', 'nyt', 'synthetic' (the bigram world) or 'hidden_state'",
    "data_dir": "null or a folder path",
    "output_root": "null or a folder path",
    "jit_compile": "true or false",
    "patience": "null (train every epoch) or an integer >= 1 (early stopping on validation cross-entropy)",
    "tuning": "true or false (train and validate on a carve of the training split)",
    "generation_prefixes": "an integer >= 0 (validation prefixes continued for the generation metrics)",
    "test_fraction": "a number >= 0 below 1 - val_fraction (the test side's share; 0: no test side)",
    "embedding_dim": "an integer >= 1 (the embedding's width)",
    "lstm_units": "an integer >= 1 (the LSTM's width)",
    "dropout": "a number >= 0 below 1",
    "synthetic": "null or a mapping of the synthetic source's options (e.g. {n_headlines: 4000})",
}
#: Parameters a training notebook may lack (added after the paper's notebooks); a file may set them only for
#: notebooks that have them.
OPTIONAL_PARAMETERS = ("patience", "tuning", "generation_prefixes", "test_fraction", "embedding_dim", "lstm_units",
                       "dropout", "synthetic")
#: Set by the sweep itself (top-level ``experiment``, ``--output-root``), never in ``defaults`` or a grid.
SWEEP_OWNED = ("experiment", "output_root")
DATASETS = ("auto", "nyt", "synthetic", "hidden_state")
_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")



# ---------------------------------------------------------------------------------------------------------
# One value
# ---------------------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float:
    """A YAML number as a float; strings such as ``"1e-7"`` (PyYAML reads them as text) are accepted."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise TypeError


def check_value(name: str, value: Any) -> Any:
    """``value`` checked (and normalised) for the notebook parameter ``name``; raises ``ValueError``."""
    if name not in NOTEBOOK_PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}; expected one of {', '.join(NOTEBOOK_PARAMETERS)}")
    expected = NOTEBOOK_PARAMETERS[name]
    bad = ValueError(f"got {value!r}; expected {expected}")
    if name == "experiment":
        if not (isinstance(value, str) and _EXPERIMENT_NAME.match(value)):
            raise bad
        return value
    if name == "loss":
        if not isinstance(value, str) or value not in objectives.OBJECTIVES:
            raise ValueError(f"got {value!r}; expected one of {', '.join(objectives.names())}")
        return value
    if name in ("weight", "val_fraction", "learning_rate"):
        try:
            number = _number(value)
        except (TypeError, ValueError):
            raise bad from None
        valid = math.isfinite(number) and (number >= 0 if name == "weight" else 0 < number < 1 if
                                           name == "val_fraction" else number > 0)
        if not valid:
            raise bad
        return number
    if name == "split_seed" and value == SPLIT_SEED_FROM_SEED:
        return value
    if name in ("test_fraction", "dropout"):  # shares in [0, 1)
        try:
            number = _number(value)
        except (TypeError, ValueError):
            raise bad from None
        if not (math.isfinite(number) and 0 <= number < 1):
            raise bad
        return number
    if name in ("seed", "split_seed"):
        if not _is_int(value) or not 0 <= value < 2**32:
            raise bad
        return value
    if name == "synthetic":
        if value is not None and not isinstance(value, dict):
            raise bad
        return value
    if name in ("epochs", "batch_size", "embedding_dim", "lstm_units"):
        if not _is_int(value) or value < 1:
            raise bad
        return value
    if name == "max_sequences":
        if value is not None and (not _is_int(value) or value < 2):
            raise bad
        return value
    if name == "split":
        from ..training.config import SPLIT_MODES

        if value not in SPLIT_MODES:
            raise bad
        return value
    if name == "dataset":
        if value not in DATASETS:
            raise bad
        return value
    if name in ("data_dir", "output_root"):
        if value is not None and not (isinstance(value, str) and value):
            raise bad
        return value
    if name in ("jit_compile", "tuning"):
        if not isinstance(value, bool):
            raise bad
        return value
    if name == "patience":
        if value is not None and (not _is_int(value) or value < 1):
            raise bad
        return value
    if name == "generation_prefixes":
        if not _is_int(value) or value < 0:
            raise bad
        return value
    raise AssertionError(name)  # pragma: no cover - every name above is handled


