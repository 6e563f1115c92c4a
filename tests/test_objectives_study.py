"""The objectives study's whole chain on its smoke file: tuning on a carve, the choice, the chosen values with
seeds, the report notebook's tables and figures, and a second run that redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from study_runner import reproduce

from entropylab.paths import project_root

ROOT = project_root(Path(__file__).parent)
SMOKE = ROOT / "params" / "objectives_smoke.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("objectives")
    done = reproduce("objectives", SMOKE, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout


def test_tuning_chooses_on_dev_then_runs_the_chosen_value_with_every_seed(study):
    root, stdout = study
    choices = pd.read_csv(root / "results" / "objectives-smoke-choices.csv")
    assert len(choices) == 2 and set(choices["split"]) == {"headline", "tail"}
    tuned = pd.read_csv(root / "results" / "objectives-smoke-tuning.csv")
    assert tuned["tuning"].all() and sorted(tuned["weight"].unique()) == [0.05, 0.2]
    results = pd.read_csv(root / "results" / "objectives-smoke.csv")
    assert not results["tuning"].any()
    plan = pd.read_csv(root / "results" / "objectives-smoke-plan.csv")
    assert set(plan["run"]) == set(results["run"]) and len(plan) == 8  # 2 settings x (2 cross-entropy + 2 chosen)
    for row in choices.itertuples():
        runs = results[(results["objective"] == "label_smoothing") & (results["split"] == row.split)]
        assert sorted(runs["weight"].unique()) == [row.chosen]  # neighbours: 0
        assert sorted(runs["seed"].unique()) == [0, 1]
        best = pd.Series(map(float, row.tuning_cross_entropy.split())).idxmin()
        assert float(row.grid.split()[best]) == row.chosen  # the lowest tuning score wins
    assert {"best_epoch", "val_ece", "val_ece_adaptive", "val_brier", "val_entropy_gap", "gen_sample_distinct_2",
            "true_kl", "gen_greedy_true_loglik", "test_cross_entropy", "test_true_kl", "test_ece_adaptive",
            "ref_kneser_ney_cross_entropy"} <= set(results.columns)
    assert (results["split_seed"] == results["seed"]).all() and (results["test_fraction"] == 0.2).all()
    # the choice is made on dev: the tuning runs' sides are the reported runs' sides, and test is not read for it
    assert set(tuned["test_fraction"]) == {0.2}
    rule = json.loads((root / "results" / "objectives-smoke-rule.json").read_text())
    assert rule == {"smallest_effect": {"cross_entropy": 0.01, "ece_adaptive": 0.005, "true_kl": 0.01},
                    "min_seeds": 5}
    assert "tuned label_smoothing on synthetic/headline" in stdout


def test_the_report_writes_one_table_per_setting_with_verdicts_and_the_figures(study):
    root, _ = study
    tables = root / "tables" / "objectives-smoke"
    for setting in ("synthetic_headline", "synthetic_tail"):
        numbers = pd.read_csv(tables / f"{setting}_numbers.csv")
        assert list(numbers["objective"][:2]) == ["cross_entropy", "label_smoothing"]
        assert {"add-one unigram", "Kneser-Ney (order chosen on dev)", "source (the floor H(q))"} <= \
            set(numbers["objective"])
        assert (numbers["side"] == "test").all()
        assert numbers.loc[1, "verdict_cross_entropy"] == "too few seeds"  # two seeds, the rule asks for 5
        assert numbers.loc[0, "cross_entropy_low"] <= numbers.loc[0, "cross_entropy"] <= \
            numbers.loc[0, "cross_entropy_high"]
        assert "verdict_ece_adaptive" in numbers.columns and "verdict_ece" not in numbers.columns
        assert "true KL" in (tables / f"{setting}.md").read_text()
    reliability = pd.read_csv(root / "results" / "objectives-smoke-reliability.csv")
    assert set(reliability["binning"]) == {"equal_width", "adaptive"}  # the figure shows the adaptive bins
    adaptive = reliability[reliability["binning"] == "adaptive"]
    assert (adaptive.groupby(["objective", "weight", "seed", "setting"])["count"].sum() > 0).all()
    for figure in ("perplexity_vs_value", "reliability", "true_kl_vs_value"):
        assert (root / "figures" / "objectives-smoke" / f"{figure}.png").stat().st_size > 10_000
    notebook = json.loads((root / "notebooks" / "objectives-smoke" / "07_objectives.ipynb").read_text())
    text = json.dumps(notebook)
    assert "synthetic/headline" in text and '"output_type": "error"' not in text


def test_a_second_run_redoes_nothing(study):
    root, _ = study
    again = reproduce("objectives", SMOKE, root)
    assert again.returncode == 0, again.stderr[-2000:]
    summaries = [line for line in again.stdout.splitlines() if " ran, " in line]
    assert summaries and all(line.startswith("0 ran,") and "0 failed" in line for line in summaries)
