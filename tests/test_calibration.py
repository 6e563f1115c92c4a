"""Calibration on the validation pass against NumPy references written here: the equal-width ECE (``val_ece``) and
the equal-count, adaptive ECE (``val_ece_adaptive``) with their reliability bins, for both heads; a flat model (every
confidence below 1/15) where the equal-width ECE collapses to one bin and the adaptive one does not; one argmax for
accuracy and calibration (a linear head with two outputs above 1); the fused group's evaluator (JAX) against the
one-run evaluator."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from jax_script import run_jax_script

from entropylab.bench.pipelines import backend_available
from entropylab.metrics import ADAPTIVE_BIN_KEYS, BIN_KEYS, CALIBRATION_BINS, ValidationEvaluator, adaptive_bins
from entropylab.metrics.validation import EpochMetrics, means_from_totals
from entropylab.objectives import EPSILON, keras_loss

K = CALIBRATION_BINS


def table_model(outputs: np.ndarray):
    """A 'model' whose output for input row ``[.., i]`` is ``outputs[i]`` exactly."""
    import tensorflow as tf

    table = tf.constant(outputs, dtype=tf.float32)

    def model(x, training=False):
        return tf.gather(table, tf.cast(x[:, -1], tf.int32))

    return model


def evaluate(outputs: np.ndarray, labels: np.ndarray, head: str, batch_size: int = 16) -> tuple[dict, dict]:
    x = np.arange(len(labels), dtype=np.int32)[:, None]
    loss = keras_loss("cross_entropy") if head == "softmax" else keras_loss("mse")
    evaluator = ValidationEvaluator(x, labels.astype(np.int32), loss, head, batch_size=batch_size)
    return evaluator.evaluate(table_model(outputs)), evaluator.bins


# -- the references, written out from the definitions (float64, loops) ----------------------------------------------

def distribution(outputs: np.ndarray, head: str) -> np.ndarray:
    o = outputs.astype(np.float64)
    if head == "softmax":
        e = np.exp(o - o.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    c = np.clip(o, EPSILON, 1.0)
    return c / c.sum(axis=1, keepdims=True)


def confidence_and_correct(outputs: np.ndarray, labels: np.ndarray, head: str) -> tuple[np.ndarray, np.ndarray]:
    """The prediction is the argmax of the raw outputs; its probability is the confidence."""
    p = distribution(outputs, head)
    prediction = outputs.argmax(axis=1)
    return p[np.arange(len(labels)), prediction], (prediction == labels).astype(float)


def reference_ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Guo et al.: K equal-width bins [(k-1)/K, k/K), the last closed."""
    n, ece = len(confidence), 0.0
    for k in range(K):
        low, high = k / K, (k + 1) / K
        members = (confidence >= low) & ((confidence < high) if k < K - 1 else (confidence <= high))
        if members.any():
            ece += members.sum() / n * abs(correct[members].mean() - confidence[members].mean())
    return ece


