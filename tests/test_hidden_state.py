"""The hidden-state (topic) source: its forward law against enumeration and samples, its corpus's ``true_next``, its
place among the datasets, and ``true_kl`` / ``entropy_floor`` of runs on it; the bigram world's floor unchanged."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from entropylab.data import load_corpus, resolve_dataset
from entropylab.data.hidden_state import NO_WORD, HiddenStateSource, make_hidden_state_corpus
from entropylab.data.synthetic import MarkovSource, make_synthetic_corpus
from entropylab.training import RunConfig, run

#: A tiny source whose end probability depends on the state, so that it does not cancel in the conditioning.
TINY = {"n_words": 6, "n_states": 3, "support": 4, "stay_probability": 0.7, "end_probability": [0.1, 0.4, 0.7],
        "seed": 5}
SMALL = {"n_headlines": 300, "n_words": 60, "n_states": 4, "support": 15, "seed": 3}
QUICK = {"dataset": "hidden_state", "epochs": 1, "max_sequences": 600, "lstm_units": 16, "batch_size": 32,
         "jit_compile": False, "synthetic": SMALL}


def enumerated_law(source: HiddenStateSource, prefix: list[int]) -> np.ndarray:
    """``P(w_{t+1} = v | w_1 .. w_t, the headline goes on after w_t)`` by summing the joint probability of every
    path of states ``s_1 .. s_{t+1}`` (the generative story itself, no forward recursion)."""
    n_states, n_words = source.emission.shape
    joint = np.zeros(n_words)
    for path in itertools.product(range(n_states), repeat=len(prefix) + 1):
        p = source.start[path[0]]
        for t, word in enumerate(prefix):
            p *= source.emission[path[t], word] * (1.0 - source.end[path[t]]) * source.transition[path[t], path[t + 1]]
        joint += p * source.emission[path[-1]]
    return joint / joint.sum()


def test_the_forward_law_equals_enumeration_over_state_paths():
    source = HiddenStateSource(**TINY)
    assert source.emittable.sum() >= 4 and not np.allclose(source.end, source.end[0])
    words = np.flatnonzero(source.emittable)
    rng = np.random.default_rng(0)
    prefixes = [list(rng.choice(words, size=length)) for length in (1, 2, 3, 4) for _ in range(6)]
    width = 5
    rows = np.full((len(prefixes), width), NO_WORD)
    for i, prefix in enumerate(prefixes):
        rows[i, width - len(prefix):] = prefix
    law = source.next_word_law(rows)  # one batch, rows of different lengths
    for i, prefix in enumerate(prefixes):
        np.testing.assert_allclose(law[i], enumerated_law(source, prefix), rtol=1e-10, atol=1e-14)
    # the end probability matters when it depends on the state: a constant one gives another law
    flat = HiddenStateSource(**{**TINY, "end_probability": 0.4})
    assert np.abs(flat.next_word_law(rows[-1:]) - law[-1:]).max() > 1e-3
    # an empty row is the first word's law
    np.testing.assert_allclose(source.next_word_law(np.full((1, 3), NO_WORD))[0], source.start @ source.emission)


def test_sampled_next_words_follow_the_law():
    """The third word of sampled headlines that start with the commonest two-word prefix: a chi-square test."""
    source = HiddenStateSource(**TINY)
    headlines = source.sample(60000, max_words=3, seed=1)
    long = np.array([h for h in headlines if len(h) == 3])
    prefixes, counts = np.unique(long[:, :2], axis=0, return_counts=True)
    prefix = prefixes[counts.argmax()]
    observed = np.bincount(long[(long[:, :2] == prefix).all(axis=1), 2], minlength=len(source.words))
    expected = source.next_word_law(prefix[None, :])[0] * observed.sum()
    assert observed.sum() >= 1000
    assert observed[expected == 0].sum() == 0  # no word the law rules out
    keep = expected > 0
    chi2, p_value = stats.chisquare(observed[keep], expected[keep])
    assert p_value > 1e-3, (chi2, p_value)
    # the same counts against the law of a constant end probability are rejected: the test has power
    wrong = HiddenStateSource(**{**TINY, "end_probability": 0.4}).next_word_law(prefix[None, :])[0] * observed.sum()
    assert stats.chisquare(observed[keep], wrong[keep]).pvalue < 1e-3
    # headline lengths follow the state-dependent end: P(one word) = sum_s pi(s) e(s)
    share_one = np.mean([len(h) == 1 for h in headlines])
    assert share_one == pytest.approx(float(source.start @ source.end), abs=0.01)


def test_true_next_is_a_law_over_the_vocabulary_of_the_whole_prefix():
    corpus = make_hidden_state_corpus(n_headlines=400, n_words=200, n_states=4, support=20, max_words=12, seed=2)
    q = corpus.true_next(corpus.X)
    assert q.shape == (corpus.n_sequences, corpus.vocab_size)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
    assert q[:, 0].max() == 0.0  # padding is never a label
    source = HiddenStateSource(200, 4, 20, seed=2)
    silent = [corpus.word_index[w] for w, can in zip(source.words, source.emittable, strict=True) if not can]
    assert len(silent) >= 100 and q[:, silent].max() == 0.0  # words no state emits
    assert (q[np.arange(corpus.n_sequences), corpus.y] > 0).all()  # every label is possible
    # batched rows of different lengths give what each row gives alone
    for i in (0, 5, corpus.n_sequences - 1):
        np.testing.assert_allclose(q[i], corpus.true_next(corpus.X[i:i + 1])[0], atol=1e-7)
    # the whole prefix matters: cutting a long context to its last word changes the law
    longest = int(np.argmax((corpus.X != 0).sum(axis=1)))
    cut = corpus.X[longest:longest + 1].copy()
    cut[0, :-1] = 0
    assert np.abs(corpus.true_next(cut) - q[longest]).max() > 1e-3
    with pytest.raises(ValueError, match="left-padded"):
        corpus.true_next(np.array([[corpus.X[0, -1], 0]]))


def test_hidden_state_is_a_dataset_of_the_loader_the_config_and_the_params():
    from entropylab.experiments.params import check_value

    assert resolve_dataset("hidden_state") == "hidden_state"
    corpus = load_corpus("hidden_state", n_headlines=50, n_words=40, n_states=3, support=10, seed=1)
    assert corpus.name == "hidden_state" and corpus.true_next is not None
    assert load_corpus("synthetic", n_headlines=50, n_words=40).name == "synthetic"
    assert RunConfig(**QUICK).dataset == "hidden_state"
    assert check_value("dataset", "hidden_state") == "hidden_state"
    with pytest.raises(ValueError, match="end_probability"):
        HiddenStateSource(n_states=3, end_probability=[0.1, 0.2])
    with pytest.raises(ValueError, match="support"):
        HiddenStateSource(n_words=10, support=11)


def test_the_bigram_worlds_floor_is_the_mean_entropy_of_its_continuation_law():
    """The evaluator's ``entropy_floor`` on a fixed small Markov corpus equals the mean entropy of
    ``MarkovSource.continuation()`` at each validation row's last word (computed here from the source)."""
    from keras import ops

    from entropylab.metrics.validation import batch_sums
    from entropylab.objectives import keras_loss

    options = {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}
    corpus = make_synthetic_corpus(**options)
    split = corpus.split("tail", 0.2, 0)
    continuation = MarkovSource(60, 5, seed=3).continuation()
    words = MarkovSource(60, 5, seed=3).words
    to_source = {corpus.word_index[w]: i for i, w in enumerate(words)}
    rows = continuation[[to_source[int(u)] for u in split.x_val[:, -1]]]
    expected = float(np.mean(-np.sum(np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1.0)), 0.0), axis=1)))
    outputs = np.zeros((len(split.y_val), corpus.vocab_size), dtype=np.float32)
    sums = batch_sums(outputs, split.y_val, keras_loss("cross_entropy"), "softmax", corpus.true_next(split.x_val))
    assert float(ops.convert_to_numpy(sums["entropy_floor"])) / len(split.y_val) == pytest.approx(expected, rel=1e-5)


