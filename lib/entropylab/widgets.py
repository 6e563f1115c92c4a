"""The explorer: ipywidget controls for objective, weight (log scale), seed and seed text over finished runs.

Two layers:

* :class:`Explorer` holds the logic and no widget: it scans ``<outputs>/runs/**`` for finished runs
  (``COMPLETE`` marker), groups them by :class:`RunKey` ``(dataset, loss, weight, seed)``, answers "which run
  is shown for this selection" (:meth:`Explorer.select`), the curve data, the numbers table, the greedy
  continuation, and what a **Train** press would train where (:meth:`Explorer.train_plan`). pytest drives it
  without a browser.
* :class:`ExplorerWidget` (an ``ipywidgets.VBox``) wires controls to it. Every change re-renders in place
  (an ``Image`` and ``HTML`` widgets whose values are replaced, never appended outputs); errors show in the
  widget. A selection without a finished run says so, shows the nearest finished run, and offers **Train**,
  which runs :func:`entropylab.train.run` in a background thread with a progress bar (epochs and steps) and
  writes the run beside its neighbours, so the sweep and the explorer share run folders.

Weights are compared after rounding to 3 significant digits (:func:`canonical_weight`), so a slider value
such as ``10 ** 0.5`` trains and finds ``w = 3.16``.
"""

from __future__ import annotations

import html
import io
import math
import os
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import losses as losses_module
from . import paths, runs

OBJECTIVES: dict[str, str] = {
    "mse": "control (MSE)",
    "entropy_regularized": "entropy",
    "kl_regularized": "KL",
    "cross_entropy": "cross-entropy",
}
CONTROL_LOSS = "mse"
# (history column, panel title); the first four are the paper's figures, the rest are ours.
CURVES: tuple[tuple[str, str], ...] = (
    ("paper_entropy", "mean entropy (paper)"),
    ("paper_kl", "mean KL divergence (paper)"),
    ("loss", "training loss"),
    ("val_loss", "validation loss"),
    ("val_perplexity", "validation perplexity"),
    ("val_accuracy", "validation accuracy"),
)
DEFAULT_WEIGHTS = {"entropy_regularized": 1e-7, "kl_regularized": 10.0}
WEIGHT_EXPONENTS = (-9.0, 3.0)  # the slider covers at least 1e-9 .. 1e3 (both sweep grids)
WEIGHT_STEP = 0.5  # slider step, in powers of ten
N_WORDS = 10
SYNTHETIC_SEED_TEXTS = 6
EXPLORER_EXPERIMENT = "explorer"


def canonical_weight(weight: float) -> float:
    """``weight`` rounded to 3 significant digits (0 stays 0); a negative or non-finite weight is an error."""
    value = losses_module.check_weight(weight)
    return 0.0 if value == 0.0 else float(f"{value:.3g}")


@dataclass(frozen=True)
class RunKey:
    """What a run is grouped by in the explorer."""

    dataset: str
    loss: str
    weight: float
    seed: int

    @classmethod
    def of(cls, dataset: str, loss: str, weight: float, seed: int) -> RunKey:
        takes_weight = losses_module.loss_class(loss).takes_weight
        return cls(str(dataset), str(loss), canonical_weight(weight) if takes_weight else 0.0, int(seed))

    def describe(self) -> str:
        name = OBJECTIVES.get(self.loss, self.loss)
        weight = f" w={self.weight:g}" if losses_module.loss_class(self.loss).takes_weight else ""
        return f"{name}{weight} seed {self.seed} ({self.dataset})"


# The config fields that make two runs comparable (same data, sizes and schedule).
_PROFILE_IGNORES = ("loss", "weight", "seed", "head", "data_dir")


