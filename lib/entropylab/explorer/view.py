"""The explorer's ipywidgets UI (:class:`ExplorerWidget`, :func:`explore`): controls wired to an Explorer."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import objectives
from ..decoding import DECODERS, get_decoder
from . import render
from .index import SIZES, Explorer, RunKey, Selection, canonical_weight

WEIGHT_EXPONENTS = (-9.0, 3.0)  # a weight slider covers at least 1e-9 .. 1e3 (both sweep grids)
WEIGHT_STEP = 0.5  # weight slider step, in powers of ten
EXPONENT_EXPONENTS = (-2.0, 1.0)  # an exponent slider covers at least 0.01 .. 10, within the objective's range
EXPONENT_STEP = 0.05  # in powers of ten
SMOOTHING_STEP = 0.01
PREFERRED_OBJECTIVE = objectives.KL
PARAMETER_NAMES = ("weight", "smoothing", "exponent", "none")


@dataclass(frozen=True)
class SliderRange:
    """The slider of one objective's parameter: log scale (``low``/``high``/``step`` in powers of ten) or not."""

    log: bool
    low: float
    high: float
    step: float

    def values(self) -> tuple[float, float]:
        """The smallest and largest value the slider offers."""
        return (10 ** self.low, 10 ** self.high) if self.log else (self.low, self.high)

    def distance(self, a: float, b: float) -> float:
        """How far apart two values are on this slider, in steps."""
        if self.log:
            return abs(math.log10(a) - math.log10(b)) / self.step if a > 0 and b > 0 else math.inf
        return abs(a - b) / self.step


def slider_range(loss: str, finished: Sequence[float] = ()) -> SliderRange:
    """The slider for ``loss``'s parameter: it covers the objective's valid range (weights and exponents on a
    log scale, clipped to the range; smoothing linear in ``[0, 1)``) and every ``finished`` value in it."""
    objective = objectives.get(loss)
    if objective.parameter == "smoothing":
        high = objective.high if objective.high_inclusive else objective.high - SMOOTHING_STEP
        high = max([high, *[x for x in finished if x < objective.high]])
        return SliderRange(False, objective.low, round(high, 6), SMOOTHING_STEP)
    (low, high), step = (EXPONENT_EXPONENTS, EXPONENT_STEP) if objective.parameter == "exponent" \
        else (WEIGHT_EXPONENTS, WEIGHT_STEP)
    exponents = [math.log10(x) for x in finished if x > 0]
    low = min([low, *[math.floor(e) for e in exponents]])
    high = max([high, *[math.ceil(e) for e in exponents]])
    if math.isfinite(objective.high) and objective.high > 0:
        high = min(high, math.log10(objective.high))
    return SliderRange(True, low, high, step)


def _widgets() -> Any:
    import ipywidgets

    return ipywidgets


def _set_range(slider: Any, low: float, high: float) -> None:
    """Set a slider's bounds in the order that never has ``min > max`` in between."""
    if low > slider.max:
        slider.max, slider.min = high, low
    else:
        slider.min, slider.max = low, high