def test_a_run_on_hidden_state_reports_true_kl_and_entropy_floor_that_add_up():
    """``entropy_floor + true_kl`` is the mean cross-entropy against ``q`` computed here from the model."""
    import keras

    result = run(RunConfig(**QUICK, loss="cross_entropy", seed=2))
    last = result.history.iloc[-1]
    assert np.isfinite(last["true_kl"]) and last["true_kl"] >= 0 and last["entropy_floor"] > 0
    split = result.corpus.subset(QUICK["max_sequences"]).split("tail", 0.2, 0)
    log_p = keras.ops.convert_to_numpy(keras.ops.log_softmax(result.model(split.x_val, training=False), axis=-1))
    q = result.corpus.true_next(split.x_val).astype(np.float64)
    cross_entropy_vs_source = float(np.mean(np.sum(np.where(q > 0, -q * log_p, 0.0), axis=1)))
    assert cross_entropy_vs_source == pytest.approx(last["entropy_floor"] + last["true_kl"], rel=1e-5)


FUSED_SCRIPT = textwrap.dedent("""
    import json, sys
    from entropylab.training import RunConfig
    from entropylab.training.fused import train_group
    config = RunConfig(**{**json.loads(sys.argv[1]), "jit_compile": True}, loss="cross_entropy", seed=0)
    last = train_group([config])[0].history.iloc[-1]
    print("RESULT=" + json.dumps({k: float(last[k]) for k in ("true_kl", "entropy_floor", "val_cross_entropy")}))
""")


def test_the_fused_engine_reports_the_floor_of_the_hidden_state_source():
    """The fused JAX engine's ``entropy_floor`` is the mean ``H(q)`` of the validation rows (computed here)."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "ENTROPYLAB_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", FUSED_SCRIPT, json.dumps({**QUICK, "max_sequences": 300})],
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))[len("RESULT="):])
    split = make_hidden_state_corpus(**SMALL).subset(300).split("tail", 0.2, 0)
    q = make_hidden_state_corpus(**SMALL).true_next(split.x_val).astype(np.float64)
    floor = float(np.mean(-np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), axis=1)))
    assert got["entropy_floor"] == pytest.approx(floor, rel=1e-5)
    assert np.isfinite(got["true_kl"]) and got["true_kl"] >= 0
