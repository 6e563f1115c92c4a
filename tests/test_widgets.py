"""The explorer without a browser: which run a selection shows, its curves, numbers, words and Train."""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab import objectives
from entropylab.explorer import (
    EXPLORER_EXPERIMENT,
    EXPONENT_STEP,
    WEIGHT_STEP,
    Explorer,
    ExplorerWidget,
    RunKey,
    SliderRange,
    canonical_weight,
    render,
    slider_range,
)
from entropylab.training import RunConfig
from entropylab.training import store as runs

SYNTHETIC = {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_explorer.ipynb"


def synthetic_config(epochs: int = 3, **values) -> RunConfig:
    return RunConfig(dataset="synthetic", epochs=epochs, lstm_units=8, synthetic=dict(SYNTHETIC), **values)


def fake_run(root: Path, experiment: str, status: str = "complete", epochs: int = 3, **values) -> Path:
    """A run folder with a config and a random history (no weights): enough for the index and the curves."""
    config = synthetic_config(epochs, **values)
    run_dir = root / "runs" / experiment / config.run_name
    run_dir.mkdir(parents=True)
    runs.write_json(run_dir / runs.CONFIG, config.to_dict())
    rng = np.random.default_rng(zlib.crc32(f"{experiment}/{config.run_name}".encode()))
    history = pd.DataFrame({"epoch": np.arange(1, epochs + 1)})
    for column in ("loss", "val_loss", "paper_entropy", "paper_kl", "val_cross_entropy", "val_perplexity",
                   "val_accuracy", "val_entropy", "seconds"):
        history[column] = rng.uniform(0.1, 50.0, epochs)
    runs.write_csv(run_dir / runs.HISTORY, history)
    runs.write_json(run_dir / runs.METRICS, {"status": status})
    if status == "complete":
        runs.mark_complete(run_dir)
    elif status == "failed":
        runs.mark_failed(run_dir, "NaN")
    return run_dir


@pytest.fixture
def fake_outputs(tmp_path) -> Path:
    for seed in (0, 1):
        fake_run(tmp_path, "paper", loss="mse", seed=seed)
    for weight in (1.0, 100.0):
        fake_run(tmp_path, "paper", loss="kl_regularized", weight=weight, seed=0)
    fake_run(tmp_path, "seeds", loss="kl_regularized", weight=100.0, seed=1)
    fake_run(tmp_path, "paper", loss="entropy_regularized", weight=1e-7, seed=0)
    fake_run(tmp_path, "paper", loss="kl_regularized", weight=10.0, seed=0, status="failed")
    fake_run(tmp_path, "paper", loss="kl_regularized", weight=1000.0, seed=0, status="incomplete")
    return tmp_path


def test_canonical_weight_rounds_to_three_digits_and_refuses_bad_values():
    assert canonical_weight(10 ** 0.5) == 3.16
    assert canonical_weight(1e-7) == 1e-7
    assert canonical_weight(0) == 0.0
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="weight"):
            canonical_weight(bad)


def test_index_holds_only_finished_runs(fake_outputs):
    explorer = Explorer(fake_outputs)
    keys = {r.key for r in explorer.runs}
    assert RunKey.of("synthetic", "kl_regularized", 10.0, 0) not in keys  # FAILED
    assert RunKey.of("synthetic", "kl_regularized", 1000.0, 0) not in keys  # no marker
    assert explorer.weights("synthetic", "kl_regularized") == [1.0, 100.0]
    assert explorer.seeds("synthetic", "kl_regularized") == [0, 1]
    assert explorer.datasets() == ["synthetic"]
    assert explorer.objectives() == list(objectives.OBJECTIVES)
    assert explorer.objectives()[:4] == [objectives.CONTROL, objectives.ENTROPY, objectives.KL,
                                         objectives.CROSS_ENTROPY]


def test_the_index_leaves_out_a_damaged_run_with_a_warning_naming_the_file(fake_outputs):
    damaged = fake_run(fake_outputs, "paper", loss="mse", seed=2)
    history = damaged / runs.HISTORY
    history.write_bytes(history.read_bytes()[:-5])  # cut mid-row (a file without a checksum, as fake_run writes)
    with pytest.warns(UserWarning, match=re.escape(f"the explorer leaves out {damaged.name}: {history} is damaged (")):
        explorer = Explorer(fake_outputs)
    assert explorer.seeds("synthetic", "mse") == [0, 1]


