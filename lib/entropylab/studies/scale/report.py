"""The scale study's report: its tables, headline figure, answers and scaling-law fits, written to
``<outputs>/tables/<experiment>/`` and ``<outputs>/figures/<experiment>/`` (what ``09_scale.ipynb`` shows)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...analysis.tables import figures_dir, tables_dir, write_table
from ...experiments.results import results_fix
from ...training import store
from ..objectives.tables import band_table, readable
from . import figures, tables
from .study import dropout_path, read_status


@dataclass
class ScaleReport:
    """What the report made."""

    experiment: str
    cells: pd.DataFrame  # every cell's objectives table, one after the other (numeric)
    differences: pd.DataFrame
    answers: pd.DataFrame
    fits: pd.DataFrame
    overview: pd.DataFrame  # per cell: floor, best Kneser-Ney, best LSTM (test), distance
    dropouts: pd.DataFrame
    bands: pd.DataFrame | None = None
    status: dict | None = None
    figures: dict[str, Path] = field(default_factory=dict)


def overview(cells: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the floor, the best Kneser-Ney model, cross-entropy's model and the best LSTM (the objective of
    lowest mean test cross-entropy), all on the reported side, with the cross-entropy model's distance to the
    floor."""
    rows = []
    for cell, table in cells.groupby("setting", sort=False):
        models = table[table["delta_cross_entropy"].notna()] if "delta_cross_entropy" in table else table.iloc[0:0]
        best = models.loc[models["cross_entropy"].idxmin()] if len(models) else None
        pick = table[table["objective"].astype(str).str.startswith("Kneser-Ney")]
        floor = table[table["objective"].astype(str).str.startswith("source")]
        base = models[models["objective"] == tables.BASELINE]
        rows.append({"cell": cell, "model": table["model"].iloc[0], "data": table["data"].iloc[0],
                     "D": table["D"].iloc[0], "floor": floor["cross_entropy"].iloc[0] if len(floor) else float("nan"),
                     "kneser_ney": pick["cross_entropy"].iloc[0] if len(pick) else float("nan"),
                     "kneser_ney_orders": pick["orders"].iloc[0] if len(pick) and "orders" in pick else "",
                     "cross_entropy_model": base["cross_entropy"].iloc[0] if len(base) else float("nan"),
                     "best_lstm": best["cross_entropy"] if best is not None else float("nan"),
                     "best_lstm_objective": best["objective"] if best is not None else "",
                     "distance": table["distance"].iloc[0]})
    return pd.DataFrame(rows)


def band_differences(results: pd.DataFrame) -> pd.DataFrame | None:
    """Each objective's difference to cross-entropy per word-frequency band and cell
    (:func:`entropylab.studies.objectives.tables.band_table`), where the runs have the band metrics; ``None``
    otherwise."""
    if not any(c.startswith(("test_ce_", "val_ce_")) for c in results.columns):
        return None
    return band_table(results, group_by=("setting",))


def build(experiment: str = "scale", output_root: str | os.PathLike | None = None, write: bool = True
          ) -> ScaleReport:
    """Make every table and the headline figure of the study; ``write=False`` makes them only."""
    import matplotlib.pyplot as plt

    results, choices, rule = tables.load_grid(experiment, output_root)
    cells = tables.cell_tables(results, choices, rule)
    diffs = tables.differences(cells)
    path = dropout_path(experiment, output_root)
    dropouts = store.read_csv(path, fix=results_fix(experiment)) if path.is_file() else pd.DataFrame()
    report = ScaleReport(experiment, cells, diffs, tables.answers(diffs), tables.scaling_fits(results),
                         overview(cells), dropouts, band_differences(results),
                         read_status(experiment, output_root))
    if write:
        table_dir = tables_dir(experiment, output_root)
        write_table(report.overview, table_dir, "overview",
                    f"{experiment}: per cell the floor, the best Kneser-Ney, the cross-entropy model and the best LSTM "
                    f"(test cross-entropy, nats; mean over seeds)")
        write_table(readable(cells), table_dir, "cells", f"{experiment}: every cell's objectives (test side), "
                                                          f"mean [95 % t-interval] over seeds")
        write_table(cells, table_dir, "cells_numbers")
        write_table(diffs, table_dir, "differences")
        write_table(report.answers, table_dir, "answers")
        write_table(report.fits, table_dir, "scaling_fits")
        if len(dropouts):
            write_table(dropouts, table_dir, "dropouts", f"{experiment}: each cell's dropout, chosen on dev")
        if report.bands is not None:
            write_table(report.bands, table_dir, "bands")
    if len(diffs):
        fig = figures.headline_figure(diffs)
        if write:
            report.figures["headline"] = figures.save_figure(fig, figures_dir(experiment, output_root)
                                                             / "differences_vs_distance.png")
        plt.close(fig)
    return report