def reference_adaptive(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, list[list[int]]]:
    """K bins of equal count: sorted by confidence (ties in input order), the first N mod K bins one larger."""
    n = len(confidence)
    order = sorted(range(n), key=lambda i: confidence[i])  # Python's sort is stable
    sizes = [n // K + (1 if k < n % K else 0) for k in range(K)]
    groups, start = [], 0
    for size in sizes:
        groups.append(order[start:start + size])
        start += size
    ece = sum(abs(sum(correct[i] - confidence[i] for i in group)) for group in groups) / n
    return ece, groups


def random_case(head: str, n: int = 203, vocab: int = 9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # linear head: some outputs below eps, some above 1 (they tie after clipping)
    outputs = rng.normal(0.0, 2.0, size=(n, vocab)) if head == "softmax" else rng.uniform(-0.3, 1.6, size=(n, vocab))
    p = distribution(outputs.astype(np.float32), head)
    labels = np.array([rng.choice(vocab, p=row) for row in p])
    return outputs.astype(np.float32), labels


# -- (a) both ECEs and both sets of bins against the references -------------------------------------------------------

@pytest.mark.parametrize("head", ["softmax", "linear"])
def test_both_eces_and_their_bins_match_numpy(head):
    outputs, labels = random_case(head)
    values, bins = evaluate(outputs, labels, head)
    confidence, correct = confidence_and_correct(outputs, labels, head)
    assert values["val_accuracy"] == pytest.approx(correct.mean(), abs=1e-12)
    assert values["val_ece"] == pytest.approx(reference_ece(confidence, correct), rel=1e-5, abs=1e-6)
    ece, groups = reference_adaptive(confidence, correct)
    assert values["val_ece_adaptive"] == pytest.approx(ece, rel=1e-5, abs=1e-6)
    assert set(BIN_KEYS) | set(ADAPTIVE_BIN_KEYS) == set(bins)
    assert bins["adaptive_count"].tolist() == [len(g) for g in groups]  # 203 = 15 x 13 + 8: eight bins of 14
    assert bins["adaptive_count"].tolist() == [14] * 8 + [13] * 7
    np.testing.assert_allclose(bins["adaptive_confidence"], [confidence[g].sum() for g in groups], rtol=1e-5)
    np.testing.assert_allclose(bins["adaptive_correct"], [correct[g].sum() for g in groups], rtol=0, atol=0)
    edges = bins["adaptive_edges"]
    assert len(edges) == K + 1 and np.all(np.diff(edges) >= 0)
    np.testing.assert_allclose(edges, [confidence.min(), *(confidence[g].max() for g in groups)], rtol=1e-6)
    assert bins["bin_count"].sum() == len(labels) and bins["bin_correct"].sum() == correct.sum()
    assert values["val_ece"] == pytest.approx(np.abs(bins["bin_correct"] - bins["bin_confidence"]).sum()
                                              / len(labels), rel=1e-9)
    assert values["val_ece_adaptive"] == pytest.approx(
        np.abs(bins["adaptive_correct"] - bins["adaptive_confidence"]).sum() / len(labels), rel=1e-9)


def test_the_batch_size_does_not_change_the_adaptive_bins():
    outputs, labels = random_case("softmax", n=100, seed=4)
    one, one_bins = evaluate(outputs, labels, "softmax", batch_size=100)
    many, many_bins = evaluate(outputs, labels, "softmax", batch_size=7)
    assert one["val_ece_adaptive"] == pytest.approx(many["val_ece_adaptive"], rel=1e-6)
    for key in ADAPTIVE_BIN_KEYS:
        np.testing.assert_allclose(one_bins[key], many_bins[key], rtol=1e-6)


def test_adaptive_bins_with_fewer_examples_than_bins_and_ties():
    confidence = np.array([0.5, 0.2, 0.5, 0.1], dtype=np.float32)
    correct = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)
    bins = adaptive_bins(confidence, correct)
    assert bins["adaptive_count"].tolist() == [1, 1, 1, 1] + [0] * (K - 4)
    # stable: the two 0.5s stay in input order (the correct one first)
    assert bins["adaptive_correct"][:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(bins["adaptive_edges"], [0.1, 0.1, 0.2, 0.5, 0.5] + [0.5] * (K - 4))
    # per-example values given inside the totals are taken out of them, as given beside them
    totals = {"val_cross_entropy": 4.0, "val_entropy": 2.0, "bin_count": np.zeros(K), "bin_confidence": np.zeros(K),
              "bin_correct": np.zeros(K)}
    inside, _ = means_from_totals({**totals, "confidence": confidence, "correct": correct}, 4)
    beside, _ = means_from_totals(totals, 4, {"confidence": confidence, "correct": correct})
    assert inside == beside and "confidence" not in inside
    expected = (abs(1 - 0.1) + abs(0 - 0.2) + abs(1 - 0.5) + abs(0 - 0.5)) / 4
    assert inside["val_ece_adaptive"] == pytest.approx(expected, rel=1e-6)
    assert "val_ece_adaptive" not in means_from_totals(totals, 4)[0]  # no per-example values: no adaptive ECE
    with pytest.raises(ValueError, match="3 confidences for 4"):
        means_from_totals(totals, 4, {"confidence": confidence[:3], "correct": correct[:3]})


# -- (b) a flat model --------------------------------------------------------------------------------------------------

def test_a_flat_model_collapses_the_equal_width_ece_but_not_the_adaptive_one():
    """Every confidence below 1/15 (as on NYT); only the most confident examples are right, so accuracy and mean
    confidence nearly agree overall while every equal-count bin is miscalibrated."""
    n, vocab = 150, 40
    confidence = np.linspace(0.03, 0.06, n)
    prediction = 1 + np.arange(n) % (vocab - 1)
    p = np.tile(((1.0 - confidence) / (vocab - 1))[:, None], (1, vocab))
    p[np.arange(n), prediction] = confidence
    right = np.arange(n) >= n - 7  # the seven most confident
    labels = np.where(right, prediction, (prediction + 1) % vocab)
    values, bins = evaluate(np.log(p).astype(np.float32), labels, "softmax")
    c, correct = confidence_and_correct(np.log(p), labels, "softmax")
    assert c.max() < 1 / K and correct.sum() == 7
    assert bins["bin_count"][0] == n and bins["bin_count"].sum() == n  # one equal-width bin holds them all
    assert values["val_ece"] == pytest.approx(abs(values["val_accuracy"] - c.mean()), rel=1e-4)
    assert values["val_ece"] < 0.002
    ece, _ = reference_adaptive(c, correct)
    assert values["val_ece_adaptive"] == pytest.approx(ece, rel=1e-5)
    assert values["val_ece_adaptive"] > 0.08 > 40 * values["val_ece"]
    assert bins["adaptive_count"].tolist() == [10] * K
    assert bins["adaptive_correct"].tolist() == [0] * (K - 1) + [7]


# -- (c) one argmax ----------------------------------------------------------------------------------------------------

def test_accuracy_and_calibration_use_the_same_argmax_of_the_raw_outputs():
    """Linear head, two outputs above 1: they tie after clipping (the argmax of log p would be the first), the model
    predicts the larger one; accuracy and both ECEs' correct counts agree on it."""
    row = [0.1, 1.5, 2.0, 0.2]
    outputs = np.array([row] * 6 + [[0.9, 0.3, 0.05, 0.05]] * 4, dtype=np.float32)
    labels = np.array([2] * 4 + [1] * 2 + [0] * 4)  # the four labelled 2 are right, the two labelled 1 wrong
    values, bins = evaluate(outputs, labels, "linear", batch_size=4)
    assert values["val_accuracy"] == pytest.approx(0.8)
    assert bins["bin_correct"].sum() == 8 and bins["adaptive_correct"].sum() == 8
    confidence, correct = confidence_and_correct(outputs, labels, "linear")
    assert confidence[0] == pytest.approx(1 / 2.3)  # p at the prediction = max_j p_j for the linear head
    assert values["val_ece"] == pytest.approx(reference_ece(confidence, correct), rel=1e-5)
    assert values["val_ece_adaptive"] == pytest.approx(reference_adaptive(confidence, correct)[0], rel=1e-5)


def test_epoch_metrics_keep_every_bin_as_lists():
    """Each epoch's bins, both kinds, as ``finish_run`` saves them (``metrics["reliability"]``: JSON)."""
    outputs, labels = random_case("softmax", n=40, seed=2)
    x = np.arange(len(labels), dtype=np.int32)[:, None]
    callback = EpochMetrics(ValidationEvaluator(x, labels.astype(np.int32), keras_loss("cross_entropy"), "softmax"))
    callback.set_model(table_model(outputs))
    callback.on_epoch_end(0, {})
    kept = callback.bins[0]
    assert set(kept) == set(BIN_KEYS) | set(ADAPTIVE_BIN_KEYS)
    assert all(isinstance(v, list) for v in kept.values()) and len(kept["adaptive_edges"]) == K + 1
    assert "val_ece_adaptive" in callback.rows[0]
    assert json.loads(json.dumps(kept)) == kept


# -- (d) the fused group's evaluator -----------------------------------------------------------------------------------

GROUP_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import jax.numpy as jnp
    from entropylab.metrics.validation import GroupEvaluator, ValidationEvaluator
    from entropylab.model import build_model
    from entropylab.objectives import keras_loss

    out = {}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 30, size=(203, 5)).astype("int32")
    y = rng.integers(0, 30, size=203).astype("int32")
    for head in ("softmax", "linear"):
        model = build_model(30, 5, embedding_dim=4, lstm_units=8, head=head)
        loss = keras_loss("cross_entropy") if head == "softmax" else keras_loss("mse")
        alone = ValidationEvaluator(x, y, loss, head, batch_size=32)
        means = alone.evaluate(model)
        group = GroupEvaluator(model, x, y, lambda row: loss, head, batch_size=32, runs=2)
        stack = lambda variables: [jnp.stack([v.value, v.value]) for v in variables]
        fused = group.evaluate(stack(model.trainable_variables), stack(model.non_trainable_variables),
                               jnp.zeros((2, 1)))
        out[head] = {"alone": [means, {k: v.tolist() for k, v in alone.bins.items()}],
                     "fused": [[m, {k: v.tolist() for k, v in b.items()}] for m, b in fused]}
    print("RESULT=" + json.dumps(out))
""")


@pytest.mark.skipif(not backend_available("jax"), reason="JAX not installed (pip install -e '.[jax]')")
def test_the_fused_groups_evaluator_gives_the_one_run_evaluators_calibration():
    result = run_jax_script(GROUP_SCRIPT)
    for head, sides in result.items():
        means, bins = sides["alone"]
        assert means["val_ece_adaptive"] > 0
        assert len(sides["fused"]) == 2
        for fused_means, fused_bins in sides["fused"]:
            assert fused_means.keys() == means.keys()
            for key in ("val_ece", "val_ece_adaptive", "val_accuracy", "val_cross_entropy"):
                assert fused_means[key] == pytest.approx(means[key], rel=1e-5, abs=1e-7), (head, key)
            assert fused_bins.keys() == bins.keys()
            assert fused_bins["adaptive_count"] == bins["adaptive_count"]
            assert fused_bins["adaptive_correct"] == bins["adaptive_correct"]
            np.testing.assert_allclose(fused_bins["adaptive_confidence"], bins["adaptive_confidence"], rtol=1e-5)
            np.testing.assert_allclose(fused_bins["adaptive_edges"], bins["adaptive_edges"], rtol=1e-5)


# -- the objectives study: verdicts and reliability figures on the adaptive bins, older results still read ----------

def test_the_calibration_verdict_is_on_the_adaptive_ece_where_the_results_have_it():
    from entropylab.studies.objectives.tables import setting_table

    rows = [{"setting": "s", "objective": objective, "weight": weight, "seed": seed, "best_epoch": 1,
             "val_cross_entropy": 2.0 + 0.01 * seed + shift, "val_ece": 0.1 + 0.001 * seed}
            for objective, weight, shift in (("cross_entropy", 0.0, 0.0), ("label_smoothing", 0.1, -0.1))
            for seed in range(5)]
    choices = pd.DataFrame([{"setting": "s", "objective": "label_smoothing", "chosen": 0.1, "at_edge": False}])
    old = setting_table(pd.DataFrame(rows), choices, "s")  # results saved before the adaptive ECE: the old verdict
    assert "verdict_ece" in old.columns and "verdict_ece_adaptive" not in old.columns
    new = setting_table(pd.DataFrame(rows).assign(val_ece_adaptive=0.3), choices, "s")
    assert "verdict_ece_adaptive" in new.columns and "verdict_ece" not in new.columns
    assert new.loc[1, "verdict_ece_adaptive"] == "no difference" and new.loc[1, "verdict_cross_entropy"] == "better"


def _bins_frame(adaptive: bool) -> pd.DataFrame:
    from entropylab.studies.objectives.figures import RELIABILITY_COLUMNS

    rng = np.random.default_rng(0)
    rows = []
    for objective, weight in (("cross_entropy", 0.0), ("label_smoothing", 0.1)):
        for seed in (0, 1):
            for k in range(K):
                count = 10.0
                rows.append({"setting": "nyt/tail", "objective": objective, "weight": weight, "seed": seed, "bin": k,
                             "count": count if k == 0 else 0.0, "confidence": 0.4 if k == 0 else 0.0,
                             "correct": 1.0 if k == 0 else 0.0, "binning": "equal_width", "low": k / K,
                             "high": (k + 1) / K})
                if adaptive:
                    rows.append({"setting": "nyt/tail", "objective": objective, "weight": weight, "seed": seed,
                                 "bin": k, "count": count, "confidence": count * (0.02 + 0.002 * k),
                                 "correct": float(rng.integers(0, 4)), "binning": "adaptive",
                                 "low": 0.02 + 0.002 * k, "high": 0.022 + 0.002 * k})
    return pd.DataFrame(rows, columns=list(RELIABILITY_COLUMNS))


@pytest.mark.parametrize("kind", ["adaptive", "equal_width", "old_csv"])
def test_the_reliability_figure_shows_the_adaptive_bins_when_there_are_some(kind):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from entropylab.studies.objectives.figures import BINNING_LABELS, panel_binning, reliability_figure

    bins = _bins_frame(adaptive=kind == "adaptive")
    if kind == "old_csv":  # an <experiment>-reliability.csv written before the adaptive bins
        bins = bins.drop(columns=["binning", "low", "high"])
    expected = "adaptive" if kind == "adaptive" else "equal_width"
    assert panel_binning(bins) == expected
    picks = {"nyt/tail": [("cross_entropy", 0.0), ("label_smoothing", 0.1)]}
    fig = reliability_figure(bins, picks)
    ax = fig.axes[0]
    assert ax.get_title() == f"nyt/tail: {BINNING_LABELS[expected]}"
    assert BINNING_LABELS[expected] in fig._suptitle.get_text()
    points = ax.lines[1].get_xydata()  # the first configuration's line (after the diagonal)
    assert len(points) == (K if expected == "adaptive" else 1)
    plt.close(fig)


def test_a_panel_never_mixes_the_two_binnings():
    """A configuration without adaptive bins (an older run) puts its panel back on the equal-width ones."""
    from entropylab.studies.objectives.figures import panel_binning

    mixed = _bins_frame(adaptive=True)
    mixed = mixed[~((mixed["binning"] == "adaptive") & (mixed["objective"] == "label_smoothing"))]
    assert panel_binning(mixed) == "equal_width"