def test_exact_selection_shows_that_run_and_its_control(fake_outputs):
    explorer = Explorer(fake_outputs)
    selection = explorer.select("synthetic", "kl_regularized", 100.0, 1)
    assert selection.exact
    assert selection.shown.label == "seeds/" + synthetic_config(loss="kl_regularized", weight=100.0, seed=1).run_name
    assert selection.control.key == RunKey.of("synthetic", "mse", 0, 1)
    assert selection.message.startswith("Showing") and selection.shown.label in selection.message


@pytest.mark.parametrize(("weight", "expected"), [(3.0, 1.0), (30.0, 100.0), (1e-3, 1.0), (1e6, 100.0)])
def test_missing_weight_shows_the_nearest_in_log_scale(fake_outputs, weight, expected):
    selection = Explorer(fake_outputs).select("synthetic", "kl_regularized", weight, 0)
    assert not selection.exact
    assert selection.shown.key.weight == expected
    assert selection.message.startswith("No finished run") and f"weight={expected:g}" in selection.message


def test_missing_seed_shows_a_run_of_another_seed_and_says_so(fake_outputs):
    selection = Explorer(fake_outputs).select("synthetic", "entropy_regularized", 1e-7, 4)
    assert not selection.exact
    assert selection.shown.key == RunKey.of("synthetic", "entropy_regularized", 1e-7, 0)
    assert "seed 4" in selection.message


def test_no_runs_of_an_objective(fake_outputs):
    selection = Explorer(fake_outputs).select("synthetic", "cross_entropy", 0.0, 0)
    assert selection.shown is None and not selection.exact
    assert "No finished run" in selection.message


def test_duplicates_prefer_full_data_then_more_epochs(tmp_path):
    fake_run(tmp_path, "quick", loss="mse", seed=0, epochs=1)
    fake_run(tmp_path, "smoke", loss="mse", seed=0, epochs=5, max_sequences=100)
    fake_run(tmp_path, "paper", loss="mse", seed=0, epochs=3)
    expected = "paper/" + synthetic_config(loss="mse", seed=0, epochs=3).run_name
    assert Explorer(tmp_path).select("synthetic", "mse", 0, 0).shown.label == expected


def test_curve_data_are_the_histories_of_the_run_and_its_control(fake_outputs):
    explorer = Explorer(fake_outputs)
    selection = explorer.select("synthetic", "kl_regularized", 1.0, 0)
    data = render.curve_data(selection)
    assert set(data["run"]) == {"selected", "control"}
    for role, run in (("selected", selection.shown), ("control", selection.control)):
        for column in ("paper_entropy", "paper_kl", "loss", "val_loss", "val_perplexity"):
            values = data[(data["run"] == role) & (data["metric"] == column)].sort_values("epoch")["value"]
            np.testing.assert_allclose(values.to_numpy(), run.history[column].to_numpy())
    control_only = render.curve_data(explorer.select("synthetic", "mse", 0, 0))
    assert set(control_only["run"]) == {"selected"}


def test_numbers_table_shows_the_selected_history(fake_outputs):
    explorer = Explorer(fake_outputs)
    selection = explorer.select("synthetic", "kl_regularized", 100.0, 0)
    table = render.table_html(selection)
    assert table.count("data-role='selected'") == len(selection.shown.history)
    for value in selection.shown.history["val_perplexity"]:
        assert f">{value:.4g}<" in table
    figures = render.FigureCache(size=1)
    png = figures.png(selection)
    assert png.startswith(b"\x89PNG")
    assert figures.png(selection) is png  # drawn once per shown run, control and resolution
    figures.png(explorer.select("synthetic", "mse", 0, 0))
    assert figures.png(selection) is not png  # the cache keeps `size` figures


