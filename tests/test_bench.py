"""The benchmark's machinery on a tiny size: child processes, the CSVs, ratios, failures. No timing assertion."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from entropylab.bench import profile, report, runner
from entropylab.bench.pipelines import PIPELINES, Pipeline, Settings, parse_pipelines
from entropylab.cli import main as cli_main

TINY = Settings(dataset="synthetic", max_sequences=300, epochs=2, lstm_units=8, quick=True)


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    folder = tmp_path_factory.mktemp("benchmarks")
    lines: list[str] = []
    rows, summary = runner.run_benchmark(parse_pipelines("naive,ours"), TINY, folder,
                                         echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    return rows, summary, "\n".join(lines)


def _read(path):
    with open(path, newline="", encoding="utf8") as handle:
        return list(csv.DictReader(handle))


def test_writes_summary_and_epoch_csvs_with_the_expected_columns(tiny_benchmark):
    _, summary, _ = tiny_benchmark
    assert summary.name.endswith("_quick.csv")
    table = _read(summary)
    assert list(table[0]) == list(report.CSV_COLUMNS)
    assert [r["pipeline"] for r in table] == ["naive", "ours"]
    assert all(r["status"] == "ok" for r in table), [r["error"] for r in table]
    for r in table:
        assert float(r["seconds_per_epoch"]) > 0 and float(r["peak_rss_mb"]) > 0
        assert r["cores"] and r["cpu_model"] and r["tensorflow"] and r["keras"] and r["python"]
        assert int(r["epochs"]) == 2 and int(r["batch_size"]) == 32 and r["dataset"] == "synthetic"
        assert len(r["loss"].split(";")) == 2 and len(r["epoch_seconds"].split(";")) == 2
    naive, ours = table
    assert float(naive["time_vs_naive"]) == 1.0 and float(naive["memory_vs_naive"]) == 1.0
    assert (naive["n_train"], naive["n_val"]) == (ours["n_train"], ours["n_val"]) == ("240", "60")
    assert naive["xla"] == "False" and ours["xla"] == "True"
    epochs = _read(summary.with_name(summary.stem + "_epochs.csv"))
    assert list(epochs[0]) == list(report.EPOCH_COLUMNS)
    assert [(e["pipeline"], e["epoch"]) for e in epochs] == [("naive", "1"), ("naive", "2"), ("ours", "1"),
                                                            ("ours", "2")]


def test_each_pipeline_ran_in_its_own_process(tiny_benchmark):
    import os

    rows, _, _ = tiny_benchmark
    pids = [r["pid"] for r in rows]
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_prints_the_table_the_curves_and_the_goals(tiny_benchmark):
    _, summary, text = tiny_benchmark
    assert "time/naive" in text and "mem/naive" in text and "total s" in text
    assert "naive loss" in text and "ours val" in text
    assert "ours vs naive: max relative difference" in text
    assert "goal <= 1/3" in text and "goal <= 1/8" in text
    assert str(summary) in text


def test_the_naive_label_matrix_is_the_dense_one_hot(tiny_benchmark):
    rows, _, _ = tiny_benchmark
    naive = rows[0]
    assert naive["label_bytes"] == naive["sequences"] * naive["vocab_size"] * 8  # float64 one-hot


def test_summaries_and_ratios():
    assert runner.summarize_epochs([9.0, 2.0, 4.0, 3.0], 300) == {
        "seconds_per_epoch": 3.0, "first_epoch_seconds": 9.0, "sequences_per_second": 100.0}
    assert runner.summarize_epochs([5.0], 10)["seconds_per_epoch"] == 5.0
    rows = [{"pipeline": "naive", "status": "ok", "seconds_per_epoch": 10.0, "peak_rss_mb": 800.0,
             "total_seconds": 40.0},
            {"pipeline": "ours", "status": "ok", "seconds_per_epoch": 2.0, "peak_rss_mb": 100.0, "total_seconds": 10.0},
            {"pipeline": "ours-jax", "status": "failed"}]
    runner.add_ratios(rows)
    assert rows[1]["time_vs_naive"] == 0.2 and rows[1]["memory_vs_naive"] == 0.125
    assert math.isnan(rows[2]["time_vs_naive"])
    assert any("met" in line and "NOT" not in line for line in report.verdict(rows))
    rows[1]["seconds_per_epoch"], rows[1]["time_vs_naive"] = 5.0, 0.5
    assert "NOT met" in report.verdict(rows)[0]
    assert "= 0.250" in report.verdict(rows)[2]  # the whole training call
    assert "full data" in report.verdict(rows, quick=True)[-1]


def test_curve_agreement_measures_the_learned_part():
    vocab = 100
    naive = {"pipeline": "naive", "status": "ok", "vocab_size": vocab, "loss": [0.0100, 0.0099],
             "val_loss": [0.0100, 0.0098]}
    ours = {"pipeline": "ours", "status": "ok", "loss": [0.0100, 0.0099], "val_loss": [0.0100, 0.0097]}
    (entry,) = runner.curve_agreement([naive, ours])
    assert entry["loss_rel_diff"] == 0.0
    assert entry["val_loss_rel_diff"] == pytest.approx(0.0001 / 0.0098)
    assert entry["val_loss_learned_rel_diff"] == pytest.approx(0.01 / 0.02)  # V*mse-1: -0.02 vs -0.03


def test_unknown_pipelines_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="naive, ours"):
        parse_pipelines("naive,turbo")
    assert cli_main(["bench", "--pipelines", "turbo"]) == 2


def test_the_default_output_folder_is_under_the_outputs_folder(monkeypatch, tmp_path):
    """Without ``--output-dir`` the CSVs go to ``<outputs>/benchmarks``, so ``$ENTROPYLAB_OUTPUTS`` is honoured."""
    seen = []

    def record(pipelines, settings, output_dir):
        seen.append(Path(output_dir))
        return [{"status": "ok"}], None

    monkeypatch.setenv("ENTROPYLAB_OUTPUTS", str(tmp_path))
    monkeypatch.setattr(runner, "run_benchmark", record)
    assert cli_main(["bench", "--quick", "--pipelines", "ours"]) == 0
    assert cli_main(["bench", "--quick", "--pipelines", "ours", "--output-dir", str(tmp_path / "here")]) == 0
    assert seen == [tmp_path / "benchmarks", tmp_path / "here"]


def test_a_missing_backend_is_skipped_and_a_crashing_child_is_a_failed_row():
    missing = Pipeline("other", "ours", backend="no-such-backend")
    assert runner.measure(missing, TINY)["status"] == "skipped"
    unknown = Pipeline("not-registered", "ours")  # the child cannot find it and reports why
    row = runner.measure(unknown, TINY, timeout=120)
    assert row["status"] == "failed" and "not-registered" in row["error"]
    row = runner.measure(PIPELINES["ours"], TINY, timeout=0.01)  # killed before it writes anything
    assert row["status"] == "failed" and "timed out" in row["error"]


def test_flop_count_matches_the_model():
    """The parameter count behind the arithmetic estimate is the model's own."""
    from entropylab.model import build_model

    model = build_model(500, 23)
    flops = profile.model_flops(500, 23)
    assert flops["params"] == model.count_params()
    assert flops["lstm_forward"] == 23 * 2 * 110 * 400 and flops["dense_forward"] == 2 * 100 * 500
    n_train, n_val = 41416, 10354  # the NYT tail split: ~0.58 TFLOP per epoch (issue 4)
    assert profile.epoch_flops(n_train, n_val, 11265) == pytest.approx(0.58e12, rel=0.05)


