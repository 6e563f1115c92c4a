"""The objectives study's report: its tables, figures and findings from the sweep's results, written to
``<outputs>/tables/<experiment>/`` and ``<outputs>/figures/<experiment>/`` (what ``07_objectives.ipynb`` shows).

The calibration bins are read from the run folders when they are there and kept in
``<outputs>/results/<experiment>-reliability.csv``, so the report can be made again from the committed results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...analysis.figures import save_figure
from ...analysis.tables import figures_dir, tables_dir, write_table
from ...experiments.results import results_fix, results_path
from ...training import store
from . import figures, tables


@dataclass
class StudyReport:
    """What the report made: per setting its numeric and readable tables, the choices, the figures' paths."""

    experiment: str
    settings: list[str]
    numeric: dict[str, pd.DataFrame] = field(default_factory=dict)
    readable: dict[str, pd.DataFrame] = field(default_factory=dict)
    choices: pd.DataFrame | None = None
    figures: dict[str, Path] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)


def reliability_path(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    return results_path(f"{experiment}-reliability", output_root)


def load_reliability(experiment: str, output_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The calibration bins from the run folders (saved to :func:`reliability_path`), else from that CSV."""
    bins = figures.reliability_table(experiment, output_root)
    path = reliability_path(experiment, output_root)
    if len(bins):
        figures.save_reliability(bins, path)
        return bins
    return store.read_csv(path, fix=results_fix(experiment)) if path.is_file() else bins


def findings(numeric: dict[str, pd.DataFrame]) -> list[str]:
    """One plain sentence per setting from its table: which objectives beat cross-entropy on validation
    cross-entropy and on calibration (the adaptive ECE, or the equal-width one for older results) by the paired
    rule, and which lose."""
    lines = []
    for setting, table in numeric.items():
        models = table[(table["seeds"] > 0) & (table["objective"] != tables.BASELINE)]
        if "verdict_val_cross_entropy" not in models.columns:
            continue

        def named(column: str, verdict: str, models: pd.DataFrame = models) -> str:
            return ", ".join(models.loc[models[column] == verdict, "objective"]) or "none"

        calibration = next((m for m in tables.verdict_columns(table) if m != "val_cross_entropy"), None)
        name = tables.SHORT.get(calibration, calibration)
        on_calibration = (f"; better on {name}: {named(f'verdict_{calibration}', 'better')}; worse on {name}: "
                          f"{named(f'verdict_{calibration}', 'worse')}" if calibration else "")
        base = table[table["objective"] == tables.BASELINE]
        ce = float(base["val_cross_entropy"].iloc[0]) if len(base) else float("nan")
        lines.append(f"{setting}: cross-entropy reaches {ce:.3f} nats; better than it on validation cross-entropy: "
                     f"{named('verdict_val_cross_entropy', 'better')}; worse: "
                     f"{named('verdict_val_cross_entropy', 'worse')}{on_calibration}"
                     + (f"; no verdict (fewer than 3 seeds): {named('verdict_val_cross_entropy', 'too few seeds')}"
                        if (models["verdict_val_cross_entropy"] == "too few seeds").any() else "") + ".")
    return lines


#: The columns of the short tables (README): the value, cross-entropy and calibration with verdicts, diversity.
SHORT_METRICS = ("val_cross_entropy", "val_ece", "val_ece_adaptive", "gen_sample_distinct_2", "true_kl")


def short_tables(report: StudyReport) -> str:
    """One compact Markdown table per setting (objective, value, cross-entropy, ECE, adaptive ECE where the results
    have it, sample distinct-2, true KL and the two verdicts), for the README."""
    from ...analysis.tables import to_markdown

    parts = []
    for setting in report.settings:
        table = tables.readable(report.numeric[setting], SHORT_METRICS)
        parts.append(f"**{setting}**\n\n{to_markdown(table)}")
    return "\n".join(parts)


def build(experiment: str = "objectives", output_root: str | os.PathLike | None = None,
          write: bool = True) -> StudyReport:
    """Make every table and figure of the study (see the module docstring); ``write=False`` makes them only."""
    import matplotlib.pyplot as plt

    results, choices = tables.load_study(experiment, output_root)
    settings = [s for s in ("nyt/headline", "nyt/tail", "synthetic/headline") if s in set(results["setting"])]
    settings += sorted(set(results["setting"]) - set(settings))
    report = StudyReport(experiment, settings, choices=choices)
    table_dir, figure_dir = tables_dir(experiment, output_root), figures_dir(experiment, output_root)
    for setting in settings:
        numeric = tables.setting_table(results, choices, setting)
        report.numeric[setting] = numeric
        report.readable[setting] = tables.readable(numeric)
        if write:
            name = setting.replace("/", "_")
            write_table(report.readable[setting], table_dir, name,
                        f"{experiment}: {setting}, best epoch, mean [95 % t-interval] over seeds")
            write_table(numeric, table_dir, f"{name}_numbers")
    if write:
        write_table(choices.drop(columns=["entry"], errors="ignore"), table_dir, "choices",
                    f"{experiment}: values chosen on the tuning carve")
    report.findings = findings(report.numeric)
    if write:
        from ...training.store import atomic_write_text

        atomic_write_text(table_dir / "summary.md", f"# {experiment}: short tables\n\n{short_tables(report)}\n"
                          + "\n".join(f"- {line}" for line in report.findings) + "\n")

    made: dict[str, Any] = {"perplexity_vs_value": figures.value_figure(results, "val_perplexity", settings, choices)}
    bins = load_reliability(experiment, output_root)
    if len(bins):
        picks = {s: figures.best_two(report.numeric[s]) for s in settings}
        made["reliability"] = figures.reliability_figure(bins, picks)
    synthetic = [s for s in settings if s.startswith("synthetic")]
    if synthetic and "true_kl" in results.columns:
        made["true_kl_vs_value"] = figures.value_figure(results, "true_kl", synthetic, choices)
    for name, fig in made.items():
        if write:
            report.figures[name] = save_figure(fig, figure_dir / f"{name}.png")
        plt.close(fig)
    return report