def test_train_plan_copies_the_shown_profile_into_its_experiment(fake_outputs):
    explorer = Explorer(fake_outputs)
    selection = explorer.select("synthetic", "kl_regularized", 10 ** 0.5, 0)
    config, run_dir = explorer.train_plan(selection)
    assert (config.loss, config.weight, config.seed) == ("kl_regularized", 3.16, 0)
    assert (config.epochs, config.lstm_units, config.synthetic) == (3, 8, SYNTHETIC)
    assert run_dir == fake_outputs / "runs" / "paper" / config.run_name
    assert config.run_name.startswith("kl_regularized_w3.16_seed0-")
    shown = selection.shown.config
    assert (config.split_seed, config.threads, config.backend) == (shown["split_seed"], shown["threads"],
                                                                   shown["backend"])
    assert config.head == "linear"


def test_train_plan_avoids_a_folder_of_another_config(fake_outputs):
    explorer = Explorer(fake_outputs)
    # the FAILED w=10 folder holds the same config: it is retrained in place
    failed = synthetic_config(loss="kl_regularized", weight=10.0, seed=0).run_name
    _, run_dir = explorer.train_plan(explorer.select("synthetic", "kl_regularized", 10.0, 0))
    assert run_dir == fake_outputs / "runs" / "paper" / failed
    # a folder of that name with another config: the run goes to the explorer's own folder
    config, planned = explorer.train_plan(explorer.select("synthetic", "kl_regularized", 5.0, 0))
    assert planned == fake_outputs / "runs" / "paper" / config.run_name
    planned.mkdir()
    runs.write_json(planned / runs.CONFIG, RunConfig(dataset="synthetic", loss="kl_regularized", weight=5).to_dict())
    _, run_dir = explorer.train_plan(explorer.select("synthetic", "kl_regularized", 5.0, 0))
    assert run_dir == fake_outputs / "runs" / EXPLORER_EXPERIMENT / "synthetic" / config.run_name


def test_train_plan_without_any_run_uses_the_defaults(tmp_path):
    explorer = Explorer(tmp_path)
    config, run_dir = explorer.train_plan(explorer.select("synthetic", "kl_regularized", 10.0, 2))
    assert (config.dataset, config.epochs, config.seed) == ("synthetic", 5, 2)
    assert run_dir == tmp_path / "runs" / EXPLORER_EXPERIMENT / config.run_name


def test_the_slider_is_named_for_the_objective_parameter_and_covers_its_range(tmp_path):
    widget = ExplorerWidget(Explorer(tmp_path))  # no runs: nothing to load, only the controls
    assert widget.error.value == "", widget.error.value
    assert [value for _, value in widget.objective.options] == list(objectives.OBJECTIVES)
    assert dict(widget.objective.options)["alpha divergence"] == "alpha_divergence"

    widget.objective.value = "alpha_divergence"
    slider = widget.parameter
    assert slider is widget.log_slider and slider.layout.display is None
    assert widget.linear_slider.layout.display == "none"
    assert slider.description == "exponent" and not slider.disabled
    assert "entropylab-exponent" in slider._dom_classes and "entropylab-weight" not in slider._dom_classes
    assert (slider.min, slider.max) == (-2.0, 1.0) and slider.value == 1.0
    assert widget.current_key().weight == 1.0

    widget.objective.value = "generalized_cross_entropy"  # q in (0, 1]: the slider stops at 1
    assert widget.parameter.description == "exponent" and widget.parameter.max == 0.0
    assert widget.parameter.value == 0.5

    widget.objective.value = "label_smoothing"
    slider = widget.parameter
    assert slider is widget.linear_slider and slider.layout.display is None
    assert widget.log_slider.layout.display == "none"
    assert slider.description == "smoothing" and not slider.disabled
    assert "entropylab-smoothing" in slider._dom_classes
    assert (slider.min, slider.max, slider.step) == (0.0, 0.99, 0.01) and slider.value == 0.1
    slider.value = 0.0  # smoothing 0 is valid (a log slider could not reach it)
    assert widget.current_key() == RunKey.of(widget.dataset.value, "label_smoothing", 0.0, widget.seed.value)
    assert widget.error.value == "", widget.error.value

    widget.objective.value = "entropy_regularized"
    assert widget.parameter is widget.log_slider and widget.parameter.description == "weight"
    assert (widget.parameter.min, widget.parameter.max, widget.parameter.step) == (-9.0, 3.0, WEIGHT_STEP)
    widget.objective.value = "cross_entropy"
    assert widget.parameter.disabled and widget.parameter.description == "none"
    assert widget.current_key().weight == 0.0