@dataclass
class FinishedRun(runs.RunRecord):
    """A finished run folder read back (:class:`runs.RunRecord`), with its experiment and finishing time."""

    experiment: str = "."
    finished_at: float = 0.0

    @property
    def key(self) -> RunKey:
        c = self.config
        return RunKey.of(c.get("dataset", "nyt"), c.get("loss", CONTROL_LOSS), c.get("weight", 0.0), c.get("seed", 0))

    @property
    def profile(self) -> tuple:
        """Everything but loss, weight, seed (and where the data lives): runs with equal profiles compare."""
        return tuple(sorted((k, repr(v)) for k, v in self.config.items() if k not in _PROFILE_IGNORES))

    @property
    def preference(self) -> tuple:
        """Among runs of one key, the shown one: full data first, then more epochs, then the newest."""
        c = self.config
        return (c.get("max_sequences") is None, int(c.get("epochs", 0)), self.finished_at)

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run_dir.name}"


def read_finished_runs(runs_root: str | os.PathLike) -> list[FinishedRun]:
    """Every finished run under ``runs_root`` (any depth) that has a history; others are left out."""
    runs_root = Path(runs_root)
    found = []
    for record in runs.completed_runs(runs_root):
        if record.history.empty or not record.config or "loss" not in record.config:
            continue
        try:
            losses_module.loss_class(record.config["loss"])
        except ValueError:  # a loss this version does not know: not shown
            continue
        experiment = record.run_dir.parent.relative_to(runs_root).as_posix() if record.run_dir.parent != runs_root \
            else "."
        finished = (record.run_dir / runs.COMPLETE).stat().st_mtime
        found.append(FinishedRun(record.run_dir, record.config, record.history, record.metrics, record.status,
                                 experiment, finished))
    return found


@dataclass
class Selection:
    """What the explorer shows for one choice of dataset, objective, weight and seed.

    ``shown`` is the finished run of the requested key or, when there is none (``exact`` is False), the
    nearest one (same seed and nearest weight in log scale, else the nearest seed); ``control`` is the MSE
    run with the same dataset, seed and profile as ``shown`` (else the closest there is).
    """

    requested: RunKey
    shown: FinishedRun | None
    control: FinishedRun | None
    exact: bool
    message: str


