"""What the explorer draws: the curves (PNG, cached), the numbers table, the words, header and notes (HTML), its CSS.

It reads :mod:`.index` (what a selection is); the index never imports this module."""

from __future__ import annotations

import html
import io
import math
import threading
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .index import N_WORDS, FinishedRun, Selection

# (history column, panel title); the first four are the paper's figures, the rest are ours.
CURVES: tuple[tuple[str, str], ...] = (
    ("paper_entropy", "mean entropy (paper)"),
    ("paper_kl", "mean KL divergence (paper)"),
    ("loss", "training loss"),
    ("val_loss", "validation loss"),
    ("val_perplexity", "validation perplexity"),
    ("val_accuracy", "validation accuracy"),
)

CSS = """
.entropylab-numbers, .entropylab-words {border-collapse: collapse; margin: 4px 0 8px 0; font-size: 13px}
.entropylab-numbers th, .entropylab-numbers td {padding: 2px 12px; text-align: right; white-space: nowrap}
.entropylab-numbers th {border-bottom: 1px solid #999; font-weight: 600}
.entropylab-numbers td:first-child, .entropylab-words td:first-child {text-align: left}
.entropylab-numbers tr[data-role='control'] td {color: #666; border-top: 1px solid #ddd}
.entropylab-words td {padding: 2px 12px}
.entropylab-continuation {font-family: monospace}
"""