def test_slider_range_takes_in_finished_values_within_the_objective_range():
    assert slider_range("kl_regularized", [1e-12, 1e5]).values() == (1e-12, 1e5)
    assert slider_range("generalized_cross_entropy", [1e-3]) == SliderRange(True, -3, 0.0, EXPONENT_STEP)
    assert slider_range("label_smoothing", [0.995]).high == 0.995
    assert not slider_range("label_smoothing").log


def test_run_key_describes_the_parameter_by_name():
    assert RunKey.of("nyt", "kl_regularized", 10, 0).describe() == "kl_regularized weight=10 seed 0 (nyt)"
    assert RunKey.of("nyt", "label_smoothing", 0.1, 1).describe() == "label_smoothing smoothing=0.1 seed 1 (nyt)"
    assert RunKey.of("nyt", "mse", 5, 0) == RunKey("nyt", "mse", 0.0, 0)


# ---- with real (tiny) trained runs ---------------------------------------------------------------------

def tiny_config(loss: str, weight: float, seed: int) -> RunConfig:
    return RunConfig(dataset="synthetic", loss=loss, weight=weight, seed=seed, epochs=1, lstm_units=8,
                     jit_compile=False, synthetic=dict(SYNTHETIC))


def tiny_label(loss: str, weight: float, seed: int) -> str:
    return f"tiny/{tiny_config(loss, weight, seed).run_name}"


@pytest.fixture(scope="module")
def trained_outputs(tmp_path_factory) -> Path:
    from entropylab.training import run

    root = tmp_path_factory.mktemp("explorer")
    for loss, weight in (("mse", 0.0), ("kl_regularized", 1.0), ("kl_regularized", 100.0)):
        config = tiny_config(loss, weight, 0)
        assert run(config, root / "runs" / "tiny" / config.run_name).status == "complete"
    return root


def test_words_are_the_greedy_continuation_of_the_shown_run(trained_outputs):
    from entropylab.decoding import continue_text
    from entropylab.training import load_trained

    explorer = Explorer(trained_outputs)
    selection = explorer.select("synthetic", "kl_regularized", 100.0, 0)
    seed_text = explorer.seed_texts("synthetic")[0]
    words, note = explorer.continuation(selection.shown, seed_text)
    model, corpus, config = load_trained(selection.shown.run_dir)
    assert words == continue_text(model, corpus, seed_text, 10, head=config.head).words
    assert note == ""
    assert explorer.model_for(selection.shown) is explorer.model_for(selection.shown)  # cached
    _, note = explorer.continuation(selection.shown, "zzzunknown " + seed_text)
    assert "zzzunknown" in note


def test_widget_follows_the_controls_and_trains_a_missing_seed(trained_outputs):
    widget = ExplorerWidget(Explorer(trained_outputs))
    assert widget.error.value == ""
    assert tiny_label("kl_regularized", 1.0, 0) in widget.header.value
    assert widget.train_button.layout.display == "none"
    assert widget.parameter.description == "weight" and "entropylab-weight" in widget.parameter._dom_classes
    first_png, first_words = widget.curves.value, widget.words.value

    widget.parameter.value = 100.0
    assert tiny_label("kl_regularized", 100.0, 0) in widget.header.value
    assert widget.curves.value != first_png and widget.words.value != first_words

    widget.parameter.value = 100.0 * 10 ** (WEIGHT_STEP / 2 - 0.01)  # within half a step: snaps onto the run
    assert widget.parameter.value == 100.0

    widget.objective.value = "mse"
    assert widget.parameter.disabled and widget.parameter.description == "none"
    assert tiny_label("mse", 0.0, 0) in widget.header.value
    widget.objective.value = "kl_regularized"

    widget.seed.value = 1
    assert "No finished run" in widget.header.value and "data-exact='false'" in widget.header.value
    assert widget.train_button.layout.display is None
    assert re.search(r"Train kl_regularized weight=\S+ seed 1", widget.train_button.description)
    thread = widget.start_training()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert widget.error.value == "", widget.error.value
    assert widget.progress.value == widget.progress.max > 1
    assert widget.progress_label.value.startswith("finished")
    key = widget.current_key()
    new_run = trained_outputs / "runs" / "tiny" / tiny_config("kl_regularized", key.weight, 1).run_name
    assert runs.is_complete(new_run)
    assert "data-exact='true'" in widget.header.value and new_run.name in widget.header.value
    assert widget.train_button.layout.display == "none"