class Explorer:
    """The explorer's logic over ``<outputs>/runs`` (no widgets; see :class:`ExplorerWidget`).

    ``output_root``: the outputs folder (default ``$ENTROPYLAB_OUTPUTS`` or ``<project>/outputs``).
    """

    def __init__(self, output_root: str | os.PathLike | None = None, *, max_models: int = 16) -> None:
        self.outputs = paths.outputs_dir(output_root)
        self.runs_root = self.outputs / "runs"
        self.max_models = max_models
        self._models: OrderedDict[str, tuple[Any, Any, Any]] = OrderedDict()
        self._corpora: dict[str, Any] = {}
        self._figures: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.RLock()
        self.runs: list[FinishedRun] = []
        self.refresh()

    # -- the index ---------------------------------------------------------------------------------------

    def refresh(self) -> list[FinishedRun]:
        """Rescan the runs folder (after a sweep or a Train press added runs)."""
        found = read_finished_runs(self.runs_root)
        by_key: dict[RunKey, list[FinishedRun]] = {}
        for r in found:
            by_key.setdefault(r.key, []).append(r)
        for group in by_key.values():
            group.sort(key=lambda r: r.preference, reverse=True)
        with self._lock:  # readers see the old index or the new one, never half of one
            self.runs, self._by_key = found, by_key
        return found

    def datasets(self) -> list[str]:
        """Datasets with finished runs, ``nyt`` first."""
        return sorted({k.dataset for k in self._by_key}, key=lambda d: (d != "nyt", d))

    def objectives(self, dataset: str | None = None) -> list[str]:
        """The four objectives of the issue, then any other loss that has finished runs."""
        extra = sorted({k.loss for k in self._by_key if dataset in (None, k.dataset)} - set(OBJECTIVES))
        return [*OBJECTIVES, *extra]

    def weights(self, dataset: str, loss: str) -> list[float]:
        """Finished weights of one dataset and loss, ascending."""
        return sorted({k.weight for k in self._by_key if k.dataset == dataset and k.loss == loss})

    def seeds(self, dataset: str, loss: str | None = None) -> list[int]:
        return sorted({k.seed for k in self._by_key if k.dataset == dataset and loss in (None, k.loss)})

    def get(self, key: RunKey) -> FinishedRun | None:
        """The preferred finished run of exactly ``key`` (full data, most epochs, newest), or None."""
        group = self._by_key.get(key)
        return group[0] if group else None

    def nearest(self, key: RunKey) -> FinishedRun | None:
        """The finished run closest to ``key`` within its dataset and loss: same seed if there is one (then the
        nearest weight in log scale), else the nearest seed (then weight)."""
        candidates = [k for k in self._by_key if k.dataset == key.dataset and k.loss == key.loss]
        if not candidates:
            return None

        def distance(k: RunKey) -> tuple:
            if key.weight > 0 and k.weight > 0:
                dw = abs(math.log10(k.weight) - math.log10(key.weight))
            else:
                dw = 0.0 if k.weight == key.weight else math.inf
            return (k.seed != key.seed, dw, abs(k.seed - key.seed), k.seed, k.weight)

        return self.get(min(candidates, key=distance))

    def control_for(self, run: FinishedRun | None, dataset: str, seed: int) -> FinishedRun | None:
        """The control (MSE) run to draw against: same dataset and seed, the same profile if possible."""
        controls = [r for r in self.runs if r.key.dataset == dataset and r.key.loss == CONTROL_LOSS]
        if not controls:
            return None
        profile = run.profile if run is not None else None

        def rank(r: FinishedRun) -> tuple:
            return (r.key.seed == seed, r.profile == profile, -abs(r.key.seed - seed), r.preference)

        return max(controls, key=rank)

    def select(self, dataset: str, loss: str, weight: float, seed: int) -> Selection:
        """The run shown for a choice of controls, its control, and the message that says which it is."""
        key = RunKey.of(dataset, loss, weight, seed)
        exact = self.get(key)
        shown = exact or self.nearest(key)
        control = self.control_for(shown, key.dataset, key.seed)
        if exact is not None:
            message = f"Showing {key.describe()}: {exact.label}"
        elif shown is not None:
            message = (f"No finished run for {key.describe()}; showing the nearest, "
                       f"{shown.key.describe()}: {shown.label}")
        else:
            message = f"No finished run for {OBJECTIVES.get(key.loss, key.loss)} on {key.dataset} yet"
        return Selection(key, shown, control, exact is not None, message)

    # -- what is shown -----------------------------------------------------------------------------------

    @staticmethod
    def curve_data(selection: Selection) -> pd.DataFrame:
        """Long table of the curves drawn: columns ``epoch``, ``metric``, ``value``, ``run`` (``"selected"`` or
        ``"control"``) for every history column of :data:`CURVES` present."""
        frames = []
        pairs = [("selected", selection.shown)]
        if selection.control is not None and (selection.shown is None
                                              or selection.control.run_dir != selection.shown.run_dir):
            pairs.append(("control", selection.control))
        for role, run in pairs:
            if run is None:
                continue
            columns = [c for c, _ in CURVES if c in run.history.columns]
            long = run.history.melt(id_vars=["epoch"], value_vars=columns, var_name="metric", value_name="value")
            long["run"] = role
            frames.append(long)
        if not frames:
            return pd.DataFrame(columns=["epoch", "metric", "value", "run"])
        data = pd.concat(frames, ignore_index=True)
        data["epoch"] = data["epoch"].astype(int)
        return data

    def figure_png(self, selection: Selection, dpi: int = 80) -> bytes:
        """The curves of :meth:`curve_data` as one PNG (a 2 x 3 grid, the selected run against the control)."""
        cache_key = (str(selection.shown.run_dir) if selection.shown else None,
                     str(selection.control.run_dir) if selection.control else None, dpi)
        with self._lock:
            if cache_key in self._figures:
                return self._figures[cache_key]
        png = _draw_curves(self.curve_data(selection), _run_name(selection.shown), _run_name(selection.control),
                           dpi=dpi)
        with self._lock:
            self._figures[cache_key] = png
            while len(self._figures) > 64:
                self._figures.popitem(last=False)
        return png

    @staticmethod
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

    def seed_texts(self, dataset: str) -> list[str]:
        """Seed texts to offer: the paper's six for NYT, the first words of a few headlines otherwise."""
        from .generate import PAPER_SEED_TEXTS

        if dataset == "nyt":
            return list(PAPER_SEED_TEXTS)
        runs_of_dataset = [r for r in self.runs if r.key.dataset == dataset]
        if not runs_of_dataset:
            return list(PAPER_SEED_TEXTS)
        corpus = self.corpus_for(runs_of_dataset[0].config)
        texts: list[str] = []
        for headline in corpus.headlines:
            text = " ".join(headline.split()[:2])
            if text not in texts:
                texts.append(text)
            if len(texts) >= SYNTHETIC_SEED_TEXTS:
                break
        return texts

    # -- models and words --------------------------------------------------------------------------------

    def corpus_for(self, config: dict[str, Any]) -> Any:
        """The corpus a run was trained on (cached; a stored data folder that no longer exists is looked up)."""
        from .data import load_corpus

        dataset = config.get("dataset", "nyt")
        data_dir = config.get("data_dir")
        if data_dir is not None and not Path(data_dir).is_dir():
            data_dir = None
        options = (config.get("synthetic") or {}) if dataset == "synthetic" else {}
        cache_key = repr((dataset, data_dir, sorted(options.items())))
        with self._lock:
            if cache_key not in self._corpora:
                self._corpora[cache_key] = load_corpus(dataset, data_dir, **options)
            return self._corpora[cache_key]

    def model_for(self, run: FinishedRun) -> tuple[Any, Any, Any]:
        """``(model, corpus, config)`` of a finished run, loaded once and cached (least recently used dropped)."""
        from .train import load_trained

        cache_key = str(run.run_dir)
        with self._lock:
            if cache_key in self._models:
                self._models.move_to_end(cache_key)
                return self._models[cache_key]
            loaded = load_trained(run.run_dir, corpus=self.corpus_for(run.config))
            self._models[cache_key] = loaded
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return loaded

    def continuation(self, run: FinishedRun, seed_text: str, n_words: int = N_WORDS) -> tuple[list[str], str]:
        """The greedy next ``n_words`` words of ``run`` after ``seed_text``, and a note on skipped seed words."""
        from .data import UnknownWordsWarning
        from .generate import continue_text

        model, corpus, config = self.model_for(run)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownWordsWarning)
            result = continue_text(model, corpus, seed_text, n_words, head=config.head)
        notes = [str(w.message) for w in caught if issubclass(w.category, UnknownWordsWarning)]
        return result.words, "; ".join(notes)

    # -- training what is missing ------------------------------------------------------------------------

    def train_plan(self, selection: Selection) -> tuple[Any, Path]:
        """The config and run folder a Train press would create for ``selection.requested``.

        The config copies the profile (data, sizes, epochs, ...) of the shown run (else the control, else the
        defaults) and sets the requested loss, weight and seed; the folder is that run's experiment folder,
        so the new run sits beside its neighbours (``<outputs>/runs/explorer`` when there is none or the
        name is taken by another config).
        """
        from .data import resolve_dataset
        from .train import RunConfig

        key = selection.requested
        template = selection.shown or selection.control
        if template is not None:
            values = dict(template.config)
            values.update(loss=key.loss, weight=key.weight, seed=key.seed, head=None)
            config = RunConfig.from_dict(values)
            experiment = template.experiment
        else:
            dataset = key.dataset if key.dataset in ("nyt", "synthetic") else resolve_dataset("auto")
            config = RunConfig(dataset=dataset, loss=key.loss, weight=key.weight, seed=key.seed)
            experiment = EXPLORER_EXPERIMENT
        run_dir = self.runs_root / experiment / config.slug
        if not _folder_free_for(run_dir, config):
            run_dir = self.runs_root / EXPLORER_EXPERIMENT / config.dataset / config.slug
        return config, run_dir

    def train(self, config: Any, run_dir: str | os.PathLike,
              progress: Callable[[int, int, int, int], None] | None = None) -> Any:
        """Train (or reuse) one run with :func:`entropylab.train.run`, reporting ``progress(epoch, epochs,
        step, steps)``; the new run is cached and the index refreshed."""
        from .train import run

        callbacks = [_progress_callback(progress)] if progress is not None else []
        result = run(config, run_dir, callbacks=callbacks, verbose=0)
        if result.status != "complete":
            raise RuntimeError(f"training {config.slug} failed: {result.metrics.get('reason')}")
        if result.model is not None and result.corpus is not None:
            with self._lock:
                self._models[str(Path(run_dir))] = (result.model, result.corpus, result.config)
        self.refresh()
        return result


