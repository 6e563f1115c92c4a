"""The paper's study and the analysis it uses: results collection, tables, trends, predictions, claims."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from entropylab.analysis import claims as ct
from entropylab.analysis import tables, trends
from entropylab.experiments import results as results_table
from entropylab.studies.paper import claims as paper_claims
from entropylab.studies.paper import predictions, reported
from entropylab.studies.paper.reported import PAPER_SEED_TEXTS
from entropylab.training import store

METRICS = ("paper_entropy", "paper_kl", "loss", "val_loss", "val_cross_entropy", "val_perplexity")


def fake_results(spec: list[tuple[str, float, int, dict[str, list[float]]]]) -> pd.DataFrame:
    """A tidy results frame: (objective, weight, seed, {metric: one value per epoch}); unset metrics are 1.0."""
    rows = []
    for objective, weight, seed, values in spec:
        n = len(next(iter(values.values())))
        for epoch in range(n):
            row = {"objective": objective, "weight": weight, "seed": seed, "epoch": epoch + 1,
                   "run": f"{objective}_w{weight:g}_seed{seed}"}
            row.update({m: values.get(m, [1.0] * n)[epoch] for m in METRICS})
            rows.append(row)
    return pd.DataFrame(rows)


def falling(start: float = 10.0, n: int = 5, rate: float = 0.2) -> list[float]:
    return [start * (1 - rate) ** i for i in range(n)]


def rising(start: float = 10.0, n: int = 5, rate: float = 0.2) -> list[float]:
    return [start * (1 + rate) ** i for i in range(n)]


def verdict(claims: pd.DataFrame, fragment: str) -> str:
    rows = claims[claims["claim"].str.contains(fragment, regex=False)]
    assert len(rows) == 1, fragment
    return rows["verdict"].iloc[0]


# --- the paper's reported values -------------------------------------------------------------------------

def test_paper_predictions_are_six_seed_texts_of_ten_words():
    assert set(reported.PAPER_PREDICTIONS) == set(reported.PREDICTION_RUNS)
    for table in reported.PAPER_PREDICTIONS.values():
        assert tuple(table) == PAPER_SEED_TEXTS
        assert all(len(words) == 10 for words in table.values())
    control_words = {w for words in reported.PAPER_PREDICTIONS["control"].values() for w in words}
    assert control_words == {"To", "A"}
    table = reported.paper_prediction_table("kl_regularized_w100")
    assert table["words"].iloc[0] == "[Crash An Left An 23 An Flight 23 Flight An]"
    with pytest.raises(KeyError, match="paper's are"):
        reported.paper_prediction_table("kl_regularized_w1")


def test_generation_summary_counts_words():
    summary = predictions.generation_summary({"a": ["x", "x", "y"], "b": ["x", "x", "y"], "c": ["z", "z", "z"]})
    assert summary["distinct_words"] == 3
    assert summary["distinct_per_continuation"] == pytest.approx((2 + 2 + 1) / 3)
    assert summary["top_word_share"] == pytest.approx(4 / 9)
    assert summary["distinct_continuations"] == 2
    with pytest.raises(ValueError, match="no continuations"):
        predictions.generation_summary({})


def test_side_by_side_keeps_the_papers_order_and_aligns_rows():
    ours = pd.DataFrame({"seed_text": list(reversed(PAPER_SEED_TEXTS)),
                         "words": [f"[W{i}]" for i in range(6)], "mean_probability": np.linspace(0.1, 0.6, 6)})
    table = predictions.side_by_side(ours, "control")
    assert list(table.columns) == ["seed_text", "paper", "ours", "ours_mean_probability"]
    assert tuple(table["seed_text"]) == PAPER_SEED_TEXTS
    assert table.loc[table["seed_text"] == "United States", "ours"].item() == "[W5]"
    assert table.loc[0, "paper"] == "[To To A A To A A To A A]"
    assert predictions.words_of(table, "paper")["New York"][:3] == ["To", "A", "A"]


# --- trends and verdicts ---------------------------------------------------------------------------------

def test_relative_slope_change_and_trend():
    assert trends.relative_slope([1, 2, 3], [2, 4, 6]) == pytest.approx(2 / 4)
    assert trends.relative_slope([1, 2, 3], [6, 4, 2]) == pytest.approx(-2 / 4)
    assert math.isnan(trends.relative_slope([1], [3.0]))
    assert math.isnan(trends.relative_slope([1, 2], [0.0, 0.0]))
    assert trends.relative_change([4.0, 5.0, 3.0]) == pytest.approx(-0.25)
    assert math.isnan(trends.relative_change([2.0]))
    assert trends.trend(-0.05) == "decreasing"
    assert trends.trend(0.05) == "increasing"
    assert trends.trend(trends.TREND_TOLERANCE / 2) == "flat"
    assert trends.trend(math.nan) is None


def test_combine_needs_every_seed():
    assert ct.combine([ct.AGREE, ct.AGREE]) == (ct.AGREE, "")
    assert ct.combine([ct.DISAGREE])[0] == ct.DISAGREE
    assert ct.combine([ct.AGREE, ct.DISAGREE])[0] == ct.CANNOT_TELL
    assert ct.combine([None, None])[0] == ct.CANNOT_TELL
    assert ct.combine([ct.AGREE, None])[0] == ct.CANNOT_TELL


def test_combine_all_needs_every_unit():
    assert ct.combine_all({"a": (ct.AGREE, ""), "b": (ct.AGREE, "")}) == (ct.AGREE, "")
    verdict_, note = ct.combine_all({"a": (ct.AGREE, ""), "b": (ct.DISAGREE, "")})
    assert verdict_ == ct.DISAGREE and "b" in note
    assert ct.combine_all({"a": (ct.AGREE, ""), "b": (ct.CANNOT_TELL, "x")})[0] == ct.CANNOT_TELL
    assert ct.combine_all({})[0] == ct.CANNOT_TELL


def _paper_like(kl_metric: list[float], seeds: int = 2) -> pd.DataFrame:
    spec = []
    for seed in range(seeds):
        flat = [1.0 + 0.001 * seed] * 5
        spec += [
            ("mse", 0.0, seed, {"loss": flat, "val_loss": flat, "paper_entropy": [10.0] * 5,
                                "val_cross_entropy": [9.0] * 5, "val_perplexity": [8000.0] * 5}),
            ("entropy_regularized", 1e-7, seed, {"loss": flat, "val_loss": flat, "paper_entropy": [9.0] * 5,
                                                 "paper_kl": rising(), "val_perplexity": [8000.0] * 5}),
            ("kl_regularized", 10.0, seed, {"paper_kl": kl_metric, "loss": falling(), "val_loss": falling(),
                                            "paper_entropy": falling(), "val_cross_entropy": [7.0] * 5,
                                            "val_perplexity": [1000.0] * 5}),
            ("kl_regularized", 100.0, seed, {"paper_kl": kl_metric, "loss": falling(),
                                             "val_loss": [2 * v for v in falling()],
                                             "paper_entropy": falling(), "val_cross_entropy": [7.5] * 5,
                                             "val_perplexity": [1800.0] * 5}),
        ]
    return fake_results(spec)


def test_claims_follow_the_numbers():
    claims = paper_claims.claims_table(_paper_like(falling()))
    assert set(claims["verdict"]) <= {ct.AGREE, ct.DISAGREE, ct.CANNOT_TELL}
    assert list(claims.columns) == ["section", "claim", "paper", "measured", "rule", "verdict", "note"]
    assert verdict(claims, "KL weights 10 and 100 give decreasing KL") == ct.AGREE
    assert verdict(claims, "KL weight 100 gives a consistently decreasing entropy") == ct.AGREE
    assert verdict(claims, "(w=1e-7) the KL divergence increases") == ct.AGREE
    assert verdict(claims, "starts at a slightly lower entropy") == ct.AGREE  # 9 vs 10
    assert verdict(claims, "The control's training and validation losses show no trend") == ct.AGREE
    assert verdict(claims, "validation loss stays high") == ct.AGREE  # w=100: val = 2 x train
    assert verdict(claims, "KL weight 10 is the best") == ct.AGREE
    assert verdict(claims, "substantial benefit") == ct.AGREE  # perplexity 1000 vs 8000
    assert verdict(claims, "unrelated to the seed text") == ct.CANNOT_TELL
    # without prediction tables the generation claims cannot be told
    assert verdict(claims, "weight 10 the continuations are more diverse") == ct.CANNOT_TELL

    rising_kl = paper_claims.claims_table(_paper_like(rising()))
    assert verdict(rising_kl, "KL weights 10 and 100 give decreasing KL") == ct.DISAGREE


def test_every_weight_claim_fails_on_one_consistent_weight():
    results = _paper_like(falling())
    moving = fake_results([("entropy_regularized", 1.0, seed, {"loss": falling(), "val_loss": falling()})
                           for seed in (0, 1)])
    claims = paper_claims.claims_table(pd.concat([results, moving], ignore_index=True))
    row = claims[claims["claim"].str.contains("training and validation losses stay roughly constant")].iloc[0]
    assert row["verdict"] == ct.DISAGREE and "w=1 loss" in row["note"]


def test_seeds_that_disagree_give_cannot_tell():
    results = _paper_like(falling(), seeds=1)
    other = _paper_like(rising(), seeds=1).assign(seed=1)
    claims = paper_claims.claims_table(pd.concat([results, other], ignore_index=True))
    row = claims[claims["claim"].str.contains("decreasing KL")].iloc[0]
    assert row["verdict"] == ct.CANNOT_TELL and "seeds disagree" in row["note"]


def test_one_epoch_or_no_runs_cannot_tell():
    one_epoch = _paper_like(falling()).query("epoch == 1")
    claims = paper_claims.claims_table(one_epoch)
    assert verdict(claims, "decreasing KL") == ct.CANNOT_TELL
    empty = paper_claims.claims_table(pd.DataFrame(columns=["objective", "weight", "seed", "epoch", *METRICS]))
    assert set(empty["verdict"]) == {ct.CANNOT_TELL}
    assert len(empty) == len(paper_claims.CLAIMS)
    text = ct.format_claims(empty)
    assert text.count("verdict: CANNOT TELL") == len(paper_claims.CLAIMS)
    assert ct.verdict_counts(empty) == {ct.AGREE: 0, ct.DISAGREE: 0, ct.CANNOT_TELL: len(empty)}


def test_generation_claims_use_the_prediction_tables():
    results = _paper_like(falling())
    paper_tables = {key: reported.paper_prediction_table(key) for key in reported.PREDICTION_RUNS}
    claims = paper_claims.claims_table(results, paper_tables)
    assert verdict(claims, "weight 10 the continuations are more diverse") == ct.AGREE  # 5 words vs 2
    assert verdict(claims, "repeat two short words") == ct.AGREE
    assert "2 distinct words" in claims.loc[claims["claim"].str.contains("repeat two"), "paper"].item()
    monotone = {key: t.assign(words="[X X X X X X X X X X]") for key, t in paper_tables.items()}
    claims = paper_claims.claims_table(results, monotone)
    assert verdict(claims, "weight 10 the continuations are more diverse") == ct.DISAGREE


def test_stability_claim_needs_two_seeds():
    claims = paper_claims.claims_table(_paper_like(falling(), seeds=1))
    assert verdict(claims, "more stable") == ct.CANNOT_TELL


# --- tables on disk --------------------------------------------------------------------------------------

def test_to_markdown_and_write_table(tmp_path):
    frame = pd.DataFrame({"a": ["x|y", "z"], "b": [0.123456, math.nan]})
    text = tables.to_markdown(frame)
    assert text.splitlines()[0] == "| a | b |"
    assert "x\\|y" in text and "| 0.123 |" in text and "| z |  |" in text
    md, csv = tables.write_table(frame, tmp_path / "t", "demo", title="Demo")
    assert md.read_text().startswith("# Demo\n\n| a | b |")
    pd.testing.assert_frame_equal(pd.read_csv(csv), frame)
    assert not list((tmp_path / "t").glob("*.tmp"))


def test_report_dirs(tmp_path):
    assert tables.figures_dir("paper", tmp_path) == tmp_path / "figures"
    assert tables.tables_dir("smoke", tmp_path) == tmp_path / "tables" / "smoke"
    assert tables.report_dir("notebooks", "paper-synthetic", tmp_path) == tmp_path / "notebooks" / "paper-synthetic"
    with pytest.raises(ValueError, match="figures"):
        tables.report_dir("plots", "paper", tmp_path)


def test_load_results_missing_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep"):
        results_table.load_results("nothing", tmp_path)
    with pytest.raises(ValueError, match="unknown source"):
        results_table.load_results("nothing", tmp_path, source="db")


def test_load_results_reads_the_csv_when_no_run_folder(tmp_path):
    frame = fake_results([("mse", 0.0, 0, {"loss": [1.0, 0.9]})])
    csv = results_table.results_path("x", tmp_path)
    csv.parent.mkdir(parents=True)
    frame.to_csv(csv, index=False)
    loaded = results_table.load_results("x", tmp_path)
    assert list(loaded["loss"]) == [1.0, 0.9]
    assert results_table.final_epoch(loaded)["epoch"].tolist() == [2]


# --- real (tiny) runs ------------------------------------------------------------------------------------

TINY = {"dataset": "synthetic", "epochs": 2, "max_sequences": 300, "lstm_units": 8, "jit_compile": False,
        "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    folders = predictions.ensure_prediction_runs("tiny", root, **TINY)
    return root, folders


def test_collect_results_from_run_folders(tiny_runs):
    root, folders = tiny_runs
    results = results_table.load_results("tiny", root)
    assert len(results) == 3 * 2  # three runs of two epochs
    assert set(results["objective"]) == {"mse", "kl_regularized"}
    assert set(results["run"]) == {f.name for f in folders.values()}
    assert results["loss"].dtype.kind == "f"
    for key in results_table.REFERENCE_KEYS:
        assert results[f"ref_{key}"].notna().all()
    assert results.loc[results["objective"] == "kl_regularized", "parameter"].unique().tolist() == ["weight"]
    assert (results["split_seed"] == 0).all() and (results["backend"] == "tensorflow").all()
    summary = tables.summary_table(results)
    assert summary["n_seeds"].tolist() == [1, 1, 1]
    assert summary["objective"].tolist() == ["mse", "kl_regularized", "kl_regularized"]  # the paper's order
    refs = tables.reference_table(results)
    assert np.allclose(refs["vs_unigram"], refs["val_perplexity"] / refs["ref_unigram_perplexity"])
    assert np.allclose(refs["vs_kneser_ney"], refs["val_perplexity"] / refs["ref_kneser_ney_perplexity"])
    assert (results["ref_kneser_ney_order"] >= 2).all()


def test_runs_that_differ_only_in_learning_rate_are_two_configurations(tiny_runs):
    from entropylab.training import RunConfig, run

    root, _ = tiny_runs
    other = RunConfig(**TINY, loss="mse", learning_rate=0.01)
    run(other, root / "runs" / "tiny" / other.run_name)
    results = results_table.load_results("tiny", root)
    assert results_table.varying_columns(results) == ["learning_rate"]
    summary = tables.summary_table(results)
    control = summary[summary["objective"] == "mse"]
    assert sorted(control["learning_rate"].tolist()) == [0.001, 0.01] and control["n_seeds"].tolist() == [1, 1]
    (root / "runs" / "tiny" / other.run_name / store.COMPLETE).unlink()  # leave the fixture's experiment as it was


def test_prediction_runs_are_found_not_retrained(tiny_runs):
    root, folders = tiny_runs
    stamp = (folders["control"] / store.COMPLETE).stat().st_mtime_ns
    again = predictions.ensure_prediction_runs("tiny", root, **{**TINY, "threads": 3})  # threads: not looked at
    assert again == folders
    assert (folders["control"] / store.COMPLETE).stat().st_mtime_ns == stamp


def test_sweep_table_reads_back_like_the_run_folders(tiny_runs):
    root, _ = tiny_runs
    results_table.collect("tiny", root)
    from_csv = results_table.load_results("tiny", root, source="csv")
    from_runs = results_table.load_results("tiny", root, source="runs")
    columns = ["objective", "weight", "seed", "epoch", "loss", "val_loss", "paper_entropy", "paper_kl"]
    key = ["objective", "weight", "seed", "epoch"]
    pd.testing.assert_frame_equal(from_csv[columns].sort_values(key).reset_index(drop=True),
                                  from_runs[columns].sort_values(key).reset_index(drop=True), check_dtype=False)


def test_predictions_for_a_run_are_deterministic(tiny_runs):
    from entropylab.data import UnknownWordsWarning

    _, folders = tiny_runs
    with pytest.warns(UnknownWordsWarning, match="synthetic vocabulary"):  # the paper's words are not in it
        first = predictions.predictions_for_run(folders["kl_regularized_w10"])
        second = predictions.predictions_for_run(folders["kl_regularized_w10"])
    pd.testing.assert_frame_equal(first, second)
    assert tuple(first["seed_text"]) == PAPER_SEED_TEXTS
    assert all(len(w.strip("[]").split()) == 10 for w in first["words"])
    assert ((first["mean_probability"] > 0) & (first["mean_probability"] <= 1)).all()


def test_kl_benefit_must_also_beat_the_unigram_reference():
    results = _paper_like(falling())
    results["ref_unigram_perplexity"] = 2000.0
    assert verdict(paper_claims.claims_table(results), "substantial benefit") == ct.AGREE  # 1000 < 2000
    results["ref_unigram_perplexity"] = 500.0
    claims = paper_claims.claims_table(results)
    assert verdict(claims, "substantial benefit") == ct.DISAGREE  # 1000 beats 8000 but not a unigram
    assert "unigram" in claims.loc[claims["claim"].str.contains("substantial benefit"), "note"].item()


def test_a_results_table_of_the_first_layout_still_reads(tmp_path):
    csv = results_table.results_path("old", tmp_path)
    csv.parent.mkdir(parents=True)
    pd.DataFrame({"loss_name": ["mse", "mse"], "weight": [0, 0], "seed": [0, 0], "epoch": [1, 2],
                  "loss": [1.0, 0.9], "run": ["mse_seed0"] * 2}).to_csv(csv, index=False)
    loaded = results_table.load_results("old", tmp_path)
    assert loaded["objective"].tolist() == ["mse", "mse"] and tables.summary_table(loaded)["n_seeds"].tolist() == [1]