class ExplorerWidget(_widgets().VBox):
    """The explorer UI: display it (it is a ``VBox``). ``explorer``: an :class:`Explorer` (default: a new one
    over ``output_root``).

    Every change re-renders in place (an ``Image`` and ``HTML`` widgets whose values are replaced); errors show
    in the widget. The objective's parameter has one slider named for it (``weight``, ``exponent``: log scale;
    ``smoothing``: linear; disabled without one). Where the chosen dataset's runs differ in model size (``E/U``)
    or data size (``max_sequences``, ``all``), a dropdown of each such size shows (hidden otherwise), and the
    parameter and seed move onto values that exist at the chosen sizes. A selection without a finished run says
    so, shows the nearest, and offers **Train**, which trains it in a background thread with a progress bar.
    """

    def __init__(self, explorer: Explorer | None = None, output_root: str | os.PathLike | None = None,
                 **kwargs: Any) -> None:
        w = _widgets()
        self.explorer = explorer or Explorer(output_root)
        self.figures = render.FigureCache()
        self._quiet = False
        self._training: threading.Thread | None = None
        self.selection: Selection | None = None
        self.slider = slider_range(PREFERRED_OBJECTIVE)

        self.dataset = w.Dropdown(description="dataset", layout=w.Layout(width="220px"))
        # model and data size: shown only where the dataset's runs have more than one (a scale study's)
        self.model_size = w.Dropdown(description="model (E/U)", style={"description_width": "initial"},
                                     layout=w.Layout(width="180px", display="none"))
        self.data_size = w.Dropdown(description="data (sequences)", style={"description_width": "initial"},
                                    layout=w.Layout(width="220px", display="none"))
        self.objective = w.ToggleButtons(description="objective", style={"button_width": "160px"})
        low, high = WEIGHT_EXPONENTS
        self.log_slider = w.FloatLogSlider(value=10.0, base=10, min=low, max=high, step=WEIGHT_STEP,
                                           description="weight", continuous_update=False, readout_format=".3g",
                                           layout=w.Layout(width="520px"))
        self.linear_slider = w.FloatSlider(value=0.1, min=0.0, max=1.0 - SMOOTHING_STEP, step=SMOOTHING_STEP,
                                           description="smoothing", continuous_update=False, readout_format=".2f",
                                           layout=w.Layout(width="520px", display="none"))
        self.seed = w.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False,
                                layout=w.Layout(width="360px"))
        self.seed_text = w.Combobox(description="seed text", ensure_option=False, continuous_update=False,
                                    placeholder="type words, press Enter", layout=w.Layout(width="420px"))
        self.decoder = w.Dropdown(options=list(DECODERS), value="greedy", description="decoder",
                                  layout=w.Layout(width="220px"))
        self.decoder_value = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="value",
                                           continuous_update=False, readout_format=".4g",
                                           layout=w.Layout(width="360px", display="none"))
        self.sampling_seed = w.IntSlider(value=0, min=0, max=99, description="sampling seed",
                                         continuous_update=False, style={"description_width": "initial"},
                                         layout=w.Layout(width="300px", display="none"))
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
                             (self.log_slider, "parameter"), (self.linear_slider, "parameter"),
                             (self.seed, "seed"), (self.seed_text, "seed-text"), (self.decoder, "decoder"),
                             (self.decoder_value, "decoder-value"), (self.sampling_seed, "sampling-seed"),
                             (self.objective, "objective"), (self.dataset, "dataset"),
                             (self.model_size, "model-size"), (self.data_size, "data-size")):
            widget.add_class(f"entropylab-{name}")
        controls = w.VBox([self.objective, w.HBox([self.log_slider, self.linear_slider, self.seed]),
                           w.HBox([self.seed_text, self.dataset, self.model_size, self.data_size]),
                           w.HBox([self.decoder, self.decoder_value, self.sampling_seed])])
        train_row = w.HBox([self.train_button, self.progress, self.progress_label])
        style = w.HTML(f"<style>{render.CSS}</style>")
        super().__init__([style, controls, self.header, self.error, self.train_note, train_row, self.words,
                          self.curves, self.numbers], **kwargs)
        self.add_class("entropylab-explorer")

        self.train_button.on_click(lambda _: self._guard(self.start_training))
        for control in (self.log_slider, self.linear_slider, self.seed, self.seed_text):
            control.observe(lambda change: self._guard(self._on_change, change), names="value")
        self.objective.observe(lambda change: self._guard(self._on_objective, change), names="value")
        self.decoder.observe(lambda change: self._guard(self._on_decoder, change), names="value")
        for control in (self.decoder_value, self.sampling_seed):
            control.observe(lambda change: self._guard(self._refresh_words), names="value")
        self.dataset.observe(lambda change: self._guard(self._on_dataset, change), names="value")
        for control in (self.model_size, self.data_size):
            control.observe(lambda change: self._guard(self._on_size, change), names="value")
        self._guard(self._initialise)

    def size_controls(self) -> dict[str, Any]:
        """The dropdown of each size of :data:`entropylab.explorer.index.SIZES`."""
        return {"model": self.model_size, "data": self.data_size}

    def chosen_sizes(self) -> tuple[str | None, str | None]:
        """``(model size, data size)`` as the controls stand; ``None`` for a size whose control is hidden (the
        dataset's runs have one value of it, or none)."""
        controls = self.size_controls()
        chosen = [controls[size].value if controls[size].layout.display != "none" else None for size in SIZES]
        return chosen[0], chosen[1]

    @property
    def parameter(self) -> Any:
        """The slider of the current objective's parameter (its description says what the parameter is)."""
        return self.log_slider if self.slider.log else self.linear_slider

    # -- plumbing ----------------------------------------------------------------------------------------

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a handler; an exception shows in the widget instead of a traceback in the notebook."""
        try:
            fn(*args)
        except Exception as exc:
            self.show_error(exc)

    def show_error(self, exc: BaseException) -> None:
        self.error.value = render.error_html(exc)

    def _quietly(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` with control changes not triggering a refresh each."""
        quiet, self._quiet = self._quiet, True
        try:
            fn(*args)
        finally:
            self._quiet = quiet

    def _initialise(self) -> None:
        datasets = self.explorer.datasets()
        if not datasets:
            from ..data import resolve_dataset

            datasets = [resolve_dataset("auto")]

        def configure() -> None:
            self.dataset.options = datasets
            self.dataset.value = datasets[0]
            self._configure_for_dataset(datasets[0])

        self._quietly(configure)
        self.update()

    def _configure_for_dataset(self, dataset: str) -> None:
        names = self.explorer.objectives()
        self.objective.options = [(objectives.get(o).label, o) for o in names]
        with_runs = [o for o in names if self.explorer.weights(dataset, o)]
        preferred = PREFERRED_OBJECTIVE if PREFERRED_OBJECTIVE in with_runs else (with_runs or names)[0]
        self.objective.value = preferred
        texts = self.explorer.seed_texts(dataset)
        self.seed_text.options = texts
        self.seed_text.value = "New York" if "New York" in texts else texts[0]
        self._configure_sizes(dataset, preferred)
        self._configure_for_objective(dataset, preferred)

    def _configure_sizes(self, dataset: str, loss: str) -> None:
        """Offer the dataset's model and data sizes, each only where there is more than one, starting on the
        sizes of the run shown for ``loss`` with the sizes left open (:meth:`Explorer.get`: the most data, then
        the largest model)."""
        varying = self.explorer.varying_sizes(dataset)
        default = self.explorer.select(dataset, loss, objectives.get(loss).default, int(self.seed.value)).shown
        for size, control in self.size_controls().items():
            values = self.explorer.sizes(dataset, size)
            control.options = values
            if values:
                start = getattr(default.key, size) if default is not None else None
                control.value = start if start in values else values[-1]
            control.layout.display = None if size in varying else "none"

    def _configure_for_objective(self, dataset: str, loss: str) -> None:
        objective = objectives.get(loss)
        model, data = self.chosen_sizes()
        self.slider = slider_range(loss, self.explorer.weights(dataset, loss))  # the same range at every size
        finished = self.explorer.weights(dataset, loss, model, data)
        active, hidden = (self.log_slider, self.linear_slider) if self.slider.log \
            else (self.linear_slider, self.log_slider)
        hidden.layout.display = "none"
        active.layout.display = None
        _set_range(active, self.slider.low, self.slider.high)
        active.step = self.slider.step
        name = objectives.parameter_name(loss)
        for slider in (active, hidden):  # the shown slider's class says what it sets: entropylab-weight, ...
            for other in PARAMETER_NAMES:
                slider.remove_class(f"entropylab-{other}")
        active.add_class(f"entropylab-{name}")
        active.description = name
        active.disabled = not objective.takes_parameter
        if objective.takes_parameter:
            low, high = self.slider.values()
            default = min(max(objective.default, low), high)
            on_slider = [x for x in finished if low <= x <= high and (x > 0 or not self.slider.log)]
            if on_slider:
                default = min(on_slider, key=lambda x: self.slider.distance(x, objective.default))
            active.value = default
        seeds = self.explorer.seeds(dataset)
        self.seed.max = max([9, *[s + 1 for s in seeds]])
        seeds_of_loss = self.explorer.seeds(dataset, loss, model, data)
        if seeds_of_loss and self.seed.value not in seeds_of_loss:
            self.seed.value = seeds_of_loss[0]

    def _follow_sizes(self) -> None:
        """After a size changed: move the parameter onto the nearest value with a run at the chosen sizes, and
        the seed onto the first seed with one, unless they already have one there."""
        dataset, loss = self.dataset.value, self.objective.value
        model, data = self.chosen_sizes()
        finished = self.explorer.weights(dataset, loss, model, data)
        if objectives.get(loss).takes_parameter and finished:
            value = float(self.parameter.value)
            low, high = self.slider.values()
            on_slider = [x for x in finished if low <= x <= high and (x > 0 or not self.slider.log)]
            if on_slider and canonical_weight(value) not in on_slider:
                self.parameter.value = min(on_slider, key=lambda x: self.slider.distance(x, value))
        seeds = self.explorer.seeds(dataset, loss, model, data)
        if seeds and self.seed.value not in seeds:
            self.seed.value = seeds[0]

    def _on_dataset(self, change: dict) -> None:
        if not self._quiet:
            self._quietly(self._configure_for_dataset, change["new"])
            self.update()

    def _on_size(self, change: dict) -> None:
        if not self._quiet:
            self._quietly(self._follow_sizes)
            self.update()

    def _on_objective(self, change: dict) -> None:
        if not self._quiet:
            self._quietly(self._configure_for_objective, self.dataset.value, change["new"])
            self.update()

    def _on_change(self, change: dict) -> None:
        if self._quiet:
            return
        if change["owner"] is self.parameter:
            self._snap_parameter()
        self.update()

    def _snap_parameter(self) -> None:
        """Move the slider onto a finished run's value when one lies within half a slider step."""
        value = float(self.parameter.value)
        finished = self.explorer.weights(self.dataset.value, self.objective.value, *self.chosen_sizes())
        near = [x for x in finished if self.slider.distance(x, value) <= 0.5 + 1e-9]
        if near:
            nearest = min(near, key=lambda x: self.slider.distance(x, value))
            if nearest != value:
                self._quietly(setattr, self.parameter, "value", nearest)

    # -- showing -----------------------------------------------------------------------------------------

    def current_key(self) -> RunKey:
        """The key the controls ask for (a size whose control is hidden left open: ``None``)."""
        return RunKey.of(self.dataset.value, self.objective.value, float(self.parameter.value), int(self.seed.value),
                         *self.chosen_sizes())

    def update(self) -> None:
        """Recompute the selection and replace the shown curves, numbers, words and header in place.

        Everything is computed first and the header is set last, so a header naming a run means the rest
        already shows that run.
        """
        self.error.value = ""
        key = self.current_key()
        selection = self.explorer.select(key.dataset, key.loss, key.weight, key.seed, key.model, key.data)
        self.selection = selection
        if selection.shown is None:
            self.curves.layout.display = "none"
            self.numbers.value = ""
            self.words.value = render.NO_RUN_HTML
        else:
            png = self.figures.png(selection)
            numbers = render.table_html(selection)
            words = self._words_html(selection)
            self.curves.value = png
            self.curves.layout.display = None
            self.numbers.value = numbers
            self.words.value = words
        self._show_train_offer(selection)
        self.header.value = render.header_html(selection)

    def _on_decoder(self, change: dict) -> None:
        """Show the chosen decoder's slider (named for its parameter, at its default) and the sampling seed."""
        control = get_decoder(change["new"])
        has_value = control.parameter is not None
        if has_value:
            def configure() -> None:
                slider = self.decoder_value
                slider.min, slider.max = min(slider.min, control.low), max(slider.max, control.high)
                slider.step, slider.value = control.step, control.default
                slider.min, slider.max = control.low, control.high
                slider.description = control.parameter
            self._quietly(configure)
        self.decoder_value.layout.display = None if has_value else "none"
        self.sampling_seed.layout.display = "none" if control.deterministic else None
        self._refresh_words()

    def _refresh_words(self) -> None:
        if self._quiet or self.selection is None or self.selection.shown is None:
            return
        self.error.value = ""
        self.words.value = self._words_html(self.selection)

    def decoder_choice(self) -> tuple[str, float | None, int]:
        """``(decoder name, its slider's value or None, sampling seed)`` as the controls stand."""
        control = get_decoder(self.decoder.value)
        value = float(self.decoder_value.value) if control.parameter is not None else None
        return control.name, value, int(self.sampling_seed.value)

    def _words_html(self, selection: Selection) -> str:
        seed_text = str(self.seed_text.value or "").strip()
        if not seed_text:
            return render.NO_SEED_TEXT_HTML
        decoder, value, sampling_seed = self.decoder_choice()
        rows, notes = [], []
        for role, run in render.shown_pairs(selection):
            words, note = self.explorer.continuation(run, seed_text, decoder=decoder, value=value,
                                                     sampling_seed=sampling_seed)
            if note and note not in notes:
                notes.append(note)
            rows.append((role, selection.name(run), words))
        described = get_decoder(decoder).describe(value)
        if not get_decoder(decoder).deterministic:
            described += f", sampling seed {sampling_seed}"
        return render.words_html(seed_text, rows, notes, decoder=described)

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
        self.train_note.value = render.train_note_html(_relative(run_dir, self.explorer.outputs), config.epochs,
                                                       config.dataset)

    # -- training ----------------------------------------------------------------------------------------

    def start_training(self) -> threading.Thread | None:
        """Train the current selection's missing run in a background thread (one at a time)."""
        if self._training is not None and self._training.is_alive():
            self.progress_label.value = "a run is already training; wait for it to finish"
            return None
        key = self.current_key()
        selection = self.selection or self.explorer.select(key.dataset, key.loss, key.weight, key.seed, key.model,
                                                           key.data)
        if selection.exact:
            return None
        config, run_dir = self.explorer.train_plan(selection)
        name = config.run_name
        self.train_button.disabled = True
        self.progress.layout.display = None
        self.progress.bar_style = "info"
        self.progress.value = 0
        self.progress_label.value = f"starting {name} ..."

        def report(epoch: int, epochs: int, step: int, steps: int) -> None:
            self.progress.max = max(1, epochs * steps)
            self.progress.value = min(self.progress.max, (epoch - 1) * steps + step)
            self.progress_label.value = f"{name}: epoch {epoch}/{epochs}, step {step}/{steps}"

        def work() -> None:
            try:
                self.explorer.train(config, run_dir, progress=report)
                self.progress.bar_style = "success"
                self.progress.value = self.progress.max
                self.progress_label.value = f"finished {name} in {_relative(run_dir, self.explorer.outputs)}"
                self._guard(self._after_training)
            except Exception as exc:
                self.progress.bar_style = "danger"
                self.progress_label.value = f"training {name} failed"
                self.show_error(exc)
            finally:
                self.train_button.disabled = False

        thread = threading.Thread(target=work, name=f"entropylab-train-{name}", daemon=True)
        self._training = thread
        thread.start()
        return thread

    def _after_training(self) -> None:
        dataset = self.dataset.value

        def refresh_controls() -> None:
            datasets = self.explorer.datasets()
            if list(self.dataset.options) != datasets and datasets:
                self.dataset.options = datasets
                self.dataset.value = dataset if dataset in datasets else datasets[0]
            seeds = self.explorer.seeds(dataset)
            self.seed.max = max([self.seed.max, *[s + 1 for s in seeds]])

        self._quietly(refresh_controls)
        self.update()


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).relative_to(base.parent).as_posix()
    except ValueError:
        return str(path)


def explore(output_root: str | os.PathLike | None = None) -> ExplorerWidget:
    """The explorer over ``<outputs>/runs`` (``$ENTROPYLAB_OUTPUTS`` or ``<project>/outputs`` by default)."""
    return ExplorerWidget(output_root=output_root)
