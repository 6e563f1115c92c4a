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
    return RunConfig(**{"dataset": "synthetic", "epochs": epochs, "lstm_units": 8, "synthetic": dict(SYNTHETIC),
                        **values})


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
    assert selection.control.key.matches(RunKey.of("synthetic", "mse", 0, 1))
    assert (selection.control.key.model, selection.control.key.data) == ("10/8", "all")  # a run's key has its sizes
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
    assert selection.shown.key.matches(RunKey.of("synthetic", "entropy_regularized", 1e-7, 0))
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


def test_run_key_names_its_sizes_and_refuses_a_malformed_one():
    key = RunKey.of("hidden_state", "cross_entropy", 0, 1, model="8/16", data="1200")
    assert key.describe() == "cross_entropy seed 1 (hidden_state n=1200 8/16)"
    assert key.describe(("model",)) == "cross_entropy seed 1 (hidden_state 8/16)"
    assert key.describe(()) == "cross_entropy seed 1 (hidden_state)"
    assert key.matches(RunKey.of("hidden_state", "cross_entropy", 0, 1)) and key.matches(key)
    assert not key.matches(RunKey.of("hidden_state", "cross_entropy", 0, 1, data="all"))
    with pytest.raises(ValueError, match="unknown model size '8x16'; use 'E/U'"):
        RunKey.of("nyt", "mse", 0, 0, model="8x16")
    with pytest.raises(ValueError, match="unknown data size 'many'"):
        RunKey.of("nyt", "mse", 0, 0, data="many")


@pytest.fixture
def fake_cells(tmp_path) -> Path:
    """Two cells of a scale study (no control runs): small model on little data, larger model on more data."""
    for seed in (0, 1):
        fake_run(tmp_path, "scale-grid", loss="cross_entropy", seed=seed, embedding_dim=4, lstm_units=8,
                 max_sequences=300, dropout=0.2)
    fake_run(tmp_path, "scale-grid", loss="cross_entropy", seed=0, embedding_dim=8, lstm_units=16,
             max_sequences=1200, dropout=0.0)
    return tmp_path


def test_a_size_left_open_shows_the_most_data_and_the_largest_model(fake_cells):
    explorer = Explorer(fake_cells)
    assert explorer.varying_sizes("synthetic") == ("model", "data")
    assert explorer.sizes("synthetic", "data") == ["300", "1200"]
    open_sizes = explorer.select("synthetic", "cross_entropy", 0, 0)
    assert open_sizes.exact and open_sizes.shown.config["max_sequences"] == 1200
    assert open_sizes.message.endswith("seed 0 (synthetic): " + open_sizes.shown.label)
    small = explorer.select("synthetic", "cross_entropy", 0, 0, "4/8", "300")
    assert small.exact and (small.shown.config["lstm_units"], small.shown.config["max_sequences"]) == (8, 300)
    assert small.name(small.shown) == "cross_entropy seed 0 (synthetic n=300 4/8)"
    assert explorer.seeds("synthetic", "cross_entropy", "8/16", "1200") == [0]
    assert explorer.seeds("synthetic", "cross_entropy", "4/8") == [0, 1]
    with pytest.raises(ValueError, match="unknown size 'width'"):
        explorer.sizes("synthetic", "width")


def test_a_missing_run_at_a_size_shows_that_size_before_that_seed(fake_cells):
    explorer = Explorer(fake_cells)
    selection = explorer.select("synthetic", "cross_entropy", 0, 1, "8/16", "1200")
    assert not selection.exact
    assert selection.shown.key == RunKey.of("synthetic", "cross_entropy", 0, 0, "8/16", "1200")
    assert "seed 1 (synthetic n=1200 8/16); showing the nearest" in selection.message


def test_the_control_is_of_the_shown_runs_size_before_its_seed(fake_cells):
    fake_run(fake_cells, "scale-grid", loss="mse", seed=0, embedding_dim=8, lstm_units=16, max_sequences=1200)
    fake_run(fake_cells, "scale-grid", loss="mse", seed=1, embedding_dim=4, lstm_units=8, max_sequences=300)
    explorer = Explorer(fake_cells)
    selection = explorer.select("synthetic", "cross_entropy", 0, 0, "4/8", "300")
    assert selection.control.key == RunKey.of("synthetic", "mse", 0, 1, "4/8", "300")
    assert explorer.select("synthetic", "cross_entropy", 0, 0, "8/16", "1200").control.key.seed == 0


