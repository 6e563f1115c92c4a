"""The decoding study's quality axis (``possible_loglik`` beside ``impossible``), its impossible rule and its tie rule
on standard errors, on hand-made cases (``entropylab.studies.decoding.tables``, module docstring), and the study file
refusing one sampling seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from entropylab.experiments.params import ParamsError, load_params
from entropylab.metrics.generation import possible_log_likelihood, true_log_likelihood
from entropylab.studies.decoding import tables
from entropylab.studies.decoding.grid import cell_metrics
from entropylab.studies.decoding.spec import read_spec

# -- the two quality columns ----------------------------------------------------------------------------------

#: A source over words 1..3 whose next-word law depends on the previous word only (rows: previous word).
LAW = np.array([[0.0, 0.0, 0.0, 0.0],
                [0.0, 0.5, 0.5, 0.0],    # after 1: 1 or 2, never 3
                [0.0, 0.0, 0.25, 0.75],  # after 2: 2 or 3, never 1
                [0.0, 0.1, 0.0, 0.9]])   # after 3: 1 or 3, never 2


def test_possible_loglik_is_the_mean_ln_q_of_the_words_the_source_can_emit():
    previous = np.array([[1, 2, 2], [3, 1, 3]])  # the last prefix word, then each generated word
    words = np.array([[2, 2, 1], [1, 3, 2]])
    q = LAW[previous, words]
    assert q.tolist() == [[0.5, 0.25, 0.0], [0.1, 0.0, 0.0]]  # three of the six words are impossible
    row = cell_metrics(words, np.ones(words.shape), np.full(4, 0.25), q)
    hand = (math.log(0.5) + math.log(0.25) + math.log(0.1)) / 3
    assert row["possible_loglik"] == pytest.approx(hand)
    assert row["impossible"] == pytest.approx(3 / 6)
    assert row["true_loglik"] == pytest.approx((3 * hand + 3 * math.log(1e-10)) / 6)  # kept, with its floor
    assert possible_log_likelihood(q) == pytest.approx(hand)
    assert math.isnan(possible_log_likelihood(np.zeros((2, 3))))  # nothing the source can emit: no quality
    loglik, impossible = true_log_likelihood(np.array([0.5, 0.5]))
    assert possible_log_likelihood(np.array([0.5, 0.5])) == pytest.approx(loglik) and impossible == 0.0


# -- the frontier and the impossible rule ---------------------------------------------------------------------

def _cells(**columns) -> pd.DataFrame:
    """A cell table of one model ``m`` (three seeds per setting unless given)."""
    frame = pd.DataFrame({"model": "m", "kind": "run", "value": 1.0, "seeds": 3, **columns})
    frame["true_loglik"] = (1 - frame["impossible"]) * frame["possible_loglik"] + \
        frame["impossible"] * math.log(1e-10)
    return frame


def test_the_frontier_ranks_on_possible_loglik_where_true_loglik_disagrees():
    # a: better words but 5 % impossible; b: worse words, none impossible; same diversity
    cells = _cells(decoder=["a", "b"], word_entropy=[2.0, 2.0], possible_loglik=[-1.0, -1.5], impossible=[0.05, 0.0])
    assert cells["true_loglik"].tolist() == pytest.approx([-2.101, -1.5], abs=1e-3)  # the floor would favour b
    table = tables.frontier_table(cells).set_index("decoder")
    assert table.loc["a", "on_frontier"] == 1 and table.loc["a", "verdict"] == "on the frontier"
    assert table.loc["b", "on_frontier"] == 0 and table.loc["b", "verdict"] == "dominated"
    assert table.loc["a", "best_quality"] == -1.0 and table.loc["a", "impossible"] == 0.05  # shown beside
    assert list(tables.frontier_table(cells).columns) == tables.FRONTIER_COLUMNS


def test_a_setting_above_the_impossible_tolerance_is_listed_not_ranked():
    assert tables.IMPOSSIBLE_TOLERANCE == 0.10
    cells = pd.concat([
        _cells(decoder=["a", "a", "c", "c"], value=[1.0, 2.0, 1.0, 2.0], word_entropy=[1.0, 3.0, 1.0, 3.0],
               possible_loglik=[-1.0, -2.0, -0.5, -0.6],  # c's words are better: it dominates a on quality
               impossible=[0.02, 0.10, 0.30, 0.35]),      # ... but emits 30 % impossible words; a 10 %: at the line
        _cells(model=["bigram", "source"], kind=["bigram", "source"], decoder="temperature", word_entropy=[4.0, 4.2],
               possible_loglik=[-2.0, -1.7], impossible=[0.3, 0.0])], ignore_index=True)
    marked = tables.frontier(cells[cells["model"] == "m"].reset_index(drop=True))
    assert marked["eligible"].tolist() == [True, True, False, False]
    assert marked["on_frontier"].tolist() == [True, True, False, False]  # c dominates nothing
    table = tables.frontier_table(cells).set_index("model")
    c = table[table["decoder"] == "c"].iloc[0]
    assert c["verdict"] == tables.EMITS_IMPOSSIBLE and c["eligible"] == 0 and c["on_frontier"] == 0
    assert (c["best_quality"], c["impossible"]) == (-0.5, 0.30)  # its setting with the fewest impossible words
    # the references are listed with their impossible share, never ranked against the models
    assert table.loc["bigram", "verdict"] == tables.EMITS_IMPOSSIBLE and table.loc["bigram", "impossible"] == 0.3
    assert table.loc["source", "verdict"] == "reference" and table.loc["source", "impossible"] == 0.0
    assert np.isnan(table.loc["source", "on_frontier"])
    # at the matched level (median diversity 2.0): c is better on quality but emits impossible words there
    matched = tables.matched_quality(cells).set_index("decoder")
    assert matched.loc["c", "verdict"] == tables.EMITS_IMPOSSIBLE and np.isnan(matched.loc["c", "gap_to_best"])
    assert matched.loc["c", "quality_at_level"] == pytest.approx(-0.55)  # listed with its numbers
    assert matched.loc["c", "impossible_at_level"] == pytest.approx(0.325)
    assert matched.loc["a", "verdict"] == "best or tie"
    assert matched.loc["a", "impossible_at_level"] == pytest.approx(0.06)  # between 0.02 and 0.10
    assert matched.index.tolist() == ["a", "c"]  # ranked first, then the listed ones
    assert "temperature" not in matched.index  # references are not decoders of the model


# -- the tie rule on standard errors --------------------------------------------------------------------------

def _two_decoders(gap: float, seeds: int, sd: float = 0.1) -> pd.DataFrame:
    """Decoders a and b, each with a setting at the median diversity 2.0 (a's quality -1.0, b's ``-1.0 - gap``),
    every setting of standard deviation ``sd`` over ``seeds`` seeds."""
    return _cells(decoder=["a", "a", "a", "b", "b", "b"], value=[1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
                  word_entropy=[1.0, 2.0, 3.0, 1.5, 2.0, 2.5], possible_loglik=[0.0, -1.0, -2.0, 0.0, -1.0 - gap, -2.0],
                  possible_loglik_std=sd, impossible=0.0, seeds=seeds)


@pytest.mark.parametrize(("gap", "seeds", "verdict"), [
    (0.12, 4, "best or tie"),  # se = 0.1 / 2 = 0.05 each: 2 sqrt(2) 0.05 = 0.141 > 0.12
    (0.15, 4, "worse"),        # outside 2 SE (the old rule, 2 seed sd = 0.2, called it a tie)
    (0.12, 16, "worse"),       # the same gap with four times the seeds: se 0.025, 2 SE = 0.071
])
def test_a_gap_within_two_standard_errors_is_a_tie(gap, seeds, verdict):
    table = tables.matched_quality(_two_decoders(gap, seeds)).set_index("decoder")
    assert table.loc["a", "verdict"] == "best or tie" and table.loc["a", "gap_to_best"] == 0
    assert table.loc["b", "gap_to_best"] == pytest.approx(-gap)
    assert table.loc["a", "seed_se"] == pytest.approx(0.1 / math.sqrt(seeds))
    assert table.loc["b", "verdict"] == verdict
    assert "seed_sd" not in table.columns


def test_the_standard_error_at_the_level_is_interpolated_linearly():
    cells = _cells(decoder=["a", "a", "b", "b", "b"], value=[1.0, 2.0, 1.0, 2.0, 3.0],
                   word_entropy=[1.0, 3.0, 1.5, 2.0, 2.5], possible_loglik=[-1.0, -3.0, -1.0, -2.0, -3.0],
                   possible_loglik_std=[0.1, 0.3, 0.1, 0.1, 0.1], impossible=[0.0, 0.04, 0.0, 0.0, 0.0], seeds=4)
    a = tables.matched_quality(cells).set_index("decoder").loc["a"]  # the level: 2.0, halfway along a
    assert a["quality_at_level"] == pytest.approx(-2.0) and a["impossible_at_level"] == pytest.approx(0.02)
    assert a["seed_se"] == pytest.approx((0.05 + 0.15) / 2)  # between 0.1/2 and 0.3/2, not the larger


# -- the matched level: chosen on dev, read on test -----------------------------------------------------------

def test_the_matched_level_is_chosen_on_dev_and_the_qualities_are_read_on_test():
    """Planted: the test cells' own median diversity is 2.0, where b is best; the dev cells' is 3.0, where a is.
    The table takes the dev level and reads each decoder's quality at it on the test cells (the dev cells'
    qualities, absurd here, are never read)."""
    from entropylab.studies.decoding.report import rules

    test = _cells(decoder=["a", "a", "a", "b", "b", "b"], value=[1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
                  word_entropy=[1.0, 2.0, 4.0, 1.0, 2.0, 4.0], possible_loglik=[-0.5, -1.0, -2.0, -0.6, -0.8, -3.0],
                  possible_loglik_std=0.01, impossible=0.0)
    dev = test.assign(word_entropy=[2.0, 3.0, 5.0, 2.0, 3.0, 5.0], possible_loglik=100.0, impossible=0.9)
    assert test["word_entropy"].median() == 2.0 and dev["word_entropy"].median() == 3.0
    same = tables.matched_quality(test).set_index("decoder")  # no dev cells: the level from the same cells
    assert (same["diversity_level"] == 2.0).all() and same.loc["b", "verdict"] == "best or tie"
    assert same.loc["a", "verdict"] == "worse"
    chosen = tables.matched_quality(test, dev).set_index("decoder")
    assert (chosen["diversity_level"] == 3.0).all()
    assert chosen.loc["a", "quality_at_level"] == pytest.approx(-1.5)  # test's a halfway between 2.0 and 4.0
    assert chosen.loc["b", "quality_at_level"] == pytest.approx(-1.9)
    assert chosen.loc["a", "impossible_at_level"] == 0.0  # the test side's share, not dev's 0.9
    assert chosen.loc["a", "verdict"] == "best or tie" and chosen.loc["b", "verdict"] == "worse"
    assert list(tables.matched_quality(test, dev).columns) == tables.MATCHED_COLUMNS
    # a model with no sampled dev settings has no level: no decoder reaches it (never the test side's own median)
    nowhere = tables.matched_quality(test, dev.assign(model="other")).set_index("decoder")
    assert nowhere["diversity_level"].isna().all() and (nowhere["verdict"] == "does not reach the level").all()
    assert "made on the dev prefixes" in rules(sides=True) and "dev" not in rules()


def test_the_tables_read_the_test_side_and_old_cells_whole():
    generation = pd.DataFrame({"setting": "synthetic/headline", "model": "m", "kind": "run", "decoder": "top_p",
                               "value": 0.5, "sampling_seed": [0, 0], "side": ["dev", "test"],
                               "word_entropy": [1.0, 2.0], "possible_loglik": [-1.0, -2.0]})
    assert tables.reported_side(generation) == "test" and tables.has_dev(generation)
    assert tables.cell_table(generation, "synthetic/headline")["word_entropy"].tolist() == [2.0]
    assert tables.cell_table(generation, "synthetic/headline", "dev")["word_entropy"].tolist() == [1.0]
    one_side = generation.assign(side="validation")
    assert tables.reported_side(one_side) == "validation" and not tables.has_dev(one_side)
    assert tables.cell_table(one_side, "synthetic/headline")["seeds"].tolist() == [2]
    old = generation.drop(columns="side")  # before sides: every row, as they were read
    assert tables.reported_side(old) is None and not tables.has_dev(old)
    assert tables.cell_table(old, "synthetic/headline")["word_entropy"].tolist() == [1.5]


# -- one sampling seed ---------------------------------------------------------------------------------------

def test_one_sampling_seed_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text("experiment: one\nruns:\n  - notebook: notebooks/07_objectives_train.ipynb\n"
                    "    grid: {loss: cross_entropy}\n"
                    "decoding: {decoders: {top_p: [0.9]}, models: [{name: a, loss: cross_entropy}], "
                    "sampling_seeds: [3]}\n")
    with pytest.raises(ParamsError) as caught:
        read_spec(load_params(path))
    message = str(caught.value)
    assert message == (f"{path}: decoding.sampling_seeds: got [3]; expected at least 2 distinct seeds, e.g. [0, 1]: "
                       "the matched-diversity table calls a gap a tie by the standard error over sampling seeds, "
                       "which one seed cannot give")
    path.write_text(path.read_text().replace("[3]", "[3, 4]"))
    assert read_spec(load_params(path)).sampling_seeds == (3, 4)


# -- the report's text -----------------------------------------------------------------------------------------

def test_the_report_states_the_rules_and_names_the_decoders_that_emit_impossible_words():
    from entropylab.studies.decoding.report import DecodingReport, findings

    cells = pd.concat([_two_decoders(0.15, 4),
                       _cells(decoder=["c", "c"], value=[1.0, 2.0], word_entropy=[1.0, 3.0],
                              possible_loglik=[-0.5, -0.6], possible_loglik_std=0.1, impossible=[0.30, 0.40])],
                      ignore_index=True)
    report = DecodingReport("decoding", ["synthetic/headline"],
                            matched={"synthetic/headline": tables.matched_quality(cells)})
    rules, line = findings(report)
    assert "mean ln q over the generated words the source can emit" in rules and "exceeds 0.1" in rules
    assert "two standard errors" in rules and "2 sqrt(se_a^2 + se_best^2)" in rules
    assert line == ("synthetic/headline, m: at diversity 2.00 nats the best quality (with ties) comes from a (-1.00, "
                    "impossible 0.0%); lowest: b (-1.15); emitting impossible words (more than 0.1), not ranked: "
                    "c 35%.")
