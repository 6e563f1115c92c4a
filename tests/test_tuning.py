"""Tuned run entries: the params format (settings, tune), the choice rule, the later config fields' identity, the
paired verdict, and early stopping's best epoch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from entropylab.analysis.stats import paired_difference, paired_verdict
from entropylab.experiments import tuning
from entropylab.experiments.params import ParamsError, load_params
from entropylab.paths import project_root
from entropylab.training import RunConfig, store

ROOT = project_root(Path(__file__).parent)
TRAIN = "notebooks/07_objectives_train.ipynb"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_settings_and_tune_expand_into_tuning_points_and_static_points(tmp_path):
    path = write(tmp_path, f"""experiment: s
defaults: {{dataset: synthetic, max_sequences: 400, epochs: 1, patience: 1, generation_prefixes: 20}}
settings: [{{split: headline}}, {{split: tail}}]
runs:
  - {{notebook: {ROOT / TRAIN}, grid: {{loss: cross_entropy, seed: [0, 1]}}}}
  - notebook: {ROOT / TRAIN}
    grid: {{loss: label_smoothing, weight: [0.2, 0.05, 0.1]}}
    tune: {{seeds: [0, 1, 2], neighbours: 1}}
""")
    params = load_params(path)
    assert len(params.points) == 4 and len(params.tuning_points) == 6
    assert {p.parameters["split"] for p in params.points} == {"headline", "tail"}
    point = params.tuning_points[0]
    assert point.parameters["tuning"] is True and point.parameters["generation_prefixes"] == 0
    final = point.chosen(weight=0.1, seed=2)
    assert final.parameters["tuning"] is False and final.parameters["generation_prefixes"] == 20
    assert final.config().run_name != point.config().run_name


@pytest.mark.parametrize(("tune", "message"), [
    ("{seeds: [0, 0]}", "distinct integers"),
    ("{seeds: [0], patience: 1}", "unknown key"),
    ("{neighbours: -1}", "neighbours"),
    ("{sideways: 1}", "unknown key"),
])
def test_bad_tune_blocks_are_one_line_errors(tmp_path, tune, message):
    path = write(tmp_path, f"""experiment: s
defaults: {{dataset: synthetic, patience: 1}}
runs:
  - {{notebook: {ROOT / TRAIN}, grid: {{loss: label_smoothing, weight: [0.1, 0.2]}}, tune: {tune}}}
""")
    with pytest.raises(ParamsError, match=message):
        load_params(path)


def test_tuning_needs_a_weight_grid_and_a_notebook_that_can_tune(tmp_path):
    path = write(tmp_path, f"""experiment: s
runs:
  - {{notebook: {ROOT / TRAIN}, grid: {{loss: label_smoothing, weight: 0.1}}, tune: {{seeds: [0]}}}}
""")
    with pytest.raises(ParamsError, match="at least two distinct 'weight' values"):
        load_params(path)
    path = write(tmp_path, f"""experiment: s
defaults: {{patience: 1}}
runs:
  - {{notebook: {ROOT / TRAIN}, grid: {{loss: [label_smoothing, alpha_divergence], weight: [0.1, 0.2]}}, tune: {{}}}}
""")
    with pytest.raises(ParamsError, match=r"varies only 'weight'.*loss"):
        load_params(path)
    path = write(tmp_path, f"""experiment: s
defaults: {{patience: null}}
runs:
  - {{notebook: {ROOT / TRAIN}, grid: {{loss: label_smoothing, weight: [0.1, 0.2]}}, tune: {{}}}}
""")
    with pytest.raises(ParamsError, match="needs early stopping"):
        load_params(path)
    path = write(tmp_path, f"""experiment: s
runs:
  - {{notebook: {ROOT / "notebooks/03_kl_regularization.ipynb"}, grid: {{weight: [1.0, 10.0]}}, tune: {{}}}}
""")
    with pytest.raises(ParamsError, match="no 'tuning' parameter"):
        load_params(path)
    path = write(tmp_path, f"""experiment: s
defaults: {{patience: 2}}
runs:
  - {{notebook: {ROOT / "notebooks/01_control.ipynb"}, grid: {{loss: mse}}}}
""")
    with pytest.raises(ParamsError, match=r"lacks the parameter.*patience"):
        load_params(path)
    path = write(tmp_path, "experiment: s\nsettings: [{split: sideways}]\nruns: [{notebook: x}]\n")
    with pytest.raises(ParamsError, match=r"settings\[0\]\.split"):
        load_params(path)


def test_the_window_keeps_its_width_at_an_edge_and_flags_it():
    assert tuning.window(4, 2, 1) == ([1, 2, 3], False)
    assert tuning.window(4, 0, 1) == ([0, 1, 2], True)
    assert tuning.window(4, 3, 1) == ([1, 2, 3], True)
    assert tuning.window(4, 1, 0) == ([1], False)
    assert tuning.window(2, 1, 1) == ([0, 1], True)


def test_choose_takes_the_lowest_finite_score_in_grid_order(tmp_path):
    path = write(tmp_path, f"""experiment: s
defaults: {{dataset: synthetic, patience: 1}}
runs:
  - {{notebook: {ROOT / TRAIN}, grid: {{loss: label_smoothing, weight: [0.3, 0.01, 0.1, 0.03]}}, tune: {{seeds: [0]}}}}