def test_train_plan_at_a_size_takes_that_cells_settings(fake_cells):
    explorer = Explorer(fake_cells)
    # no label-smoothing run and no control: the cell's own run is the template (its dropout with it)
    config, run_dir = explorer.train_plan(explorer.select("synthetic", "label_smoothing", 0.1, 0, "8/16", "1200"))
    assert (config.embedding_dim, config.lstm_units, config.max_sequences, config.dropout) == (8, 16, 1200, 0.0)
    assert (config.loss, config.weight) == ("label_smoothing", 0.1)
    assert run_dir == fake_cells / "runs" / "scale-grid" / config.run_name
    # a cell with no run at all: the nearest run's settings at the requested sizes
    selection = explorer.select("synthetic", "cross_entropy", 0, 0, "4/8", "1200")
    assert selection.shown.config["max_sequences"] == 300
    config, _ = explorer.train_plan(selection)
    assert (config.embedding_dim, config.lstm_units, config.max_sequences, config.dropout) == (4, 8, 1200, 0.2)
    config, _ = explorer.train_plan(explorer.select("synthetic", "cross_entropy", 0, 0, "4/8", "all"))
    assert config.max_sequences is None


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


# ---- a scale study's runs: several model and data sizes of one objective ---------------------------------

HIDDEN_STATE = {"n_headlines": 300, "n_words": 60, "n_states": 4, "support": 20, "max_words": 8, "seed": 3}
SMALL, LARGE = ("4/8", "200"), ("8/16", "all")  # (model size E/U, data size) of two of the four cells
SMOOTHING = {SMALL: 0.03}  # label smoothing of each cell's runs (0.1 elsewhere): the parameter follows the sizes


def scale_config(dataset: str, loss: str, weight: float, seed: int, model: str, data: str) -> RunConfig:
    embedding_dim, lstm_units = (int(x) for x in model.split("/"))
    return RunConfig(dataset=dataset, loss=loss, weight=weight, seed=seed, epochs=1, embedding_dim=embedding_dim,
                     lstm_units=lstm_units, max_sequences=None if data == "all" else int(data), jit_compile=False,
                     synthetic=dict(HIDDEN_STATE if dataset == "hidden_state" else SYNTHETIC))


def cell_label(seed: int, model: str, data: str) -> str:
    """The label of the hidden-state label-smoothing run of one seed and cell."""
    weight = SMOOTHING.get((model, data), 0.1)
    return f"scale/{scale_config('hidden_state', 'label_smoothing', weight, seed, model, data).run_name}"


def synthetic_label(data: str) -> str:
    return f"scale/{scale_config('synthetic', 'mse', 0.0, 0, '4/8', data).run_name}"


@pytest.fixture(scope="module")
def scale_outputs(tmp_path_factory) -> Path:
    """Label smoothing (seed 0) in the four cells of two model sizes x two data sizes of the hidden-state source,
    at 0.03 in the small cell and 0.1 in the others, seed 1 in the large cell; and the control on the synthetic
    corpus at one model size and two data sizes."""
    from entropylab.training import run

    root = tmp_path_factory.mktemp("scale")
    cells = [(model, data) for model in ("4/8", "8/16") for data in ("200", "all")]
    runs_to_train = [("hidden_state", "label_smoothing", SMOOTHING.get(cell, 0.1), 0, *cell) for cell in cells]
    runs_to_train += [("hidden_state", "label_smoothing", 0.1, 1, *LARGE),
                      ("synthetic", "mse", 0.0, 0, "4/8", "200"), ("synthetic", "mse", 0.0, 0, "4/8", "all")]
    for args in runs_to_train:
        config = scale_config(*args)
        assert run(config, root / "runs" / "scale" / config.run_name).status == "complete"
    return root


def test_the_index_keeps_the_cells_apart(scale_outputs):
    explorer = Explorer(scale_outputs)
    assert explorer.datasets() == ["hidden_state", "synthetic"]
    assert explorer.varying_sizes("hidden_state") == ("model", "data")
    assert explorer.varying_sizes("synthetic") == ("data",)
    assert explorer.sizes("hidden_state", "model") == ["4/8", "8/16"]
    assert explorer.sizes("hidden_state", "data") == ["200", "all"]
    for model in ("4/8", "8/16"):
        for data in ("200", "all"):
            weight = SMOOTHING.get((model, data), 0.1)
            selection = explorer.select("hidden_state", "label_smoothing", weight, 0, model, data)
            assert selection.exact and selection.shown.label == cell_label(0, model, data)
    assert explorer.seeds("hidden_state", "label_smoothing", *SMALL) == [0]
    assert explorer.seeds("hidden_state", "label_smoothing", *LARGE) == [0, 1]
    assert explorer.weights("hidden_state", "label_smoothing", *SMALL) == [0.03]
    assert explorer.weights("hidden_state", "label_smoothing") == [0.03, 0.1]