def _folder_free_for(run_dir: Path, config: Any) -> bool:
    """True when ``run_dir`` is absent or holds this same config (then :func:`train.run` reuses or resumes it)."""
    config_path = run_dir / runs.CONFIG
    if not config_path.is_file():
        return True
    stored = {k: v for k, v in runs.read_json(config_path).items() if k != "data_dir"}
    return stored == config.identity()


def _progress_callback(report: Callable[[int, int, int, int], None], every_s: float = 0.25) -> Any:
    """A Keras callback that calls ``report(epoch, epochs, step, steps)`` (1-based) at most every ``every_s``."""
    import keras

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._last = 0.0
            self._epoch = 0

        def _send(self, step: int, force: bool = False) -> None:
            now = time.monotonic()
            if force or now - self._last >= every_s:
                self._last = now
                report(self._epoch + 1, int(self.params.get("epochs") or 1), step, int(self.params.get("steps") or 1))

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch
            self._send(0, force=True)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._send(batch + 1)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._send(int(self.params.get("steps") or 1), force=True)

    return Progress()


def _fmt(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    return f"{number:.4g}" if math.isfinite(number) else str(number)


def _run_name(run: FinishedRun | None) -> str:
    return run.key.describe() if run is not None else ""


def _draw_curves(data: pd.DataFrame, selected: str, control: str, dpi: int = 80) -> bytes:
    """Render the curve grid to PNG bytes without pyplot (safe outside the main thread)."""
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


# ---------------------------------------------------------------------------------------------------------
# The widget
# ---------------------------------------------------------------------------------------------------------

_CSS = """
.entropylab-numbers, .entropylab-words {border-collapse: collapse; margin: 4px 0 8px 0; font-size: 13px}
.entropylab-numbers th, .entropylab-numbers td {padding: 2px 12px; text-align: right; white-space: nowrap}
.entropylab-numbers th {border-bottom: 1px solid #999; font-weight: 600}
.entropylab-numbers td:first-child, .entropylab-words td:first-child {text-align: left}
.entropylab-numbers tr[data-role='control'] td {color: #666; border-top: 1px solid #ddd}
.entropylab-words td {padding: 2px 12px}
.entropylab-continuation {font-family: monospace}
"""


def _widgets() -> Any:
    import ipywidgets

    return ipywidgets


def _vbox_base() -> type:
    return _widgets().VBox


class ExplorerWidget(_vbox_base()):
    """The explorer UI: display it (it is a ``VBox``). ``explorer``: an :class:`Explorer` (default: a new one
    over ``output_root``)."""

    def __init__(self, explorer: Explorer | None = None, output_root: str | os.PathLike | None = None,
                 **kwargs: Any) -> None:
        w = _widgets()
        self.explorer = explorer or Explorer(output_root)
        self._quiet = False
        self._training: threading.Thread | None = None
        self.selection: Selection | None = None

        self.dataset = w.Dropdown(description="dataset", layout=w.Layout(width="220px"))
        self.objective = w.ToggleButtons(description="objective", style={"button_width": "110px"})
        low, high = WEIGHT_EXPONENTS
        self.weight = w.FloatLogSlider(value=10.0, base=10, min=low, max=high, step=WEIGHT_STEP,
                                       description="weight", continuous_update=False, readout_format=".3g",
                                       layout=w.Layout(width="520px"))
        self.seed = w.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False,
                                layout=w.Layout(width="360px"))
        self.seed_text = w.Combobox(description="seed text", ensure_option=False, continuous_update=False,
                                    placeholder="type words, press Enter", layout=w.Layout(width="420px"))
        self.header = w.HTML()
        self.curves = w.Image(format="png", layout=w.Layout(max_width="960px"))
        self.numbers = w.HTML()
        self.words = w.HTML()
        self.error = w.HTML()
        self.train_button = w.Button(description="Train", icon="play", button_style="warning",
                                     layout=w.Layout(display="none"))
        self.train_note = w.HTML()
        self.progress = w.IntProgress(value=0, min=0, max=1, description="training",
                                      layout=w.Layout(display="none", width="420px"))
        self.progress_label = w.Label()
        for widget, name in ((self.header, "header"), (self.curves, "curves"), (self.numbers, "numbers"),
                             (self.words, "words"), (self.error, "error"), (self.train_button, "train"),
                             (self.progress, "progress"), (self.progress_label, "progress-label"),
                             (self.weight, "weight"), (self.seed, "seed"), (self.seed_text, "seed-text"),
                             (self.objective, "objective"), (self.dataset, "dataset")):
            widget.add_class(f"entropylab-{name}")
        controls = w.VBox([self.objective, w.HBox([self.weight, self.seed]), w.HBox([self.seed_text, self.dataset])])
        train_row = w.HBox([self.train_button, self.progress, self.progress_label])
        style = w.HTML(f"<style>{_CSS}</style>")
        super().__init__([style, controls, self.header, self.error, self.train_note, train_row, self.words,
                          self.curves, self.numbers], **kwargs)
        self.add_class("entropylab-explorer")

        self.train_button.on_click(lambda _: self._guard(self.start_training))
        for control in (self.weight, self.seed, self.seed_text):
            control.observe(lambda change: self._guard(self._on_change, change), names="value")
        self.objective.observe(lambda change: self._guard(self._on_objective, change), names="value")
        self.dataset.observe(lambda change: self._guard(self._on_dataset, change), names="value")
        self._guard(self._initialise)

    # -- plumbing ----------------------------------------------------------------------------------------

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a handler; an exception shows in the widget instead of a traceback in the notebook."""
        try:
            fn(*args)
        except Exception as exc:
            self.show_error(exc)

    def show_error(self, exc: BaseException) -> None:
        detail = html.escape("".join(traceback.format_exception(exc)))
        self.error.value = (f"<div style='color:#b00020'><b>Error:</b> {html.escape(str(exc) or type(exc).__name__)}"
                            f"<details><summary>details</summary><pre>{detail}</pre></details></div>")

    def _set_quietly(self, **values: Any) -> None:
        """Set control values (``name=value``) without triggering a refresh per control."""
        quiet, self._quiet = self._quiet, True
        try:
            for name, value in values.items():
                getattr(self, name).value = value
        finally:
            self._quiet = quiet

    def _initialise(self) -> None:
        datasets = self.explorer.datasets()
        if not datasets:
            from .data import resolve_dataset

            datasets = [resolve_dataset("auto")]
        quiet, self._quiet = self._quiet, True
        try:
            self.dataset.options = datasets
            self.dataset.value = datasets[0]
            self._configure_for_dataset(datasets[0])
        finally:
            self._quiet = quiet
        self.update()

    def _configure_for_dataset(self, dataset: str) -> None:
        objectives = self.explorer.objectives(dataset)
        self.objective.options = [(OBJECTIVES.get(o, o), o) for o in objectives]
        with_runs = [o for o in objectives if self.explorer.weights(dataset, o)]
        preferred = "kl_regularized" if "kl_regularized" in with_runs else (with_runs or objectives)[0]
        self.objective.value = preferred
        texts = self.explorer.seed_texts(dataset)
        self.seed_text.options = texts
        self.seed_text.value = "New York" if "New York" in texts else texts[0]
        self._configure_for_objective(dataset, preferred)

    def _configure_for_objective(self, dataset: str, loss: str) -> None:
        takes_weight = losses_module.loss_class(loss).takes_weight
        self.weight.disabled = not takes_weight
        weights = [x for x in self.explorer.weights(dataset, loss) if x > 0]
        exponents = [math.log10(x) for x in weights]
        self.weight.min = min([WEIGHT_EXPONENTS[0], *[math.floor(e) for e in exponents]])
        self.weight.max = max([WEIGHT_EXPONENTS[1], *[math.ceil(e) for e in exponents]])
        if takes_weight:
            default = DEFAULT_WEIGHTS.get(loss, 1.0)
            if weights:
                default = min(weights, key=lambda x: abs(math.log10(x) - math.log10(default)))
            self.weight.value = default
        seeds = self.explorer.seeds(dataset)
        self.seed.max = max([9, *[s + 1 for s in seeds]])
        seeds_of_loss = self.explorer.seeds(dataset, loss)
        if seeds_of_loss and self.seed.value not in seeds_of_loss:
            self.seed.value = seeds_of_loss[0]

    def _on_dataset(self, change: dict) -> None:
        if self._quiet:
            return
        quiet, self._quiet = self._quiet, True
        try:
            self._configure_for_dataset(change["new"])
        finally:
            self._quiet = quiet
        self.update()

    def _on_objective(self, change: dict) -> None:
        if self._quiet:
            return
        quiet, self._quiet = self._quiet, True
        try:
            self._configure_for_objective(self.dataset.value, change["new"])
        finally:
            self._quiet = quiet
        self.update()

    def _on_change(self, change: dict) -> None:
        if self._quiet:
            return
        if change["owner"] is self.weight:
            self._snap_weight()
        self.update()

    def _snap_weight(self) -> None:
        """Move the slider onto a finished run's weight when one lies within half a slider step."""
        weights = [x for x in self.explorer.weights(self.dataset.value, self.objective.value) if x > 0]
        value = float(self.weight.value)
        if not weights or value <= 0:
            return
        nearest = min(weights, key=lambda x: abs(math.log10(x) - math.log10(value)))
        if abs(math.log10(nearest) - math.log10(value)) <= WEIGHT_STEP / 2 + 1e-9 and nearest != value:
            self._set_quietly(weight=nearest)

    # -- showing -----------------------------------------------------------------------------------------

    def current_key(self) -> RunKey:
        return RunKey.of(self.dataset.value, self.objective.value, float(self.weight.value), int(self.seed.value))

    def update(self) -> None:
        """Recompute the selection and replace the shown curves, numbers, words and header in place.

        Everything is computed first and the header is set last, so a header naming a run means the rest
        already shows that run.
        """
        self.error.value = ""
        key = self.current_key()
        selection = self.explorer.select(key.dataset, key.loss, key.weight, key.seed)
        self.selection = selection
        colour = "#1b5e20" if selection.exact else "#8a6d00"
        header = (f"<div class='entropylab-shown' data-exact='{str(selection.exact).lower()}' "
                  f"style='color:{colour}'><b>{html.escape(selection.message)}</b></div>")
        if selection.shown is None:
            self.curves.layout.display = "none"
            self.numbers.value = ""
            self.words.value = ("<i>No finished run to show. Run <code>make reproduce</code> or the sweep, or press "
                                "Train.</i>")
        else:
            png = self.explorer.figure_png(selection)
            numbers = self.explorer.table_html(selection)
            words = self._words_html(selection)
            self.curves.value = png
            self.curves.layout.display = None
            self.numbers.value = numbers
            self.words.value = words
        self._show_train_offer(selection)
        self.header.value = header

    def _words_html(self, selection: Selection) -> str:
        seed_text = str(self.seed_text.value or "").strip()
        if not seed_text:
            return "<i>Type a seed text to see the greedy next 10 words.</i>"
        rows = []
        notes = []
        shown = [("selected", selection.shown)]
        if selection.control is not None and selection.control.run_dir != selection.shown.run_dir:
            shown.append(("control", selection.control))
        for role, run in shown:
            words, note = self.explorer.continuation(run, seed_text)
            if note and note not in notes:
                notes.append(note)
            rows.append(f"<tr data-role='{role}'><td>{html.escape(run.key.describe())}</td>"
                        f"<td class='entropylab-continuation'>[{html.escape(' '.join(words))}]</td></tr>")
        note_html = f"<div style='color:#8a6d00'>{html.escape(' '.join(notes))}</div>" if notes else ""
        return (f"<div><b>Greedy next {N_WORDS} words after “{html.escape(seed_text)}”</b>"
                f"<table class='entropylab-words'>{''.join(rows)}</table>{note_html}</div>")

    def _show_train_offer(self, selection: Selection) -> None:
        busy = self._training is not None and self._training.is_alive()
        if selection.exact:
            self.train_button.layout.display = "none"
            self.train_note.value = ""
            return
        config, run_dir = self.explorer.train_plan(selection)
        self.train_button.layout.display = None
        self.train_button.disabled = busy
        self.train_button.description = f"Train {selection.requested.describe()}"
        self.train_button.layout.width = "auto"
        self.train_note.value = (f"<span>Train writes <code>{html.escape(_relative(run_dir, self.explorer.outputs))}"
                                 f"</code> ({config.epochs} epoch{'s' if config.epochs != 1 else ''}, "
                                 f"{html.escape(str(config.dataset))} corpus) in the "
                                 f"background.</span>")

    # -- training ----------------------------------------------------------------------------------------

    def start_training(self) -> threading.Thread | None:
        """Train the current selection's missing run in a background thread (one at a time)."""
        if self._training is not None and self._training.is_alive():
            self.progress_label.value = "a run is already training; wait for it to finish"
            return None
        selection = self.selection or self.explorer.select(*_astuple(self.current_key()))
        if selection.exact:
            return None
        config, run_dir = self.explorer.train_plan(selection)
        self.train_button.disabled = True
        self.progress.layout.display = None
        self.progress.bar_style = "info"
        self.progress.value = 0
        self.progress_label.value = f"starting {config.slug} ..."

        def report(epoch: int, epochs: int, step: int, steps: int) -> None:
            self.progress.max = max(1, epochs * steps)
            self.progress.value = min(self.progress.max, (epoch - 1) * steps + step)
            self.progress_label.value = f"{config.slug}: epoch {epoch}/{epochs}, step {step}/{steps}"

        def work() -> None:
            try:
                self.explorer.train(config, run_dir, progress=report)
                self.progress.bar_style = "success"
                self.progress.value = self.progress.max
                self.progress_label.value = f"finished {config.slug} in {_relative(run_dir, self.explorer.outputs)}"
                self._guard(self._after_training)
            except Exception as exc:
                self.progress.bar_style = "danger"
                self.progress_label.value = f"training {config.slug} failed"
                self.show_error(exc)
            finally:
                self.train_button.disabled = False

        thread = threading.Thread(target=work, name=f"entropylab-train-{config.slug}", daemon=True)
        self._training = thread
        thread.start()
        return thread

    def _after_training(self) -> None:
        dataset = self.dataset.value
        quiet, self._quiet = self._quiet, True
        try:
            datasets = self.explorer.datasets()
            if list(self.dataset.options) != datasets and datasets:
                self.dataset.options = datasets
                self.dataset.value = dataset if dataset in datasets else datasets[0]
            seeds = self.explorer.seeds(dataset)
            self.seed.max = max([self.seed.max, *[s + 1 for s in seeds]])
        finally:
            self._quiet = quiet
        self.update()


def _astuple(key: RunKey) -> tuple[str, str, float, int]:
    return key.dataset, key.loss, key.weight, key.seed


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).relative_to(base.parent).as_posix()
    except ValueError:
        return str(path)


def explore(output_root: str | os.PathLike | None = None) -> ExplorerWidget:
    """The explorer over ``<outputs>/runs`` (``$ENTROPYLAB_OUTPUTS`` or ``<project>/outputs`` by default)."""
    return ExplorerWidget(output_root=output_root)

