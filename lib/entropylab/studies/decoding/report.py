"""The decoding study's report: its tables, figures and findings from the collected results, written to
``<outputs>/tables/<experiment>/`` and ``<outputs>/figures/<experiment>/`` (what ``08_decoding.ipynb`` shows). It
reads only the results CSVs and the saved greedy words, so it can be made again without the models.

Its text states the study's rules (:func:`rules`, the first finding on the synthetic corpus): quality is
``possible_loglik``, the mean ``ln q`` over the generated words the source can emit, with ``impossible``, the share
it cannot, beside it; a setting above :data:`~.tables.IMPOSSIBLE_TOLERANCE` impossible words is listed as ``emits
impossible words``, not ranked; at the matched diversity a gap within two standard errors is a tie
(:mod:`.tables`).

**D* is chosen on dev, qualities read on test.** Where the cells have a test side, everything the report shows (the
cell tables, the frontier, the matched table, the copying table, the findings, the figures; the greedy words of the
hyperfitting test and the examples were decoded on it) is the test side's, read once; the one choice it makes, each
model's matched diversity level ``D*``, is taken from the dev side's cells (:func:`.tables.matched_quality`).
Results without a test side (or without a ``side`` column) are reported as before, from their one side."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...analysis.figures import save_figure
from ...analysis.tables import figures_dir, tables_dir, write_table
from ...experiments.results import results_path
from ...training import store
from . import figures, tables
from .spec import RERUN

#: The columns of the readable tables: (metric, its short name).
READABLE = (("distinct_2", "distinct-2"), ("repetition", "repetition"), ("zipf", "Zipf s"),
            ("word_entropy", "H_gen"), ("js_heldout", "JS held-out"), ("surprisal_mean", "surprisal"),
            ("possible_loglik", "possible ll"), ("impossible", "impossible"), ("true_loglik", "true ll"))


@dataclass
class DecodingReport:
    """What the report made, per setting: the cell table (numbers, of the reported ``side``: test where there is
    one), the dev side's cell table (where the matched level is chosen; empty without a test side), its readable
    form, the frontier table (synthetic), the hyperfitting comparison, the example continuations, and the figures'
    paths."""

    experiment: str
    settings: list[str]
    side: str | None = None
    cells: dict[str, pd.DataFrame] = field(default_factory=dict)
    dev_cells: dict[str, pd.DataFrame] = field(default_factory=dict)
    readable: dict[str, pd.DataFrame] = field(default_factory=dict)
    frontiers: dict[str, pd.DataFrame] = field(default_factory=dict)
    matched: dict[str, pd.DataFrame] = field(default_factory=dict)
    copying: pd.DataFrame | None = None
    hyperfit: list[dict] = field(default_factory=list)
    examples: dict[str, pd.DataFrame] = field(default_factory=dict)
    hyperfit_history: pd.DataFrame | None = None
    figures: dict[str, Path] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    incomplete: str | None = None


def readable(cells: pd.DataFrame) -> pd.DataFrame:
    """``mean ± std`` (over sampling seeds) of the main metrics per model and decoder setting."""
    out = cells[["model", "decoder"]].copy()
    out["value"] = ["" if pd.isna(v) else f"{v:g}" for v in cells["value"]]
    for metric, name in READABLE:
        if metric not in cells.columns:
            continue
        spread = cells.get(f"{metric}_std")
        out[name] = [f"{m:.3f}" if s is None or pd.isna(s) else f"{m:.3f} ± {s:.3f}"
                     for m, s in zip(cells[metric], spread if spread is not None else [None] * len(cells),
                                     strict=True)]
    return out


def rules(tolerance: float = tables.IMPOSSIBLE_TOLERANCE, sides: bool = False) -> str:
    """The rules of the quality tables in one sentence (the report's first finding where quality is known); with
    ``sides`` (cells on dev and test) it says where the matched level is chosen and what is reported."""
    split = ("Every number reported is on the test prefixes; the one choice, each model's matched diversity level "
             "(the median diversity of its sampled settings), is made on the dev prefixes. " if sides else "")
    return (f"Rules: {split}quality is the mean ln q over the generated words the source can emit (possible ll); the "
            f"share of words it cannot emit (impossible) is shown beside it; a setting whose impossible share "
            f"exceeds {tolerance:g} (one word in {1 / tolerance:.0f}) is listed as '{tables.EMITS_IMPOSSIBLE}', "
            f"not ranked on the frontier or at the matched diversity (quality alone would reward it for the words "
            f"it gets wrong); at the matched diversity a gap to the best within two standard errors over sampling "
            f"seeds, 2 sqrt(se_a^2 + se_best^2), is a tie.")


def findings(report: DecodingReport) -> list[str]:
    """Plain sentences from the tables: the quality rules, which decoders give each model's best quality at its
    matched diversity (and which emit impossible words there), the greedy repetition of each model, and the
    hyperfitting verdicts."""
    lines = [rules(sides=bool(report.dev_cells))] if report.matched else []
    for setting, table in report.matched.items():
        for model, own in (table.groupby("model", sort=False) if len(table) else ()):
            ranked = own[own["verdict"].isin(["best or tie", "worse", tables.ONE_SEED])]
            emitting = own[own["verdict"] == tables.EMITS_IMPOSSIBLE]
            short = own[own["verdict"] == "does not reach the level"]["decoder"].tolist()
            head = f"{setting}, {model}: at diversity {own['diversity_level'].iloc[0]:.2f} nats "
            if len(ranked):
                best = ranked[ranked["verdict"] == "best or tie"]
                lowest = ranked.iloc[-1]
                head += (f"the best quality (with ties) comes from {', '.join(best['decoder'])} "
                         f"({ranked['quality_at_level'].max():.2f}, impossible "
                         f"{_shares(best['impossible_at_level'])}); lowest: {lowest['decoder']} "
                         f"({lowest['quality_at_level']:.2f})")
            else:
                head += "no decoder is ranked"
            if len(emitting):
                head += (f"; emitting impossible words (more than {tables.IMPOSSIBLE_TOLERANCE:g}), not ranked: "
                         + ", ".join(f"{d} {v:.0%}" for d, v in zip(emitting["decoder"],
                                                                    emitting["impossible_at_level"], strict=True)))
            lines.append(head + (f"; not reaching that diversity: {', '.join(short)}" if short else "") + ".")
    for setting, cells in report.cells.items():
        greedy = cells[cells["decoder"] == "greedy"].set_index("model")["repetition"]
        if len(greedy):
            lines.append(f"{setting}: greedy repetition (share of repeated words) "
                         + ", ".join(f"{m} {v:.2f}" for m, v in greedy.items()) + ".")
    for row in report.hyperfit:
        if str(row.get("verdict", "")).startswith("not comparable"):
            lines.append(f"{row['setting']}: hyperfitted against its starting model, greedy: {row['verdict']}.")
        elif not str(row.get("verdict", "")).startswith("not run"):
            lines.append(f"{row['setting']}: hyperfitted against its starting model, greedy: {row['verdict']} "
                         f"(repetition {row['hyperfitted_repetition']:.3f} vs "
                         f"{row['original_repetition']:.3f}; paired difference {row['difference']:+.3f} "
                         f"[{row['low']:+.3f}, {row['high']:+.3f}] over {row['prefixes']} prefixes).")
    if report.copying is not None and len(report.copying):
        recipes = hyperfit_recipes(report.hyperfit_history)
        for _, row in report.copying[report.copying["model"] == "hyperfitted"].iterrows():
            source, headlines = recipes.get(row["setting"], ("cross-entropy", None))
            base = report.copying[(report.copying["setting"] == row["setting"])
                                  & (report.copying["model"] == source)]
            lines.append(f"{row['setting']}: {row['fitted_4gram_share']:.0%} of the hyperfitted model's greedy word "
                         f"4-grams occur in the {headlines or ''} headlines it was fitted to".replace("  ", " ")
                         + (f" (the {source} model's: {base['fitted_4gram_share'].iloc[0]:.0%})" if len(base)
                            else "") + ".")
    return lines


def hyperfit_recipes(history: pd.DataFrame | None) -> dict[str, tuple[str, int | None]]:
    """Per setting, the model the hyperfitted one started from and its number of headlines (from the history)."""
    if history is None or "source_model" not in history.columns:
        return {}
    first = history.groupby("setting").first()
    return {setting: (row["source_model"], int(row["headlines"])) for setting, row in first.iterrows()}


def _shares(values: pd.Series) -> str:
    """``4.5 %`` for one share, ``4.5-6.8 %`` for several."""
    low, high = float(values.min()), float(values.max())
    return f"{low:.1%}" if round(low, 3) == round(high, 3) else f"{low:.1%}-{high:.1%}"


def incomplete_line(experiment: str, output_root: str | os.PathLike | None = None) -> str | None:
    """One line saying what the decoding stage left missing at its last pass (its status file), or ``None`` when it
    finished every job (or left no status: a study from before the status file)."""
    from .study import read_status

    status = read_status(experiment, output_root)
    if status is None or status.get("complete"):
        return None
    missing = [*status.get("errors", []), *status.get("missing", [])]
    return (f"INCOMPLETE: the decoding stage did not finish ({len(missing)} job(s): "
            + "; ".join(line.splitlines()[0] for line in missing[:5]) + ("; ..." if len(missing) > 5 else "")
            + "); these tables miss them. Run the study again to complete it.")


def build(experiment: str = "decoding", output_root: str | os.PathLike | None = None,
          write: bool = True) -> DecodingReport:
    """Make every table and figure of the study (module docstring); ``write=False`` makes them only."""
    import matplotlib.pyplot as plt

    results = tables.load(experiment, output_root)
    incomplete = incomplete_line(experiment, output_root)
    settings = tables.settings_of(results.generation)
    side = tables.reported_side(results.generation)
    report = DecodingReport(experiment, settings, side=side, incomplete=incomplete)
    on = f" ({side} prefixes)" if side == tables.TEST else ""
    recipes = hyperfit_recipes(results.hyperfit if len(results.hyperfit) else None)
    table_dir, figure_dir = tables_dir(experiment, output_root), figures_dir(experiment, output_root)
    made = {}
    for setting in settings:
        name = setting.replace("/", "_")
        cells = tables.cell_table(results.generation, setting)  # the reported side: test where there is one
        report.cells[setting] = cells
        dev = tables.cell_table(results.generation, setting, tables.DEV) if tables.has_dev(results.generation) \
            else None
        if dev is not None:
            report.dev_cells[setting] = dev
        report.readable[setting] = readable(cells)
        models = list(dict.fromkeys(cells.loc[~cells["kind"].isin(tables.REFERENCE_KINDS), "model"]))
        if tables.QUALITY in cells.columns and cells[tables.QUALITY].notna().any():
            report.frontiers[setting] = tables.frontier_table(cells)
            report.matched[setting] = tables.matched_quality(cells, dev)
            made[f"frontier_{name}"] = figures.frontier_figure(
                cells, models, f"{experiment}, {setting}{on}: quality against diversity, per decoder setting "
                               f"(mean ± sd over sampling seeds; open markers: more than "
                               f"{tables.IMPOSSIBLE_TOLERANCE:.0%} impossible words, not ranked)")
        if (~cells["kind"].isin(tables.REFERENCE_KINDS) & cells["value"].notna()).any():
            made[f"diversity_{name}"] = figures.diversity_figure(
                cells, "distinct_2", f"{experiment}, {setting}{on}: distinct-2 against each decoder's parameter")
        source, _ = recipes.get(setting, ("cross-entropy", None))
        report.hyperfit.append(tables.hyperfit_comparison(experiment, setting, output_root, original=source))
        if len(results.examples):
            report.examples[setting] = tables.example_table(results.examples, setting)
            report.examples[f"{setting} hyperfitted"] = tables.example_table(results.examples, setting,
                                                                              "hyperfitted")
        if write:
            write_table(report.readable[setting], table_dir, name,
                        f"{experiment}: {setting}{on}, mean ± sd over sampling seeds")
            write_table(cells, table_dir, f"{name}_numbers")
            if setting in report.frontiers:
                write_table(report.frontiers[setting], table_dir, f"{name}_frontier",
                            f"{experiment}: {setting}{on}, each decoder's settings on the quality-diversity frontier "
                            f"(quality: mean ln q over possible words; settings above "
                            f"{tables.IMPOSSIBLE_TOLERANCE:g} impossible words not eligible)")
                write_table(report.matched[setting], table_dir, f"{name}_matched",
                            f"{experiment}: {setting}{on}, each decoder's quality at the model's matched diversity"
                            + (" (the level chosen on the dev prefixes)" if dev is not None else "")
                            + f" (tie: within 2 standard errors; above {tables.IMPOSSIBLE_TOLERANCE:g} impossible "
                            f"words: not ranked)")
            for key in (setting, f"{setting} hyperfitted"):
                if len(report.examples.get(key, [])):
                    write_table(report.examples[key].reset_index(), table_dir,
                                f"examples_{key.replace('/', '_').replace(' ', '_')}",
                                f"{experiment}: {key}, continuations of the seed texts (sampling seed 0)")
    copying_csv = results_path(f"{experiment}-copying", output_root)
    if copying_csv.is_file():
        report.copying = store.read_csv(copying_csv, fix=RERUN)
    if len(results.hyperfit):
        report.hyperfit_history = results.hyperfit
        made["hyperfit"] = figures.hyperfit_figure(results.hyperfit)
    report.findings = findings(report)
    if write:
        from ...training.store import atomic_write_text

        write_table(pd.DataFrame(report.hyperfit), table_dir, "hyperfit",
                    f"{experiment}: greedy repetition, hyperfitted against its starting model")
        atomic_write_text(table_dir / "summary.md", (f"{incomplete}\n\n" if incomplete else "")
                          + f"# {experiment}: findings\n\n"
                          + "\n".join(f"- {line}" for line in report.findings) + "\n")
    for name, fig in made.items():
        if write:
            report.figures[name] = save_figure(fig, figure_dir / f"{name}.png")
        plt.close(fig)
    return report



__all__ = ["DecodingReport", "build", "findings", "readable", "rules"]
