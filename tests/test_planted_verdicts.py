"""Planted verdicts through the objectives study's tables, end to end (issue 21): results, choices and the verdict
rule written as the sweep writes them, read back by the report, judged by the rule the file fixed."""

import numpy as np
import pandas as pd
import pytest

from entropylab.experiments.results import results_path, rule_path
from entropylab.studies.objectives import report, tables
from entropylab.training import store

SEEDS = range(6)
#: objective -> (shift of its test cross-entropy against cross-entropy's, noise sd, seeds): the planted truth.
PLANTED = {
    "label_smoothing": (-0.10, 0.005, 6),        # better: large and consistent
    "confidence_penalty": (+0.10, 0.005, 6),     # worse
    "entropy_minimization": (0.0005, 0.002, 6),  # no difference: the interval lies within ±0.01
    "beta_divergence": (0.004, 0.0002, 6),       # small but significant: still "no difference" (below δ = 0.01)
    "alpha_divergence": (-0.02, 0.2, 6),         # inconclusive: the interval reaches past δ, the test says nothing
    "gamma_divergence": (-0.10, 0.005, 3),       # too few seeds (the rule asks for 5)
}
EXPECTED = {"label_smoothing": "better", "confidence_penalty": "worse", "entropy_minimization": "no difference",
            "beta_divergence": "no difference", "alpha_divergence": "inconclusive",
            "gamma_divergence": "too few seeds"}


def _row(objective: str, weight: float, seed: int, ce: float, ece: float) -> dict:
    return {"experiment": "planted", "run": f"{objective}_s{seed}", "dataset": "synthetic", "split": "headline",
            "objective": objective, "parameter": "weight", "weight": weight, "seed": seed, "epoch": 1, "loss": 1.0,
            "best_epoch": 1, "val_cross_entropy": ce + 0.3, "val_perplexity": np.exp(ce + 0.3),
            "test_cross_entropy": ce, "test_ece_adaptive": ece,
            "test_ece": ece, "test_true_kl": ce - 1.7, "test_entropy_floor": 1.7,
            "ref_unigram_cross_entropy": 3.0 + 0.01 * seed, "ref_bigram_cross_entropy": 2.3,
            "ref_kneser_ney_cross_entropy": 2.1 + 0.001 * seed, "ref_kneser_ney_order": 2 + (seed == 5)}


@pytest.fixture
def planted(tmp_path):
    rng = np.random.default_rng(0)
    base = 2.4 + rng.normal(0, 0.05, len(SEEDS))  # seed-to-seed spread shared by every objective (paired)
    rows = [_row("cross_entropy", 0.0, s, base[s], 0.02) for s in SEEDS]
    for objective, (shift, sd, n) in PLANTED.items():
        rows += [_row(objective, 0.1, s, base[s] + shift + rng.normal(0, sd), 0.02) for s in SEEDS[:n]]
    store.write_csv(results_path("planted", tmp_path), pd.DataFrame(rows), checked=True)
    choices = pd.DataFrame([{"dataset": "synthetic", "split": "headline", "objective": o, "chosen": 0.1,
                             "at_edge": False} for o in PLANTED])
    store.write_csv(tables.choices_path("planted", tmp_path), choices, checked=True)
    store.write_json(rule_path("planted", tmp_path), {"smallest_effect": {"cross_entropy": 0.01,
                                                                          "ece_adaptive": 0.005}, "min_seeds": 5})
    return tmp_path


def test_planted_verdicts_come_out_of_the_tables(planted):
    made = report.build("planted", planted, write=False)
    table = made.numeric["synthetic/headline"].set_index("objective")
    for objective, verdict in EXPECTED.items():
        assert table.loc[objective, "verdict_cross_entropy"] == verdict, objective
    assert (table["side"] == "test").all()
    # Holm over the table: every corrected p-value at least the raw one
    judged = table[table["p_holm_cross_entropy"].notna()]
    assert (judged["p_holm_cross_entropy"] >= judged["p_cross_entropy"] - 1e-15).all()
    # the reference rows: add-one unigram, the best Kneser-Ney order (two orders across seeds), the floor
    assert table.loc["Kneser-Ney (order chosen on dev)", "orders"] == "2 3"
    assert table.loc["source (the floor H(q))", "cross_entropy"] == pytest.approx(1.7)
    assert table.loc["add-one unigram", "cross_entropy"] == pytest.approx(3.025)
    lines = " ".join(made.findings)
    assert "better on cross-entropy: label_smoothing" in lines and "best Kneser-Ney: 2.10" in lines


def test_without_a_rule_the_effect_is_zero_and_small_effects_win(planted):
    rule_path("planted", planted).unlink()
    table = report.build("planted", planted, write=False).numeric["synthetic/headline"].set_index("objective")
    assert table.loc["beta_divergence", "verdict_cross_entropy"] == "worse"  # significant, and δ = 0
    assert table.loc["label_smoothing", "verdict_cross_entropy"] == "better"


def test_the_holm_correction_can_take_a_verdict_away():
    """Alone, a comparison at p ≈ 0.02 is 'better'; beside five others with larger p it is not."""
    rows = []
    rng = np.random.default_rng(3)
    base = 2.0 + rng.normal(0, 0.1, 5)
    d = np.array([-0.05, -0.02, -0.035, -0.01, -0.045])  # mean -0.032, p about 0.01-0.03
    rows += [{"setting": "s", "objective": "cross_entropy", "weight": 0.0, "seed": s, "best_epoch": 1,
              "test_cross_entropy": base[s]} for s in range(5)]
    rows += [{"setting": "s", "objective": "label_smoothing", "weight": 0.1, "seed": s, "best_epoch": 1,
              "test_cross_entropy": base[s] + d[s]} for s in range(5)]
    choices = [{"setting": "s", "objective": "label_smoothing", "chosen": 0.1, "at_edge": False}]
    alone = tables.setting_table(pd.DataFrame(rows), pd.DataFrame(choices), "s").set_index("objective")
    assert alone.loc["label_smoothing", "verdict_cross_entropy"] == "better"
    for objective in ["confidence_penalty", "beta_divergence", "alpha_divergence", "gamma_divergence",
                      "entropy_minimization"]:
        rows += [{"setting": "s", "objective": objective, "weight": 0.1, "seed": s, "best_epoch": 1,
                  "test_cross_entropy": base[s] + rng.normal(0, 0.05)} for s in range(5)]
        choices.append({"setting": "s", "objective": objective, "chosen": 0.1, "at_edge": False})
    crowded = tables.setting_table(pd.DataFrame(rows), pd.DataFrame(choices), "s").set_index("objective")
    assert crowded.loc["label_smoothing", "p_cross_entropy"] == alone.loc["label_smoothing", "p_cross_entropy"]
    assert crowded.loc["label_smoothing", "p_holm_cross_entropy"] > 0.05
    assert crowded.loc["label_smoothing", "verdict_cross_entropy"] == "inconclusive"
