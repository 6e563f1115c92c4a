"""The scale study: its file's checks, each cell's dropout chosen on dev, the cells' objectives at that dropout,
the report (per-cell verdicts, the answer per objective, the scaling-law fit), and its rules on planted data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from study_runner import reproduce

from entropylab.experiments.params import ParamsError, load_params
from entropylab.paths import project_root
from entropylab.studies.scale import spec, tables

ROOT = project_root(Path(__file__).parent)
SMOKE = ROOT / "params" / "scale_smoke.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    done = reproduce("scale", SMOKE, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout


def test_each_cell_takes_the_dropout_of_lowest_dev_cross_entropy_and_trains_its_objectives_there(study):
    root, stdout = study
    dropouts = pd.read_csv(root / "results" / "scale-smoke-dropout.csv")
    assert len(dropouts) == 4 and set(dropouts["grid"]) == {"0 0.2"}
    for row in dropouts.itertuples():
        scores = [float(s) for s in row.dev_cross_entropy.split()]
        assert float(row.grid.split()[int(np.argmin(scores))]) == row.chosen
    chosen = {(r.max_sequences, r.embedding_dim, r.lstm_units): r.chosen for r in dropouts.itertuples()}
    results = pd.read_csv(root / "results" / "scale-smoke-grid.csv")
    assert len(pd.read_csv(root / "results" / "scale-smoke-grid-plan.csv")) == 24  # 4 cells x 2 seeds x 3 objectives
    for row in results.drop_duplicates("run").itertuples():
        assert row.dropout == chosen[(row.max_sequences, row.embedding_dim, row.lstm_units)]
        assert row.test_fraction == 0.2 and not row.tuning
    assert {"train_sequences", "test_cross_entropy", "test_entropy_floor", "ref_kneser_ney_cross_entropy"} <= \
        set(results.columns)
    tuned = pd.read_csv(root / "results" / "scale-smoke-grid-tuning.csv")
    assert tuned["tuning"].all() and len(tuned.drop_duplicates("run")) == 8  # 4 cells x 2 values
    assert "dropout" in stdout


def test_the_report_gives_every_cell_its_verdicts_the_answers_and_the_fit(study):
    root, _ = study
    folder = root / "tables" / "scale-smoke"
    overview = pd.read_csv(folder / "overview.csv")
    assert len(overview) == 4
    assert list(overview["data"]) == [300, 300, 1200, 1200] and list(overview["model"]) == ["4/8", "8/16"] * 2
    assert (overview["floor"] < overview["cross_entropy_model"]).all()
    assert np.allclose(overview["distance"], overview["cross_entropy_model"] - overview["floor"], atol=1e-9)
    cells = pd.read_csv(folder / "cells_numbers.csv")
    for objective in ("label_smoothing", "emo"):  # a tuned objective at its chosen value, an untuned one as run
        judged = cells[cells["objective"] == objective]
        assert len(judged) == 4 and judged["verdict_cross_entropy"].notna().all() and (judged["seeds"] == 2).all()
    answers = pd.read_csv(folder / "answers.csv")
    assert list(answers["objective"]) == ["label_smoothing", "emo"] and (answers["cells"] == 4).all()
    fits = pd.read_csv(folder / "scaling_fits.csv")
    assert set(fits["objective"]) == {"cross_entropy", "label_smoothing", "emo"}
    bands = pd.read_csv(folder / "bands.csv")  # every cell's label-smoothing runs against cross-entropy, per band
    assert set(bands["setting"]) == set(overview["cell"]) and set(bands["objective"]) == {"label_smoothing", "emo"}
    assert set(bands["band"]) <= {"frequent", "middle", "rare", "unseen"} and (bands["side"] == "test").all()
    assert (root / "figures" / "scale-smoke" / "differences_vs_distance.png").stat().st_size > 10_000
    notebook = json.loads((root / "notebooks" / "scale-smoke" / "09_scale.ipynb").read_text())
    assert '"output_type": "error"' not in json.dumps(notebook)
    assert json.loads((root / "studies" / "scale-smoke" / "status.json").read_text())["complete"] is True


def test_a_second_run_redoes_nothing(study):
    root, _ = study
    again = reproduce("scale", SMOKE, root)
    assert again.returncode == 0, again.stderr[-2000:]
    summaries = [line for line in again.stdout.splitlines() if " ran, " in line]
    assert summaries and all(line.startswith("0 ran,") and "0 failed" in line for line in summaries)


def _write(tmp_path: Path, change) -> Path:
    document = yaml.safe_load(SMOKE.read_text())
    change(document)
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("scale"), "scale: missing"),
    (lambda d: d["scale"].update(extra=1), "scale.extra: unknown key"),
    (lambda d: d["settings"][0].update(dropout=0.1), "settings[0].dropout: is chosen on dev"),
    (lambda d: d["settings"][1].update(embedding_dim=4, lstm_units=8), "the same"),  # the same runs
    (lambda d: d["runs"][0]["grid"].update(loss="label_smoothing", weight=0.1), "expected loss cross_entropy"),
    (lambda d: d["runs"][0]["grid"].update(dropout=[0.1]), "at least two dropouts"),
    (lambda d: d["settings"][0].pop("lstm_units"), "lacks lstm_units"),
])
def test_a_malformed_scale_file_is_one_line_naming_the_key(tmp_path, change, message):
    path = _write(tmp_path, change)
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec.read_spec(load_params(path))


def test_the_second_sweeps_file_sets_each_cells_chosen_dropout():
    params = load_params(SMOKE)
    read = spec.read_spec(params)
    assert read.dropouts == (0.0, 0.2)
    document = spec.grid_document(params, read, {0: 0.0, 1: 0.2, 2: 0.2, 3: 0.0})
    assert document["experiment"] == "scale-smoke-grid"
    assert [s["dropout"] for s in document["settings"]] == [0.0, 0.2, 0.2, 0.0]
    assert document["verdicts"]["min_seeds"] == 2 and document["runs"] == read.runs


def test_the_answer_rule_reads_the_slope_of_the_advantage_against_the_distance():
    distance = np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.6])

    def planted(advantage: np.ndarray, objective: str) -> pd.DataFrame:
        half = 0.004 * tables.Z_95  # a standard error of 0.004 nats per cell
        return pd.DataFrame({"objective": objective, "metric": "cross_entropy", "distance": distance,
                             "delta": -advantage, "low": -advantage - half, "high": -advantage + half,
                             "verdict": np.where(advantage > 0.02, "better", "no difference")})

    diffs = pd.concat([planted(0.1 * distance, "fades"), planted(0.1 - 0.05 * distance, "grows"),
                       planted(np.full(6, 0.03), "steady")])
    answers = tables.answers(diffs).set_index("objective")
    assert answers.loc["fades", "trend"].startswith("shrinks")
    assert answers.loc["grows", "trend"].startswith("grows")
    assert answers.loc["steady", "trend"].startswith("holds")
    assert answers.loc["steady", "better_cells"] == 6
    assert "better than cross-entropy in 6 of 6 cells" in answers.loc["steady", "answer"]
    b, low, high = tables.slope(distance, 0.1 * distance, np.full(6, 0.004))
    assert b == pytest.approx(0.1, abs=1e-9) and low < b < high


def test_the_scaling_law_fit_recovers_planted_exponents():
    rng = np.random.default_rng(0)
    rows = []
    middle_n, middle_d = tables.lstm_parameters(32, 128), 8_000.0
    for objective, alpha in (("cross_entropy", 0.30), ("steeper", 0.60)):
        for e, u in ((10, 100), (32, 128), (64, 256)):
            n = tables.lstm_parameters(e, u)
            for d in (2_000.0, 8_000.0, 32_000.0):
                for seed in range(3):  # both terms 0.3 nats in the middle cell
                    excess = 0.3 * (n / middle_n) ** -alpha + 0.3 * (d / middle_d) ** -0.4
                    rows.append({"objective": objective, "embedding_dim": e, "lstm_units": u, "train_sequences": d,
                                 "setting": f"{e}/{u} {d}", "seed": seed, "test_entropy_floor": 2.0,
                                 "test_cross_entropy": 2.0 + excess * math.exp(rng.normal(0, 0.01))})
    fits = tables.scaling_fits(pd.DataFrame(rows)).set_index("objective")
    assert fits.loc["cross_entropy", "alpha"] == pytest.approx(0.30, abs=0.05)
    assert fits.loc["steeper", "alpha"] == pytest.approx(0.60, abs=0.05)
    assert fits.loc["cross_entropy", "beta"] == pytest.approx(0.40, abs=0.05)
    assert fits.loc["steeper", "versus_cross_entropy"].startswith("changes alpha")
    assert fits.loc["cross_entropy", "rmse_log"] < 0.05


def test_an_exponent_the_grid_cannot_pin_down_is_named_not_identified():
    rng = np.random.default_rng(1)
    rows = []
    for objective in ("cross_entropy", "other"):
        for e, u in ((10, 100), (32, 128), (64, 256)):
            for d in (1_000.0, 4_000.0, 16_000.0):
                for seed in range(3):  # the excess falls with data only: no term in N to fit
                    excess = 0.6 * (d / 4_000.0) ** -0.25
                    rows.append({"objective": objective, "embedding_dim": e, "lstm_units": u, "train_sequences": d,
                                 "setting": f"{e}/{u} {d}", "seed": seed, "test_entropy_floor": 3.0,
                                 "test_cross_entropy": 3.0 + excess * math.exp(rng.normal(0, 0.05))})
    fits = tables.scaling_fits(pd.DataFrame(rows)).set_index("objective")
    assert fits.loc["cross_entropy", "beta"] == pytest.approx(0.25, abs=0.05)
    assert fits.loc["cross_entropy", "identified"] == "beta"
    assert fits.loc["other", "versus_cross_entropy"] == \
        "only a constant (beta within error); alpha not identified on this grid"

