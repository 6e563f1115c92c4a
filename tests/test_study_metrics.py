"""The objectives study's metrics against NumPy references on hand-made distributions: calibration (ECE, Brier,
entropy gap) through the batched validation pass, and the generation metrics of batched continuations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropylab.metrics import ValidationEvaluator
from entropylab.metrics.generation import (
    choose_prefixes,
    continue_batch,
    distinct_n,
    generation_metrics,
    repeat_fraction,
    true_log_likelihood,
)
from entropylab.objectives import keras_loss


def table_model(probabilities: np.ndarray):
    """A 'model' whose softmax output for input row ``[.., i]`` is ``probabilities[i]`` exactly (logits = log p,
    impossible words at -1e9)."""
    import tensorflow as tf

    logits = tf.constant(np.where(probabilities > 0, np.log(np.maximum(probabilities, 1e-300)), -1e9),
                         dtype=tf.float32)

    def model(x, training=False):
        return tf.gather(logits, tf.cast(x[:, -1], tf.int32))

    return model


def evaluate(probabilities: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    x = np.arange(len(labels), dtype=np.int32)[:, None]
    evaluator = ValidationEvaluator(x, labels.astype(np.int32), keras_loss("cross_entropy"), "softmax", batch_size=4)
    return evaluator.evaluate(table_model(probabilities)), evaluator.bins


def numpy_reference(p: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """The definitions, written out independently: ECE over equal-width bins, Brier, entropy minus cross-entropy."""
    n = len(labels)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(float)
    ece = 0.0
    for k in range(n_bins):
        low, high = k / n_bins, (k + 1) / n_bins
        members = (confidence >= low) & ((confidence < high) if k < n_bins - 1 else (confidence <= high))
        if members.any():
            ece += members.sum() / n * abs(correct[members].mean() - confidence[members].mean())
    onehot = np.eye(p.shape[1])[labels]
    brier = float(((p - onehot) ** 2).sum(axis=1).mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = float(np.nansum(np.where(p > 0, -p * np.log(p), 0.0), axis=1).mean())
    cross_entropy = float(-np.log(p[np.arange(n), labels]).mean())
    return {"val_ece": ece, "val_brier": brier, "val_entropy_gap": entropy - cross_entropy}


def test_a_perfectly_calibrated_model_has_ece_and_entropy_gap_zero():
    # ten predictions of (0, .7, .2, .1); the labels follow exactly those frequencies
    p = np.tile([0.0, 0.7, 0.2, 0.1], (10, 1))
    labels = np.array([1] * 7 + [2] * 2 + [3])
    values, bins = evaluate(p, labels)
    assert values["val_ece"] == pytest.approx(0.0, abs=1e-6)
    assert values["val_entropy_gap"] == pytest.approx(0.0, abs=1e-5)
    assert values["val_brier"] == pytest.approx(numpy_reference(p, labels)["val_brier"], rel=1e-5)
    assert bins["bin_count"][10] == 10 and bins["bin_count"].sum() == 10  # 0.7 falls in [10/15, 11/15)


def test_a_known_miscalibrated_model():
    # five sure-and-right at 0.9 (gap 0.1) and five at 0.6 that are always wrong (gap 0.6): ECE = 0.05 + 0.3
    p = np.array([[0.0, 0.9, 0.05, 0.05]] * 5 + [[0.0, 0.4, 0.6, 0.0]] * 5)
    labels = np.array([1] * 5 + [1] * 5)
    values, _ = evaluate(p, labels)
    assert values["val_ece"] == pytest.approx(0.35, abs=1e-6)
    reference = numpy_reference(p, labels)
    for key in ("val_ece", "val_brier", "val_entropy_gap"):
        assert values[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-6), key
    sure_and_wrong, _ = evaluate(np.array([[0.0, 0.9, 0.1, 0.0]] * 4), np.array([2] * 4))
    assert sure_and_wrong["val_ece"] == pytest.approx(0.9, abs=1e-6)
    assert sure_and_wrong["val_entropy_gap"] < 0  # over-confident: it expects less surprise than it gets


def test_calibration_metrics_match_numpy_on_random_distributions():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(7, 0.3), size=203)
    labels = np.array([rng.choice(7, p=row) for row in p])
    values, bins = evaluate(p, labels)
    reference = numpy_reference(p, labels)
    for key, value in reference.items():
        assert values[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert bins["bin_count"].sum() == len(labels)
    assert values["val_ece"] == pytest.approx(float(np.abs(bins["bin_correct"] - bins["bin_confidence"]).sum())
                                              / len(labels), rel=1e-9)


# -- generation ------------------------------------------------------------------------------------------------

def successor_model(vocab: int):
    """Logits that put all mass on ``last + 1`` (wrapping to 1; index 0 is padding)."""
    def model(x, training=False):
        last = np.asarray(x)[:, -1]
        nxt = np.where(last + 1 >= vocab, 1, last + 1)
        logits = np.full((len(last), vocab), -1e9)
        logits[np.arange(len(last)), nxt] = 0.0
        return logits
    return model


def test_batched_continuations_slide_the_window_and_follow_the_model():
    contexts = np.array([[0, 0, 1], [0, 2, 3], [4, 4, 4]])
    for strategy in ("greedy", "sample"):
        words, _ = continue_batch(successor_model(6), contexts, 4, head="softmax", strategy=strategy, seed=0)
        assert words.tolist() == [[2, 3, 4, 5], [4, 5, 1, 2], [5, 1, 2, 3]]


def test_sampling_follows_the_distribution_and_never_emits_padding():
    probabilities = np.array([0.5, 0.2, 0.3, 0.0])  # the padding's mass is removed before drawing

    def model(x, training=False):
        return np.tile(np.log(np.maximum(probabilities, 1e-300)), (len(x), 1))

    contexts = np.zeros((4000, 2), dtype=np.int32)
    words, _ = continue_batch(model, contexts, 1, head="softmax", strategy="sample", seed=1)
    frequencies = np.bincount(words[:, 0], minlength=4) / len(words)
    assert frequencies[0] == 0 and frequencies[3] == 0
    assert frequencies[1] == pytest.approx(0.4, abs=0.03) and frequencies[2] == pytest.approx(0.6, abs=0.03)


def test_diversity_metrics_on_hand_made_continuations():
    words = np.array([[1, 2, 3, 1], [1, 2, 3, 4]])
    assert distinct_n(words, 1) == pytest.approx(4 / 8)
    assert distinct_n(words, 2) == pytest.approx(4 / 6)  # (1,2) (2,3) (3,1) (3,4)
    assert repeat_fraction(words) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="distinct_3"):
        distinct_n(np.array([[1, 2]]), 3)


def test_true_log_likelihood_uses_the_source_law_in_each_context():
    q = np.zeros((6, 6))
    q[1, 2], q[1, 3] = 0.25, 0.75
    q[2:, 1] = 1.0

    def true_next(x):
        return q[np.asarray(x)[:, -1]]

    words, probability = continue_batch(successor_model(6), np.array([[0, 1]]), 3, head="softmax",
                                        true_next=true_next)
    assert words.tolist() == [[2, 3, 4]]
    assert probability.tolist() == [[0.25, 0.0, 0.0]]  # after 2 the source only goes back to 1
    loglik, impossible = true_log_likelihood(probability)
    assert loglik == pytest.approx((math.log(0.25) + 2 * math.log(1e-10)) / 3)
    assert impossible == pytest.approx(2 / 3)
    metrics = generation_metrics(successor_model(6), np.array([[0, 1], [0, 2]]), head="softmax", n_words=3,
                                 true_next=true_next)
    assert {"greedy_distinct_1", "sample_distinct_2", "greedy_true_loglik", "sample_impossible"} <= set(metrics)


def test_prefixes_are_the_same_for_every_model_of_a_split():
    first, again = choose_prefixes(1000, 50, seed=0), choose_prefixes(1000, 50, seed=0)
    assert np.array_equal(first, again) and len(set(first.tolist())) == 50
    assert np.array_equal(choose_prefixes(10, 50, seed=0), np.arange(10))
