"""The ``scale`` section of a parameter file, and the scale study's cells.

The scale study (``params/scale.yaml``) crosses data sizes with model sizes. Its file is a sweep of its own: each
``settings`` entry is one **cell** (a data size, ``max_sequences``, and a model size, ``embedding_dim`` and
``lstm_units``), and its ``runs`` train cross-entropy at every dropout of a grid, seed 0, judged on dev
(``tuning: true``): that sweep chooses each cell's dropout. The ``scale`` section then says what every cell trains
at its chosen dropout, as a parameter file's ``runs`` entries (tuned objectives included):

.. code-block:: yaml

    scale:
      runs:
        - {notebook: notebooks/07_objectives_train.ipynb, grid: {loss: cross_entropy, seed: [0, 1, 2]}}
        - notebook: notebooks/07_objectives_train.ipynb
          grid: {loss: label_smoothing, weight: [0.01, 0.03, 0.1]}
          tune: {seeds: [0, 1, 2], neighbours: 0}

:func:`grid_document` writes the second sweep's file from both (experiment ``<experiment>-grid``, the file's
``defaults``, ``verdicts``, ``workers`` and ``threads``, one setting per cell with its chosen dropout). A mistake is
one :class:`~entropylab.experiments.params.ParamsError` naming the file, the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...experiments.params import ParamsError, ParamSet

SECTION_KEYS = ("runs",)
#: What tells the cells apart: every setting must give these (``synthetic`` may give the source's options).
CELL_KEYS = ("dataset", "max_sequences", "embedding_dim", "lstm_units")
#: The one parameter the file's own sweep varies, and the objective it trains for the choice.
CHOSEN = "dropout"
CHOOSER = "cross_entropy"


@dataclass(frozen=True)
class ScaleSpec:
    """The section's run entries (as a parameter file's ``runs``) and the file's dropout grid."""

    runs: list[dict[str, Any]]
    dropouts: tuple[float, ...]


def _fail(params: ParamSet, key: str, message: str) -> ParamsError:
    return ParamsError(f"{params.path}: {key}: {message}")


def read_spec(params: ParamSet) -> ScaleSpec:
    """The file's ``scale`` section and dropout grid, checked: settings that each name a cell (:data:`CELL_KEYS`),
    no two the same, and ``runs`` that train only cross-entropy over a ``dropout`` grid, seed 0, with
    ``tuning: true`` (so the choice is made on dev)."""
    section = params.scale
    if not isinstance(section, dict):
        raise _fail(params, "scale", "missing; expected a mapping with 'runs' (what every cell trains at its chosen "
                                     "dropout; see params/scale.yaml)")
    for name in section:
        if name not in SECTION_KEYS:
            raise _fail(params, f"scale.{name}", f"unknown key; expected one of {', '.join(SECTION_KEYS)}")
    runs = section.get("runs")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise _fail(params, "scale.runs", f"got {runs!r}; expected a non-empty list of run entries (notebook, grid, "
                                          f"tune), as a parameter file's runs")
    if not params.settings:
        raise _fail(params, "settings", "missing; expected one setting per cell, each with "
                                        f"{', '.join(CELL_KEYS)}")
    seen: dict[tuple[Any, ...], int] = {}
    for number, setting in enumerate(params.settings):
        lacking = [k for k in CELL_KEYS if k not in {**params.defaults, **setting}]
        if lacking:
            raise _fail(params, f"settings[{number}]", f"lacks {', '.join(lacking)}; every cell names its data and "
                                                       f"model size")
        if CHOSEN in setting:
            raise _fail(params, f"settings[{number}].{CHOSEN}", "is chosen on dev by the file's runs; remove it")
        key = cell_key({**params.defaults, **setting})
        if key in seen:
            raise _fail(params, f"settings[{number}]", f"is the same cell as settings[{seen[key]}]; remove one")
        seen[key] = number
    points = params.points
    if params.tuning_points or not points:
        raise _fail(params, "runs", "expected only untuned runs of cross_entropy over a dropout grid (the choice of "
                                    "each cell's dropout); the tuned objectives go under scale.runs")
    dropouts = sorted({float(p.parameters.get(CHOSEN, -1.0)) for p in points})
    for point in points:
        p = point.parameters
        if p.get("loss") != CHOOSER or p.get("tuning") is not True or int(p.get("seed", 0)) != 0:
            raise _fail(params, f"runs[{point.entry}]", f"expected loss {CHOOSER}, tuning: true and seed 0 (the "
                                                        f"dropout is chosen on dev, once per cell)")
    if len(dropouts) < 2:
        raise _fail(params, "runs", f"expected a grid of at least two dropouts, got {dropouts}")
    return ScaleSpec(runs=runs, dropouts=tuple(dropouts))


def cell_key(parameters: dict[str, Any]) -> tuple[Any, ...]:
    """A cell's identity: its dataset, data size, model size and source options."""
    synthetic = parameters.get("synthetic") or {}
    return (parameters.get("dataset"), parameters.get("max_sequences"), int(parameters["embedding_dim"]),
            int(parameters["lstm_units"]), tuple(sorted(synthetic.items())))


def cell_name(dataset: str, max_sequences: Any, embedding_dim: int, lstm_units: int) -> str:
    """``hidden_state n=16000 64/256``: a cell's name in the tables (``n=all``: the whole corpus)."""
    size = "all" if max_sequences is None or max_sequences != max_sequences else int(max_sequences)
    return f"{dataset} n={size} {int(embedding_dim)}/{int(lstm_units)}"


def grid_document(params: ParamSet, spec: ScaleSpec, dropouts: dict[int, float]) -> dict[str, Any]:
    """The second sweep's parameter file (a mapping to write as YAML): every cell at its chosen dropout
    (``dropouts``: setting index -> value) with the section's runs."""
    document: dict[str, Any] = {
        "experiment": grid_experiment(params.experiment),
        "description": f"{params.description} (every cell at the dropout chosen on dev)".strip(),
        "defaults": {k: v for k, v in params.defaults.items() if k not in ("tuning", CHOSEN)},
        "settings": [{**setting, CHOSEN: float(dropouts[number])} for number, setting in enumerate(params.settings)],
        "runs": spec.runs,
    }
    for key in ("workers", "threads", "engine", "backend", "verdicts"):
        value = getattr(params, key)
        if value is not None:
            document[key] = value
    return document


def grid_experiment(experiment: str) -> str:
    """The experiment of the cells' objective runs: ``<experiment>-grid``."""
    return f"{experiment}-grid"
