"""The paper's Figures 1-6, drawn from a results table as the paper describes them.

* Figure 1: the control (``mse``) against entropy regularization at ``w = 1e-7``, the four metrics per epoch.
* Figure 2: the four metrics per epoch for each entropy weight.
* Figures 3-6: ``paper_entropy``, ``paper_kl``, ``loss``, ``val_loss`` per epoch for each KL weight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ...analysis.figures import (
    METRIC_LABELS,
    NoRunsError,
    check_results,
    four_panels,
    legend_outside,
    metric_panel,
    select,
    weight_frame,
    weight_label,
)
from ...objectives import CONTROL, ENTROPY, KL
from .reported import PAPER_ENTROPY_WEIGHT

PAPER_METRICS = ("paper_entropy", "paper_kl", "loss", "val_loss")
KL_FIGURES = {3: "paper_entropy", 4: "paper_kl", 5: "loss", 6: "val_loss"}
OBJECTIVE_LABELS = {CONTROL: "control (MSE)", ENTROPY: "entropy regularized", KL: "KL regularized"}

def figure1(results: pd.DataFrame, entropy_weight: float = PAPER_ENTROPY_WEIGHT):
    """Figure 1: the control against entropy regularization at ``entropy_weight``, the four metrics."""
    check_results(results, PAPER_METRICS)
    control = select(results, CONTROL)
    entropy = select(results, ENTROPY, entropy_weight)
    if control.empty or entropy.empty:
        missing = [name for name, rows in (("the control (loss mse)", control),
                                           (f"entropy_regularized w={weight_label(entropy_weight)}", entropy))
                   if rows.empty]
        raise NoRunsError(f"figure 1 needs {' and '.join(missing)}; train them (notebooks 01 and 02, or "
                          f"`python -m entropylab sweep params/paper.yaml`)")
    entropy_name = f"entropy regularized, w={weight_label(entropy_weight)}"
    frame = pd.concat([control.assign(model=OBJECTIVE_LABELS[CONTROL]), entropy.assign(model=entropy_name)])
    order = [OBJECTIVE_LABELS[CONTROL], entropy_name]
    return four_panels(frame, PAPER_METRICS, "model", order, ["#444444", "#d95f02"],
                        "Figure 1: control model vs. entropy regularized model", "model", dashes=True)


def figure2(results: pd.DataFrame):
    """Figure 2: the four metrics per epoch for each entropy-regularization weight."""
    check_results(results, PAPER_METRICS)
    rows = select(results, ENTROPY)
    if rows.empty:
        raise NoRunsError("figure 2 needs entropy_regularized runs; train them (notebook 02 across weights: "
                          "`python -m entropylab sweep params/paper.yaml`)")
    frame, order = weight_frame(rows)
    return four_panels(frame, PAPER_METRICS, "weight_label", order, "viridis",
                        "Figure 2: entropy regularization for different weights", "entropy weight")


def kl_figure(results: pd.DataFrame, metric: str):
    """Figures 3-6: one of the paper's four metrics per epoch for each KL-regularization weight."""
    import matplotlib.pyplot as plt

    if metric not in KL_FIGURES.values():
        raise ValueError(f"unknown metric {metric!r} for the KL figures; use one of {', '.join(KL_FIGURES.values())}")
    check_results(results, (metric,))
    rows = select(results, KL)
    number = next(n for n, m in KL_FIGURES.items() if m == metric)
    if rows.empty:
        raise NoRunsError(f"figure {number} needs kl_regularized runs; train them (notebook 03 across weights: "
                          "`python -m entropylab sweep params/paper.yaml`)")
    frame, order = weight_frame(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    metric_panel(ax, frame, metric, "weight_label", order, "viridis")
    legend_outside(fig, ax, "KL weight")
    fig.suptitle(f"Figure {number}: {METRIC_LABELS[metric]} of KL regularization for different weights")
    return fig


def paper_figures(results: pd.DataFrame) -> tuple[dict[str, object], dict[str, str]]:
    """Every paper figure the results allow: ``({"figure1": fig, ...}, {"figure2": "why it was skipped"})``."""
    figures: dict[str, object] = {}
    skipped: dict[str, str] = {}
    makers = {"figure1": lambda: figure1(results), "figure2": lambda: figure2(results)}
    makers.update({f"figure{n}": (lambda m=m: kl_figure(results, m)) for n, m in KL_FIGURES.items()})
    for name, make in makers.items():
        try:
            figures[name] = make()
        except NoRunsError as exc:
            skipped[name] = str(exc)
    return figures, skipped




@dataclass
class DrawnFigures:
    """The paper figures a results table allows, saved as ``<folder>/<name>.png``, and why the others were not."""

    figures: dict[str, object]
    skipped: dict[str, str]
    folder: Path

    def show(self, name: str) -> None:
        """Display a drawn figure in the notebook, or say why it was skipped."""
        if name in self.figures:
            from IPython.display import display

            display(self.figures[name])
        else:
            print(f"{name} skipped: {self.skipped.get(name, 'no finished runs')}")


def save_paper_figures(results: pd.DataFrame, folder: str | os.PathLike) -> DrawnFigures:
    """Draw every paper figure that ``results`` allows (:func:`paper_figures`) and save it as a PNG in ``folder``."""
    import matplotlib.pyplot as plt

    from ...analysis.figures import save_figure

    drawn, skipped = paper_figures(results) if len(results) else ({}, {})
    for name, fig in drawn.items():
        save_figure(fig, Path(folder) / f"{name}.png")
        plt.close(fig)
    print(f"saved {', '.join(drawn) or 'no figure'} to {folder}")
    return DrawnFigures(drawn, skipped, Path(folder))