def test_the_hidden_state_runs_continue_seed_texts_of_their_own_corpus(scale_outputs):
    from entropylab.data import load_corpus
    from entropylab.decoding import continue_text
    from entropylab.training import load_trained

    explorer = Explorer(scale_outputs)
    corpus = load_corpus("hidden_state", **HIDDEN_STATE)
    texts = explorer.seed_texts("hidden_state")
    assert texts and all(text == " ".join(text.split()[:2]) for text in texts)
    assert texts[0] == " ".join(corpus.headlines[0].split()[:2])  # from the run's source, with its options
    shown = explorer.select("hidden_state", "label_smoothing", 0.03, 0, *SMALL).shown
    words, note = explorer.continuation(shown, texts[1])
    model, stored_corpus, config = load_trained(shown.run_dir)
    assert words == continue_text(model, stored_corpus, texts[1], 10, head=config.head).words and note == ""


def test_the_widget_offers_a_control_for_each_size_that_varies(scale_outputs):
    widget = ExplorerWidget(Explorer(scale_outputs))
    assert widget.error.value == "", widget.error.value
    assert widget.dataset.value == "hidden_state" and widget.objective.value == "label_smoothing"
    assert widget.model_size.layout.display is None and widget.data_size.layout.display is None
    assert widget.model_size.options == ("4/8", "8/16") and widget.data_size.options == ("200", "all")
    assert widget.chosen_sizes() == LARGE  # the most data and the largest model first
    assert "data-exact='true'" in widget.header.value and cell_label(0, *LARGE) in widget.header.value
    assert "(hidden_state n=all 8/16)" in widget.words.value

    widget.model_size.value = "4/8"
    assert cell_label(0, "4/8", "all") in widget.header.value
    widget.data_size.value = "200"  # the small cell has 0.03 only: the parameter moves there
    assert widget.parameter.value == 0.03
    assert cell_label(0, *SMALL) in widget.header.value and "data-exact='true'" in widget.header.value
    assert widget.error.value == "", widget.error.value

    # the seed follows the sizes too: seed 1 exists only in the large cell
    widget.model_size.value, widget.data_size.value = LARGE
    assert widget.parameter.value == 0.1
    widget.seed.value = 1
    assert cell_label(1, *LARGE) in widget.header.value
    widget.model_size.value, widget.data_size.value = SMALL
    assert widget.seed.value == 0 and widget.parameter.value == 0.03
    assert cell_label(0, *SMALL) in widget.header.value

    # a seed with no run offers Train at the chosen sizes
    widget.seed.value = 2
    description = widget.train_button.description
    assert description == "Train label_smoothing smoothing=0.03 seed 2 (hidden_state n=200 4/8)", description
    config, _ = widget.explorer.train_plan(widget.selection)
    assert (config.dataset, config.embedding_dim, config.lstm_units, config.max_sequences) == ("hidden_state", 4, 8,
                                                                                               200)

    # one model size on the synthetic corpus: no model-size control, the data-size control stays
    widget.dataset.value = "synthetic"
    assert widget.model_size.layout.display == "none" and widget.data_size.layout.display is None
    assert widget.data_size.options == ("200", "all") and widget.data_size.value == "all"
    assert widget.current_key().model is None and widget.current_key().data == "all"
    assert synthetic_label("all") in widget.header.value
    widget.data_size.value = "200"
    assert synthetic_label("200") in widget.header.value
    assert "(synthetic n=200)" in widget.header.value and widget.error.value == ""


def test_runs_of_one_size_show_no_size_controls(trained_outputs):
    widget = ExplorerWidget(Explorer(trained_outputs))
    assert widget.model_size.layout.display == "none" and widget.data_size.layout.display == "none"
    assert widget.chosen_sizes() == (None, None)
    assert f"seed 0 (synthetic): {tiny_label('kl_regularized', 1.0, 0)}" in widget.header.value