def _fmt(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    return f"{number:.4g}" if math.isfinite(number) else str(number)


def shown_pairs(selection: Selection) -> list[tuple[str, FinishedRun]]:
    """``(role, run)`` of what is drawn: the shown run (``"selected"``), then its control unless it is the same."""
    pairs = [("selected", selection.shown)] if selection.shown is not None else []
    control = selection.control
    if control is not None and (selection.shown is None or control.run_dir != selection.shown.run_dir):
        pairs.append(("control", control))
    return pairs


def curve_data(selection: Selection) -> pd.DataFrame:
    """Long table of the curves drawn: columns ``epoch``, ``metric``, ``value``, ``run`` (``"selected"`` or
    ``"control"``) for every history column of :data:`CURVES` present."""
    frames = []
    for role, run in shown_pairs(selection):
        columns = [c for c, _ in CURVES if c in run.history.columns]
        long = run.history.melt(id_vars=["epoch"], value_vars=columns, var_name="metric", value_name="value")
        long["run"] = role
        frames.append(long)
    if not frames:
        return pd.DataFrame(columns=["epoch", "metric", "value", "run"])
    data = pd.concat(frames, ignore_index=True)
    data["epoch"] = data["epoch"].astype(int)
    return data


def curves_png(data: pd.DataFrame, selected: str, control: str, dpi: int = 80) -> bytes:
    """The curve grid (2 x 3, :data:`CURVES`) of :func:`curve_data` as PNG bytes, without pyplot (thread-safe)."""
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 6.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 3).ravel()
    palette = {"selected": "#c0392b", "control": "#7f8c8d"}
    names = {"selected": selected, "control": f"control: {control}"}
    for ax, (column, title) in zip(axes, CURVES, strict=True):
        part = data[data["metric"] == column]
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("epoch")
        if part.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
            continue
        for role, rows in part.groupby("run", sort=False):
            sns.lineplot(data=rows, x="epoch", y="value", ax=ax, marker="o", color=palette[role],
                         label=names[role], linestyle="-" if role == "selected" else "--")
        values = part["value"].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values) and values.min() > 0 and values.max() / values.min() > 100:
            ax.set_yscale("log")
        ax.set_ylabel("")
        ax.xaxis.get_major_locator().set_params(integer=True)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class FigureCache:
    """The curves of a selection as PNG bytes (:func:`curve_data`, :func:`curves_png`), the last ``size`` kept per
    shown run, control, their names (:meth:`Selection.name`) and resolution; safe to call from several threads."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._pngs: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def png(self, selection: Selection, dpi: int = 80) -> bytes:
        shown, control = selection.shown, selection.control
        names = (selection.name(shown) if shown else "", selection.name(control) if control else "")
        key = (str(shown.run_dir) if shown else None, str(control.run_dir) if control else None, names, dpi)
        with self._lock:
            if key in self._pngs:
                self._pngs.move_to_end(key)
                return self._pngs[key]
        png = curves_png(curve_data(selection), *names, dpi=dpi)
        with self._lock:
            self._pngs[key] = png
            while len(self._pngs) > self.size:
                self._pngs.popitem(last=False)
        return png


def table_html(selection: Selection) -> str:
    """The numbers behind the curves: one row per epoch of the shown run, then the control's last epoch."""
    if selection.shown is None:
        return ""
    columns = [c for c, _ in CURVES if c in selection.shown.history.columns]
    titles = dict(CURVES)
    head = "".join(f"<th>{html.escape(titles[c])}</th>" for c in columns)
    rows = []
    for _, row in selection.shown.history.iterrows():
        cells = "".join(f"<td>{_fmt(row[c])}</td>" for c in columns)
        rows.append(f"<tr data-role='selected'><td>epoch {int(row['epoch'])}</td>{cells}</tr>")
    control = selection.control
    if control is not None and control.run_dir != selection.shown.run_dir:
        last = control.history.iloc[-1]
        cells = "".join(f"<td>{_fmt(last[c]) if c in last else ''}</td>" for c in columns)
        rows.append(f"<tr data-role='control'><td>control, epoch {int(last['epoch'])}</td>{cells}</tr>")
    return ("<table class='entropylab-numbers'><thead><tr><th></th>" + head + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def words_html(seed_text: str, rows: Sequence[tuple[str, str, Sequence[str]]], notes: Sequence[str] = (),
               n_words: int = N_WORDS, decoder: str = "greedy") -> str:
    """The continuations after ``seed_text`` by ``decoder`` (its description): ``rows`` of ``(role, run
    description, words)``, then the notes (seed words that were skipped)."""
    body = "".join(f"<tr data-role='{role}'><td>{html.escape(name)}</td>"
                   f"<td class='entropylab-continuation'>[{html.escape(' '.join(words))}]</td></tr>"
                   for role, name, words in rows)
    note_html = f"<div style='color:#8a6d00'>{html.escape(' '.join(notes))}</div>" if notes else ""
    title = "Greedy" if decoder == "greedy" else html.escape(decoder)
    return (f"<div><b>{title} next {n_words} words after “{html.escape(seed_text)}”</b>"
            f"<table class='entropylab-words'>{body}</table>{note_html}</div>")


NO_SEED_TEXT_HTML = f"<i>Type a seed text to see the greedy next {N_WORDS} words.</i>"
NO_RUN_HTML = "<i>No finished run to show. Run <code>make reproduce</code> or the sweep, or press Train.</i>"


def header_html(selection: Selection) -> str:
    """Which run is shown (``data-exact`` says whether it is the one asked for)."""
    colour = "#1b5e20" if selection.exact else "#8a6d00"
    return (f"<div class='entropylab-shown' data-exact='{str(selection.exact).lower()}' "
            f"style='color:{colour}'><b>{html.escape(selection.message)}</b></div>")


def train_note_html(run_path: str, epochs: int, dataset: str) -> str:
    """What a Train press writes where."""
    return (f"<span>Train writes <code>{html.escape(run_path)}</code> ({epochs} epoch{'s' if epochs != 1 else ''}, "
            f"{html.escape(str(dataset))} corpus) in the background.</span>")


def error_html(exc: BaseException) -> str:
    """An exception as a short red line with its traceback folded away."""
    detail = html.escape("".join(traceback.format_exception(exc)))
    return (f"<div style='color:#b00020'><b>Error:</b> {html.escape(str(exc) or type(exc).__name__)}"
            f"<details><summary>details</summary><pre>{detail}</pre></details></div>")