def test_errors_show_in_the_widget(trained_outputs, monkeypatch):
    widget = ExplorerWidget(Explorer(trained_outputs))

    def broken(*args, **kwargs):
        raise RuntimeError("the model file is unreadable")

    monkeypatch.setattr(widget.explorer, "continuation", broken)
    widget.seed_text.value = "something else"  # no exception escapes the handler
    assert "the model file is unreadable" in widget.error.value


def test_notebook_runs_and_shows_the_widget(trained_outputs):
    import papermill

    executed = papermill.execute_notebook(str(NOTEBOOK), None, parameters={"output_root": str(trained_outputs)},
                                          kernel_name="python3", progress_bar=False)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_training_runs_in_the_background_and_the_controls_stay_live(trained_outputs, monkeypatch):
    import threading

    widget = ExplorerWidget(Explorer(trained_outputs))
    widget.seed.value = 5
    release, started = threading.Event(), threading.Event()

    def slow_train(config, run_dir, progress=None):
        started.set()
        progress(1, 2, 3, 10)
        assert release.wait(timeout=60)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(widget.explorer, "train", slow_train)
    thread = widget.start_training()
    assert started.wait(timeout=30)
    assert thread.is_alive()  # start_training returned while the run is still going
    name = widget.explorer.train_plan(widget.selection)[0].run_name
    assert widget.progress_label.value == f"{name}: epoch 1/2, step 3/10"
    assert (widget.progress.value, widget.progress.max) == (3, 20)
    assert widget.train_button.disabled
    assert widget.start_training() is None and "already training" in widget.progress_label.value
    widget.seed.value = 0  # the display still follows the controls
    assert tiny_label("kl_regularized", 1.0, 0) in widget.header.value
    release.set()
    thread.join(timeout=30)
    assert "stopped by the test" in widget.error.value and widget.progress.bar_style == "danger"
    assert not widget.train_button.disabled


def test_decoder_controls_change_the_words_and_name_their_parameter(trained_outputs):
    from entropylab.decoding import DECODERS
    from entropylab.decoding import get_decoder as get

    assert get("top_p").arguments(0.5) == ("sample", {"top_p": 0.5})
    assert get("beam").arguments(3.2) == ("beam", {"num_beams": 3}) and get("greedy").arguments(None) == ("greedy", {})
    assert get("mirostat").describe(3.0) == "mirostat tau=3" and get("top_k").describe(None) == "top_k=10"
    with pytest.raises(ValueError, match="unknown decoder 'nucleus'"):
        get("nucleus")
    widget = ExplorerWidget(Explorer(trained_outputs))
    greedy_words = widget.words.value
    assert "Greedy next" in greedy_words and widget.decoder_value.layout.display == "none"

    widget.decoder.value = "temperature"
    assert widget.decoder_value.description == "temperature" and widget.decoder_value.value == 1.0
    assert widget.decoder_value.layout.display is None and widget.sampling_seed.layout.display is None
    assert "temperature=1, sampling seed 0" in widget.words.value
    seen = {widget.words.value}
    for seed in (1, 2, 3):
        widget.sampling_seed.value = seed
        seen.add(widget.words.value)
    assert len(seen) > 1, "the sampling seed does not change the words"
    widget.sampling_seed.value = 0
    again = widget.words.value
    widget.sampling_seed.value = 1
    widget.sampling_seed.value = 0
    assert widget.words.value == again  # seeded: the same seed gives the same words

    widget.decoder.value = "beam"
    assert widget.decoder_value.description == "num_beams" and widget.sampling_seed.layout.display == "none"
    assert "beam num_beams=4" in widget.words.value and widget.error.value == ""
    for name in DECODERS:  # every decoder runs on the shown run
        widget.decoder.value = name
        assert widget.error.value == "", (name, widget.error.value)
