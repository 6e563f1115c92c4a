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

from ... import objectives
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
    """One plain sentence per setting from its table: which objectives beat cross-entropy on the reported
    cross-entropy and on calibration (the adaptive ECE where measured) by the study's verdict rule, which lose, and
    which show no difference worth reporting."""
    lines = []
    for setting, table in numeric.items():
        models = table[(table["seeds"] > 0) & table["objective"].isin(objectives.names())
                       & (table["objective"] != tables.BASELINE)]
        if "verdict_cross_entropy" not in models.columns:
            continue
        calibration = "ece_adaptive" if "verdict_ece_adaptive" in models.columns else "ece"

        def named(metric: str, verdict: str, models: pd.DataFrame = models) -> str:
            column = f"verdict_{metric}"
            return ", ".join(models.loc[models[column] == verdict, "objective"]) if column in models else "none"

        base = table[table["objective"] == tables.BASELINE]
        side = "test" if (base["side"] == "test").all() else "validation"
        ce = float(base["cross_entropy"].iloc[0]) if len(base) else float("nan")
        kn = table[table["objective"].str.startswith("Kneser-Ney")]
        kn_text = f" (best Kneser-Ney: {float(kn['cross_entropy'].iloc[0]):.3f})" if len(kn) else ""
        parts = [f"{setting}: cross-entropy reaches {ce:.3f} nats on {side}{kn_text}"]
        for metric, name in (("cross_entropy", "cross-entropy"), (calibration, "calibration")):
            for verdict in ("better", "worse", "no difference", "inconclusive", "too few seeds"):
                who = named(metric, verdict)
                if who and who != "none":
                    parts.append(f"{verdict} on {name}: {who}")
        lines.append("; ".join(parts) + ".")
    return lines


#: The columns of the short tables (README): the value, cross-entropy and calibration with verdicts, diversity.
SHORT_METRICS = ("cross_entropy", "ece_adaptive", "ece", "gen_sample_distinct_2", "true_kl")


def short_tables(report: StudyReport) -> str:
    """One compact Markdown table per setting (objective, value, cross-entropy, ECE, sample distinct-2, true KL
    and the two verdicts), for the README."""
    from ...analysis.tables import to_markdown

    parts = []
    for setting in report.settings:
        table = tables.readable(report.numeric[setting], SHORT_METRICS)
        parts.append(f"**{setting}**\n\n{to_markdown(table)}")
    return "\n".join(parts)


def choice_curves(experiment: str, results: pd.DataFrame,
                  output_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """What the value figures show: every grid value's tuning run (``<experiment>-tuning``, best epoch) and the
    reported runs, all read on their validation (dev) side, the side the choice was made on. Without the tuning
    results (a report from the committed tables alone) the reported runs only."""
    from ...experiments.results import best_epoch, load_results

    try:
        tuned = best_epoch(load_results(f"{experiment}-tuning", output_root))
    except FileNotFoundError:
        return results
    tuned = tuned.assign(setting=[tables.setting_name(d, s) for d, s in zip(tuned["dataset"], tuned["split"],
                                                                            strict=True)])
    both = pd.concat([results, tuned], ignore_index=True)  # a tuning run of a chosen value is that value's seed run
    return both.drop_duplicates(["setting", "objective", "weight", "seed"], keep="first").reset_index(drop=True)


def build(experiment: str = "objectives", output_root: str | os.PathLike | None = None,
          write: bool = True) -> StudyReport:
    """Make every table and figure of the study (see the module docstring); ``write=False`` makes them only."""
    import matplotlib.pyplot as plt

    results, choices = tables.load_study(experiment, output_root)
    rule = tables.load_rule(experiment, output_root)
    settings = [s for s in ("nyt/headline", "nyt/tail", "synthetic/headline") if s in set(results["setting"])]
    settings += sorted(set(results["setting"]) - set(settings))
    report = StudyReport(experiment, settings, choices=choices)
    table_dir, figure_dir = tables_dir(experiment, output_root), figures_dir(experiment, output_root)
    for setting in settings:
        numeric = tables.setting_table(results, choices, setting, rule)
        report.numeric[setting] = numeric
        report.readable[setting] = tables.readable(numeric)
        if write:
            name = setting.replace("/", "_")
            write_table(report.readable[setting], table_dir, name,
                        f"{experiment}: {setting}, best epoch, reported side "
                        f"({numeric['side'].iloc[0] if len(numeric) else 'val'}), mean [95 % t-interval] over seeds")
            write_table(numeric, table_dir, f"{name}_numbers")
    if write:
        write_table(choices.drop(columns=["entry"], errors="ignore"), table_dir, "choices",
                    f"{experiment}: values chosen on dev (or, for two-sided runs, on the tuning carve)")
    report.findings = findings(report.numeric)
    if write:
        from ...training.store import atomic_write_text

        atomic_write_text(table_dir / "summary.md", f"# {experiment}: short tables\n\n{short_tables(report)}\n"
                          + "\n".join(f"- {line}" for line in report.findings) + "\n")

    on_dev = choice_curves(experiment, results, output_root)
    made: dict[str, Any] = {"perplexity_vs_value": figures.value_figure(on_dev, "val_perplexity", settings, choices)}
    bins = load_reliability(experiment, output_root)
    if len(bins):
        picks = {s: figures.best_two(report.numeric[s]) for s in settings}
        made["reliability"] = figures.reliability_figure(bins, picks)
    synthetic = [s for s in settings if s.startswith("synthetic")]
    if synthetic and "true_kl" in results.columns:
        made["true_kl_vs_value"] = figures.value_figure(on_dev, "true_kl", synthetic, choices)
    for name, fig in made.items():
        if write:
            report.figures[name] = save_figure(fig, figure_dir / f"{name}.png")
        plt.close(fig)
    return report