""")
    points = load_params(path).tuning_points  # file order 0.3, 0.01, 0.1, 0.03
    choice = tuning.choose(points, [math.inf, 2.5, 2.0, 2.2])
    assert choice.chosen == 0.1 and not choice.at_edge and choice.values == [0.03, 0.1, 0.3]
    assert choice.scores[-1] == math.inf  # the diverged 0.3 sorts last and never wins
    assert tuning.choose(points, [math.inf] * 4) is None
    assert tuning.choose(points, [math.nan, 2.5, 2.0, 2.2]) is None  # an unfinished run: wait for it
    edge = tuning.choose(points, [9.0, 1.0, 2.0, 3.0])
    assert edge.chosen == 0.01 and edge.at_edge and edge.values == [0.01, 0.03, 0.1]
    assert [p.parameters["weight"] for p in edge.final_points()] == [0.01, 0.03, 0.1]


def test_later_config_fields_leave_old_run_names_alone(tmp_path):
    config = RunConfig(dataset="synthetic", loss="cross_entropy", threads=1)
    assert not {"patience", "tuning", "generation_prefixes"} & set(config.identity())
    assert config.replace(patience=None, tuning=False).run_name == config.run_name
    assert config.replace(patience=1).run_name != config.run_name
    assert config.replace(tuning=True).run_name.startswith("cross_entropy_seed0_tuning-")
    store.write_json(tmp_path / store.CONFIG, config.to_dict())  # a config.json that holds the defaults
    assert store.identity_state(tmp_path, config.identity()) == "same"
    for bad in ({"patience": 0}, {"tuning": "yes"}, {"generation_prefixes": -1}):
        with pytest.raises(ValueError):
            config.replace(**bad)


def test_paired_verdicts():
    base = [2.0, 2.1, 2.2]
    assert paired_verdict([1.9, 2.0, 2.1], base) == "better"
    assert paired_verdict([2.1, 2.2, 2.3], base) == "worse"
    assert paired_verdict([1.9, 2.3, 2.1], base) == "no difference"
    assert paired_verdict([1.9, 2.0], base[:2]) == "too few seeds"
    assert paired_verdict([0.5, 0.6, 0.7], [0.4, 0.5, 0.6], lower_is_better=False) == "better"
    mean, low, high, n = paired_difference([1.0, 2.0, 4.0], [0.0, 0.0, 0.0])
    assert n == 3 and mean == pytest.approx(7 / 3) and low < mean < high
    assert high - mean == pytest.approx(4.303 * np.std([1, 2, 4], ddof=1) / math.sqrt(3), rel=1e-6)


def test_early_stopping_reports_the_best_epoch(small_synthetic):
    from entropylab.training import run

    config = RunConfig(dataset="synthetic", loss="cross_entropy", epochs=6, patience=1, max_sequences=600,
                       jit_compile=False, threads=1, learning_rate=0.05, generation_prefixes=30, split="headline")
    result = run(config, corpus=small_synthetic)
    history, metrics = result.history, result.metrics
    best = int(history["val_cross_entropy"].idxmin()) + 1
    assert metrics["best_epoch"] == best
    assert metrics["best"]["val_cross_entropy"] == pytest.approx(history["val_cross_entropy"].min())
    assert len(history) == 6 or len(history) == best + 1  # stopped one epoch after the best, or ran them all
    assert sum(metrics["reliability"]["bin_count"]) == metrics["split_sizes"]["val"]
    assert metrics["generation"]["prefixes"] == 30
    tuned = run(config.replace(tuning=True, generation_prefixes=0), corpus=small_synthetic)
    assert tuned.metrics["split_sizes"]["train"] + tuned.metrics["split_sizes"]["val"] == \
        metrics["split_sizes"]["train"]  # the carve is cut from the training side only


def test_a_report_refuses_two_runs_of_one_configuration_and_seed():
    import pandas as pd

    from entropylab.studies.objectives.tables import chosen_runs

    results = pd.DataFrame({"setting": ["s/headline"] * 3, "objective": ["cross_entropy"] * 2 + ["label_smoothing"],
                            "weight": [0.0, 0.0, 0.1], "seed": [0, 0, 0], "run": ["a", "b", "c"]})
    choices = pd.DataFrame({"setting": ["s/headline"], "objective": ["label_smoothing"], "chosen": [0.1]})
    with pytest.raises(ValueError, match="two runs of one configuration and seed: a, b"):
        chosen_runs(results, choices)
    assert list(chosen_runs(results.iloc[1:], choices)["run"]) == ["b", "c"]


def test_a_report_keeps_an_objective_run_untuned_at_one_value_and_only_the_chosen_value_of_a_tuned_one():
    import pandas as pd

    from entropylab.studies.objectives.tables import chosen_runs

    results = pd.DataFrame({
        "setting": ["s"] * 9 + ["t"] * 2,
        "objective": ["cross_entropy", "emo", "emo", "label_smoothing", "label_smoothing", "beta_divergence",
                      "beta_divergence", "cross_entropy", "emo", "emo", "emo"],
        "weight": [0.0, 0.0, 0.0, 0.1, 0.03, 1.2, 1.5, 0.0, 0.0, 0.0, 0.5],
        "seed": [0, 0, 1, 0, 0, 0, 0, 1, 2, 0, 0],
        "run": list("abcdefghijk")})
    choices = pd.DataFrame({"setting": ["s"], "objective": ["label_smoothing"], "chosen": [0.1]})
    kept = chosen_runs(results, choices)
    # EMO at one value in s is kept with every seed; in t it ran at two values and has no chosen one; beta was
    # neither tuned nor run at one value; label smoothing keeps its chosen value only
    assert sorted(kept["run"]) == ["a", "b", "c", "d", "h", "i"]
