"""What checked notebook cells print: three significant digits, no chaotic runs, verdicts without their numbers."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import nbformat
import pandas as pd

from entropylab.analysis import checked
from entropylab.analysis.claims import format_claims
from entropylab.studies.paper import predictions
from entropylab.studies.paper.reported import PAPER_SEED_TEXTS, PREDICTION_RUNS

ROOT = Path(__file__).resolve().parents[1]


def test_numbers_and_tables_print_three_significant_digits():
    assert checked.number(314.6) == "315" and checked.number(0.002477) == "0.00248" and checked.number(5) == "5"
    text = checked.table(pd.DataFrame({"objective": ["mse"], "val_perplexity": [188.24], "loss": [0.0024771]}))
    assert "188" in text and "188.2" not in text and "0.00248" in text


def test_stable_rows_leave_out_the_chaotic_objectives_only():
    frame = pd.DataFrame({"objective": ["mse", "kl_regularized", "entropy_regularized", "kl_regularized"],
                          "weight": [0, 10, 1e-7, 100]})
    kept = checked.stable_rows(frame)
    assert list(kept["objective"]) == ["mse", "entropy_regularized"]
    assert checked.stable_rows(frame.drop(columns="objective")).equals(frame.drop(columns="objective"))


def test_the_outline_of_a_chaotic_run_says_epochs_columns_and_finiteness():
    history = pd.DataFrame({"epoch": [1, 2], "loss": [63.58, 60.1]})
    assert checked.outline(history) == "epochs: 2\ncolumns: epoch, loss\nevery metric finite: yes"
    assert checked.outline(history.assign(loss=[1.0, math.nan])).endswith("every metric finite: no")


def test_claims_without_their_measured_numbers_keep_the_verdicts():
    claims = pd.DataFrame([{"section": "4.3", "claim": "w=10 is best", "paper": "", "measured": "w=10: 5.751",
                            "rule": "lowest at 10", "verdict": "agree", "note": "lowest at w=10"}])
    assert "5.751" in format_claims(claims) and "5.751" not in format_claims(claims, measured=False)
    assert "verdict: AGREE (lowest at w=10)" in format_claims(claims, measured=False)


def test_prediction_tables_show_only_the_stable_runs_words():
    words = "[" + " ".join(["Nuromi"] * 10) + "]"
    ours = {key: pd.DataFrame({"seed_text": list(PAPER_SEED_TEXTS), "words": [words] * 6,
                               "mean_probability": [0.03] * 6}) for key in PREDICTION_RUNS}
    full, stable = predictions.format_prediction_tables(ours), predictions.format_prediction_tables(ours, True)
    assert full.count("Nuromi") == 3 * 60
    assert stable.count("Nuromi") == 60  # the control's; the KL runs: their shape only
    assert stable.count("ours: 6 continuations of 10 words") == 2
    diversity = predictions.stable_diversity(predictions.diversity_table(ours))
    assert set(zip(diversity["run"], diversity["source"], strict=True)) == {
        ("control", "paper"), ("control", "ours"), ("kl_regularized_w10", "paper"), ("kl_regularized_w100", "paper")}


def _refresh_module():
    spec = importlib.util.spec_from_file_location("nbval_refresh", ROOT / "tests" / "nbval" / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(*outputs: str):
    cells = [nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x)",
                                       outputs=[nbformat.v4.new_output("stream", name="stdout", text=text)])
             for text in outputs]
    cells.insert(1, nbformat.v4.new_code_cell("print(y)", outputs=[nbformat.v4.new_output("stream", text="free\n")]))
    return nbformat.v4.new_notebook(cells=cells)


def test_the_refresh_robustness_pass_names_the_lines_that_moved():
    refresh = _refresh_module()
    reference = _notebook("epochs: 1\nppl 315\n", "AGREE\n")
    assert refresh.fragile_lines(reference, _notebook("epochs: 1\nppl 315\n", "AGREE\n")) == []
    moved = refresh.fragile_lines(reference, _notebook("epochs: 1\nppl 314\n", "AGREE\n"))
    assert moved == ["checked cell 1: -ppl 315", "checked cell 1: +ppl 314"]