def test_generation_benchmark_times_both_ways_on_the_same_words(tmp_path):
    from entropylab.bench.generation import measure
    from entropylab.training import RunConfig, run

    config = RunConfig(dataset="synthetic", loss="cross_entropy", epochs=1, max_sequences=300, jit_compile=False,
                       threads=1)
    assert run(config, tmp_path / config.run_name).status == "complete"
    rows = {r["way"]: r for r in measure(tmp_path / config.run_name, prefixes=20, n_words=3, repeats=1,
                                         per_sequence_prefixes=5)}
    assert rows["batched"]["model_calls"] == 3 and rows["per_sequence"]["model_calls"] == 15
    assert rows["per_sequence"]["seconds_for_prefixes"] == pytest.approx(
        rows["per_sequence"]["median_seconds_measured"] * 20 / 5)
    from entropylab.bench.generation import ORDERING_DECODERS, measure_decoders

    timed = measure_decoders(tmp_path / config.run_name, prefixes=20, n_words=3, repeats=1)  # checks equal words
    assert len(timed) == 2 * len(ORDERING_DECODERS) and all(r["median_seconds"] > 0 for r in timed)


# -- bench overhead: where one run's time goes ------------------------------------------------------------------------

TRAIN_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_objectives_train.ipynb"


def test_overhead_benchmark_cuts_one_run_into_phases_that_add_up_to_its_wall_time(tmp_path, capsys):
    from entropylab.bench.overhead import EPOCH_PHASES, PHASES

    params = tmp_path / "tiny.yaml"
    params.write_text("experiment: tiny-overhead\nthreads: 1\n"
                      "defaults: {dataset: synthetic, epochs: 2, jit_compile: false, generation_prefixes: 20, "
                      "patience: null}\nsettings: [{max_sequences: 300}, {max_sequences: 400}]\n"
                      f"runs:\n  - notebook: {TRAIN_NOTEBOOK}\n    grid: {{loss: cross_entropy, seed: [0, 1]}}\n")
    out = tmp_path / "benchmarks"
    assert cli_main(["bench", "overhead", str(params), "--runs", "1", "--output-dir", str(out)]) == 0
    [path] = out.glob("overhead_*.csv")
    printed = capsys.readouterr().out
    assert str(path) in printed and printed.count("run 1/2") == printed.count("run 2/2") == 1  # one run per setting
    everything = _read(path)
    settings = list(dict.fromkeys(r["setting"] for r in everything))
    assert settings == [f"dataset=synthetic split=headline max_sequences={n} epochs=2 patience=None"
                        for n in (300, 400)]
    assert all(f"\n{label}\n" in printed for label in settings)  # a table per setting
    table = [r for r in everything if r["setting"] == settings[0]]  # the first run: a cold kernel
    phases = {r["phase"]: r for r in table if r["kind"] == "phase"}
    totals = {r["phase"]: float(r["median_seconds"]) for r in table if r["kind"] == "total"}
    assert list(phases) == [name for name, _ in PHASES]
    assert all(r["runs"] == "1" and r["params"] == str(params) and r["cpu_model"] for r in table)
    seconds = {name: float(r["median_seconds"]) for name, r in phases.items()}
    assert all(value >= 0 for value in seconds.values()), seconds
    assert all(seconds[name] > 0 for name in ("kernel_start", "run_imports", "first_epoch", "later_epochs",
                                              "validation", "generation", "write_run_folder")), seconds
    assert sum(seconds.values()) <= totals["wall"] + 1e-6
    assert (phases["later_epochs"]["count"], phases["validation"]["count"]) == ("1", "2")  # 2 epochs
    assert math.isclose(totals["epochs"], sum(seconds[name] for name in EPOCH_PHASES), rel_tol=1e-6)
    assert math.isclose(totals["epochs"] + totals["outside_epochs"], totals["wall"], rel_tol=1e-6)


