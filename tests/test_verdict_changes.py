"""The "What changed" table: every moved verdict, old -> new, with the rule that attributes it to a fix."""

import pandas as pd

from entropylab.studies.objectives.changes import verdict_changes

OLD = pd.DataFrame([
    {"setting": "s", "objective": "cross_entropy", "value": 0.0, "verdict_val_cross_entropy": "baseline",
     "verdict_val_ece": "baseline"},
    {"setting": "s", "objective": "a", "value": 0.1, "verdict_val_cross_entropy": "better", "verdict_val_ece": "worse"},
    {"setting": "s", "objective": "b", "value": 0.1, "verdict_val_cross_entropy": "better",
     "verdict_val_ece": "better"},
    {"setting": "s", "objective": "c", "value": 0.1, "verdict_val_cross_entropy": "better",
     "verdict_val_ece": "no difference"},
    {"setting": "s", "objective": "d", "value": 0.3, "verdict_val_cross_entropy": "no difference",
     "verdict_val_ece": "no difference"},
])


def _new(objective, verdict, p, p_holm, delta, value=0.1, ece="no difference"):
    return {"setting": "s", "objective": objective, "value": value, "verdict_cross_entropy": verdict,
            "p_cross_entropy": p, "p_holm_cross_entropy": p_holm, "delta_cross_entropy": delta,
            "delta_cross_entropy_low": delta - 0.001, "delta_cross_entropy_high": delta + 0.001,
            "effect_cross_entropy": 0.01, "verdict_ece_adaptive": ece}


def test_each_moved_verdict_gets_its_cause():
    new = pd.DataFrame([
        {"setting": "s", "objective": "cross_entropy", "value": 0.0, "verdict_cross_entropy": "baseline",
         "verdict_ece_adaptive": "baseline"},
        _new("a", "no difference", 0.001, 0.004, -0.004, ece="worse"),  # significant but below δ
        _new("b", "inconclusive", 0.02, 0.09, -0.03, ece="better"),     # lost to Holm's correction
        _new("c", "inconclusive", 0.4, 0.9, -0.002),                    # the difference is not there on test
        _new("d", "better", 0.0001, 0.001, -0.05, value=0.1),           # now better, at another chosen value
    ])
    changes = verdict_changes(OLD, new).set_index(["objective", "judged on"])
    assert changes.loc[("a", "cross-entropy"), "cause"] == "smallest effect"
    assert ("a", "calibration (ECE)") not in changes.index  # worse -> worse: not a change
    assert changes.loc[("b", "cross-entropy"), "cause"] == "Holm"
    assert ("b", "calibration (ECE)") not in changes.index
    assert changes.loc[("c", "cross-entropy"), "cause"] == "test side, 5 split seeds"
    assert tuple(changes.loc[("c", "cross-entropy"), ["old", "new"]]) == ("better", "inconclusive")
    assert changes.loc[("d", "cross-entropy"), "value"] == "0.3 -> 0.1"
    assert len(changes) == 4 and "cross_entropy" not in {o for o, _ in changes.index}


def test_an_old_no_difference_that_is_now_inconclusive_is_the_delta_rule():
    old = OLD.assign(verdict_val_cross_entropy=["baseline", "no difference", "no difference", "better", "better"])
    row = _new("a", "inconclusive", 0.5, 1.0, 0.01)
    row.update({"delta_cross_entropy_low": -0.04, "delta_cross_entropy_high": 0.06})
    changes = verdict_changes(old, pd.DataFrame([row])).set_index(["objective", "judged on"])
    assert changes.loc[("a", "cross-entropy"), "cause"] == "±δ rule"


def test_a_calibration_verdict_that_moved_is_put_down_to_the_adaptive_ece():
    new = pd.DataFrame([_new("a", "better", 0.0001, 0.001, -0.05, ece="no difference")])
    changes = verdict_changes(OLD, new).set_index("judged on")
    assert changes.loc["calibration (ECE)", "cause"] == "adaptive ECE"
    assert "cross-entropy" not in changes.index


def test_moved_decoder_verdicts_get_their_cause():
    from entropylab.studies.decoding.changes import matched_changes

    old = pd.DataFrame({"model": ["m"] * 4, "decoder": ["top_k", "top_h", "min_p", "typical_p"],
                        "verdict": ["best or tie", "does not reach the level", "worse", "worse"]})
    new = pd.DataFrame({"model": ["m"] * 4, "decoder": ["top_k", "top_h", "min_p", "typical_p"],
                        "verdict": ["emits impossible words", "best or tie", "best or tie", "worse"]})
    changes = matched_changes(old, new).set_index("decoder")
    assert changes.loc["top_k", "cause"] == "impossible rule"
    assert changes.loc["top_h", "cause"] == "published definition"
    assert changes.loc["min_p", "cause"] == "quality axis and standard errors"
    assert "typical_p" not in changes.index