def test_phase_times_are_opt_in_and_leave_the_run_unchanged(tmp_path, monkeypatch):
    from entropylab.training import RunConfig, run
    from entropylab.training.phases import ENVIRONMENT, PHASES_FILE, RUN_PHASES, read_phases

    config = RunConfig(dataset="synthetic", epochs=2, max_sequences=600, lstm_units=16, jit_compile=False,
                       generation_prefixes=20, synthetic={"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3})
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    plain = run(config, tmp_path / "plain")
    monkeypatch.setenv(ENVIRONMENT, "1")
    timed = run(config, tmp_path / "timed")
    assert not (tmp_path / "plain" / PHASES_FILE).exists()
    with pytest.raises(FileNotFoundError, match=ENVIRONMENT):
        read_phases(tmp_path / "plain")
    columns = [c for c in plain.history.columns if c != "seconds"]
    import pandas as pd

    pd.testing.assert_frame_equal(plain.history[columns], timed.history[columns], check_exact=True)
    def numbers(metrics: dict) -> dict:  # the metrics less the clocks (the epoch rows' "seconds" too)
        clocks = ("seconds_total", "seconds_per_epoch", "peak_memory_mb")
        return {k: {e: x for e, x in v.items() if e != "seconds"} if k in ("best", "final") else v
                for k, v in metrics.items() if k not in clocks}

    same = json.dumps(numbers(plain.metrics), sort_keys=True, default=str)  # NaN (an empty word band) is itself
    assert same == json.dumps(numbers(timed.metrics), sort_keys=True, default=str)
    assert all(np.array_equal(a, b) for a, b in zip(plain.model.get_weights(), timed.model.get_weights(), strict=True))
    assert plain.metrics["generation"] and plain.metrics["references"]
    assert (tmp_path / "plain" / "config.json").read_text() == (tmp_path / "timed" / "config.json").read_text()
    phases = read_phases(tmp_path / "timed")
    assert set(phases["seconds"]) == set(RUN_PHASES) and all(v >= 0 for v in phases["seconds"].values())
    assert phases["counts"]["later_epochs"] == 1 and phases["counts"]["validation"] == 2
    # the laps cover the run end to end: more than its own total, and each epoch's training steps
    assert phases["total"] >= timed.metrics["seconds_total"]
    assert phases["seconds"]["first_epoch"] >= timed.history["seconds"][0]
    assert phases["seconds"]["later_epochs"] >= timed.history["seconds"][1]


def test_the_overhead_benchmark_needs_a_training_cell():
    from entropylab.bench.overhead import training_cell_index

    cells = [{"cell_type": "code", "source": "from entropylab.experiments.point import train_point"},
             {"cell_type": "markdown", "source": "result = train_point(...)"}]
    with pytest.raises(ValueError, match="one cell calling train_point"):
        training_cell_index(cells, "x.ipynb")
    assert training_cell_index([*cells, {"cell_type": "code", "source": ["result = ", "train_point(1)"]}], "x") == 2
