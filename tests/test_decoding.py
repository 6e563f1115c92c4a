"""Decoding: greedy continuation and the sampling transforms of ``entropylab.decoding`` (one row).

The expected distributions are worked out by hand in the comments (no copy of the formulas). Two small
distributions recur: ``P`` (decimal) and ``D`` (dyadic, so that logarithms are multiples of ln 2).
"""

import math

import numpy as np
import pytest

from entropylab.data import UnknownWordsWarning, corpus_from_headlines
from entropylab.decoding import (
    SAMPLING_PARAMETERS,
    continue_text,
    filter_distribution,
    normalise,
    registered_transforms,
    strategy_names,
)

#: index 0 is padding (no mass); the words have 0.5, 0.3, 0.15, 0.05
P = np.array([0.0, 0.5, 0.3, 0.15, 0.05])
#: 1/2, 1/4, 1/8, 1/8: surprisals ln2 * (1, 2, 3, 3), entropy H = ln2 * (1/2 + 2/4 + 3/8 + 3/8) = 1.75 ln2
D = np.array([0.0, 0.5, 0.25, 0.125, 0.125])


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-12)


class FixedModel:
    """A stand-in model whose output row depends only on the last context word."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float32)

    def __call__(self, x, training=False):
        return self.table[np.asarray(x)[:, -1]]


@pytest.fixture
def corpus():
    return corpus_from_headlines("t", ["new york city hall", "new york times", "city hall news"])


# -- continue_text ------------------------------------------------------------------------------------------

def test_greedy_follows_the_argmax_and_title_cases(corpus):
    v = corpus.vocab_size
    table = np.zeros((v, v))
    wi = corpus.word_index
    table[wi["york"], wi["city"]] = 0.9
    table[wi["city"], wi["hall"]] = 0.8
    table[wi["hall"], wi["news"]] = 0.7
    table[wi["news"], wi["new"]] = 0.6
    table[wi["new"], wi["york"]] = 0.5
    out = continue_text(FixedModel(table), corpus, "New York", n_words=4)
    assert out.words == ["City", "Hall", "News", "New"]
    assert out.as_paper() == "[City Hall News New]"
    # probabilities come from the normalised distribution c / sum(c)
    c = np.clip(table[wi["york"]], 1e-7, 1)
    assert out.probabilities[0] == pytest.approx(0.9 / c.sum(), rel=1e-5)


def test_padding_is_never_generated(corpus):
    v = corpus.vocab_size
    table = np.full((v, v), -1.0)
    table[:, 0] = 5.0  # padding has the largest output
    table[:, corpus.word_index["times"]] = 0.1
    out = continue_text(FixedModel(table), corpus, "city", n_words=2)
    assert out.words == ["Times", "Times"]
    sampled = continue_text(FixedModel(table), corpus, "city", n_words=20, head="softmax", strategy="sample",
                            seed=0, temperature=3.0)
    assert "" not in sampled.words  # index 0 has no word


def test_unknown_seed_words_warn_not_crash(corpus):
    table = np.eye(corpus.vocab_size)
    with pytest.warns(UnknownWordsWarning, match="zebra"):
        out = continue_text(FixedModel(table), corpus, "zebra city", n_words=1)
    assert len(out.words) == 1


def test_sampling_is_seeded_and_respects_top_k(corpus):
    v = corpus.vocab_size
    table = np.tile(np.linspace(-1, 1, v), (v, 1))
    a = continue_text(FixedModel(table), corpus, "city", n_words=5, head="softmax", strategy="sample", seed=1,
                      top_k=2)
    b = continue_text(FixedModel(table), corpus, "city", n_words=5, head="softmax", strategy="sample", seed=1,
                      top_k=2)
    assert a.words == b.words
    top_two = {corpus.index_word[v - 1].title(), corpus.index_word[v - 2].title()}
    assert set(a.words) <= top_two


def test_seeded_sampling_is_reproducible_with_every_transform(corpus):
    v = corpus.vocab_size
    table = np.tile(np.linspace(-1, 1, v), (v, 1))
    params = dict(temperature=0.7, top_k=5, top_p=0.95, min_p=0.05, typical_p=0.99, epsilon_cutoff=1e-3,
                  eta_cutoff=1e-3)
    runs = [continue_text(FixedModel(table), corpus, "city", n_words=30, head="softmax", strategy="sample",
                          seed=seed, **params).words for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # 30 draws among several words: another seed gives another sequence
    # the same with filter_distribution and a generator directly
    q = filter_distribution(P, temperature=0.7, top_p=0.9)
    draws = [np.random.default_rng(3).choice(len(q), size=50, p=q).tolist() for _ in range(2)]
    assert draws[0] == draws[1]


def test_strategies_and_parameter_order():
    assert strategy_names()[:4] == ("greedy", "sample", "mirostat", "beam")
    assert SAMPLING_PARAMETERS == ("temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff",
                                   "eta_cutoff")
    # the transforms apply in transformers' order (GenerationMixin._get_logits_processor: Top-H after temperature)
    assert tuple(t.parameter.name for t in registered_transforms())[:8] == SAMPLING_PARAMETERS


def test_normalise():
    close(normalise(np.array([0.0, 0.0]), "softmax"), [0.5, 0.5])
    close(normalise(np.array([0.0, 0.2, 0.6]), "linear"), np.array([1e-7, 0.2, 0.6]) / 0.8000001)


# -- each transform on its own -----------------------------------------------------------------------------

def test_padding_mass_is_removed_and_no_transform_is_the_identity():
    # 0.2 on padding is dropped and the rest renormalised: 0.4, 0.3, 0.1 over 0.8
    close(filter_distribution([0.2, 0.4, 0.3, 0.1]), [0, 0.5, 0.375, 0.125])
    close(filter_distribution(P), P)
    close(filter_distribution(P, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0,
                              epsilon_cutoff=0.0, eta_cutoff=0.0), P)


def test_temperature():
    # T = 0.5: p^2 = 0.25, 0.09, 0.0225, 0.0025, sum 0.365
    close(filter_distribution(P, temperature=0.5), np.array([0, 0.25, 0.09, 0.0225, 0.0025]) / 0.365)
    # T = 2: sqrt(p) = 0.707107, 0.5, 0.353553, 0.353553, sum 1.914214
    close(filter_distribution(D, temperature=2.0), [0, 0.369398, 0.261204, 0.184699, 0.184699])
    # a very high temperature is nearly uniform, a very low one nearly greedy
    close(filter_distribution(P, temperature=1e9), [0, 0.25, 0.25, 0.25, 0.25])
    close(filter_distribution(P, temperature=1e-3), [0, 1, 0, 0, 0])


def test_top_k():
    close(filter_distribution(P, top_k=2), [0, 0.625, 0.375, 0, 0])  # 0.5, 0.3 over 0.8
    close(filter_distribution(P, top_k=1), [0, 1, 0, 0, 0])
    close(filter_distribution(P, top_k=100), P)  # more than the vocabulary: everything
    # words tied with the k-th largest stay (transformers removes only p < p_(k))
    tied = np.array([0, 0.4, 0.2, 0.2, 0.2])
    close(filter_distribution(tied, top_k=2), tied)


def test_top_p_keeps_the_smallest_set_that_reaches_top_p():
    close(filter_distribution(P, top_p=0.5), [0, 1, 0, 0, 0])  # 0.5 reaches 0.5: one word is enough
    close(filter_distribution(P, top_p=0.7), [0, 0.625, 0.375, 0, 0])  # 0.5 < 0.7 <= 0.8
    close(filter_distribution(P, top_p=0.8), [0, 0.625, 0.375, 0, 0])  # 0.5 + 0.3 reaches 0.8 exactly
    close(filter_distribution(P, top_p=0.81), np.array([0, 0.5, 0.3, 0.15, 0]) / 0.95)  # 0.8 < 0.81 <= 0.95
    # 0.7 + 0.1 is 0.7999999999999999 in floating point but reaches 0.8 on paper; of the tied 0.1s the lower
    # index counts as the more likely: 0.7 and 0.1 over 0.8
    close(filter_distribution([0, 0.7, 0.1, 0.1, 0.1], top_p=0.8), [0, 0.875, 0.125, 0, 0])


def test_min_p():
    close(filter_distribution(P, min_p=0.6), [0, 0.625, 0.375, 0, 0])  # threshold 0.6 * 0.5 = 0.3: 0.3 stays
    close(filter_distribution(P, min_p=0.7), [0, 1, 0, 0, 0])  # threshold 0.35
    close(filter_distribution(P, min_p=0.1), P)  # threshold 0.05: all stay


def test_typical_p():
    # D: H = 1.75 ln2; |surprisal - H| = ln2 * (0.75, 0.25, 1.25, 1.25), so the typical order is
    # 0.25, 0.5, then the two 0.125s (tied); cumulative mass 0.25, 0.75, 0.875, 1
    close(filter_distribution(D, typical_p=0.2), [0, 0, 1, 0, 0])  # 0.25 alone reaches 0.2: the argmax goes
    close(filter_distribution(D, typical_p=0.5), [0, 2 / 3, 1 / 3, 0, 0])
    close(filter_distribution(D, typical_p=0.75), [0, 2 / 3, 1 / 3, 0, 0])  # 0.75 reached exactly
    # 0.8 is reached at the first 0.125; the other one is tied with it and stays too
    close(filter_distribution(D, typical_p=0.8), D)


def test_epsilon_cutoff():
    close(filter_distribution(D, epsilon_cutoff=0.125), D)  # p >= 0.125 stays
    close(filter_distribution(D, epsilon_cutoff=0.2), [0, 2 / 3, 1 / 3, 0, 0])
    close(filter_distribution(D, epsilon_cutoff=0.9), [0, 1, 0, 0, 0])  # nothing reaches 0.9: the argmax stays


def test_eta_cutoff():
    # D: exp(-H) = 2^-1.75 = 0.297302
    # eta = 0.16: min(0.16, 0.4 * 0.297302 = 0.118921) = 0.118921, so the 0.125s stay ...
    close(filter_distribution(D, eta_cutoff=0.16), D)
    # ... where an epsilon cutoff of 0.16 drops them
    close(filter_distribution(D, epsilon_cutoff=0.16), [0, 2 / 3, 1 / 3, 0, 0])
    # eta = 0.25: min(0.25, 0.5 * 0.297302 = 0.148651) = 0.148651
    close(filter_distribution(D, eta_cutoff=0.25), [0, 2 / 3, 1 / 3, 0, 0])
    # low entropy: H(0.9, 0.05, 0.05) = 0.394398, exp(-H) = 0.674086
    q = np.array([0, 0.9, 0.05, 0.05])
    close(filter_distribution(q, eta_cutoff=0.06), [0, 1, 0, 0])  # min(0.06, 0.244949 * 0.674086 = 0.165) = 0.06
    close(filter_distribution(q, eta_cutoff=0.04), q)  # min(0.04, 0.2 * 0.674086 = 0.135) = 0.04


# -- combinations: one after another, each on the renormalised result -----------------------------------------

def test_typical_p_after_top_k_is_not_nan():
    # top_k=1 leaves 0.5 alone (renormalised to 1: entropy 0, its surprisal 0), so typical_p keeps it.
    # (Intersecting the two sets computed on D instead gives {0.5} & {0.25} = {} and 0 / 0.)
    close(filter_distribution(D, top_k=1, typical_p=0.2), [0, 1, 0, 0, 0])


def test_top_p_after_top_k_uses_the_renormalised_top_k():
    # top_k=2 leaves 0.4, 0.35 -> 0.533333, 0.466667; 0.533333 alone reaches top_p=0.5: one word.
    # (On the original distribution 0.4 < 0.5, so top_p alone would keep two.)
    s = np.array([0, 0.4, 0.35, 0.25])
    close(filter_distribution(s, top_k=2, top_p=0.5), [0, 1, 0, 0])
    close(filter_distribution(s, top_p=0.5), [0, 0.4 / 0.75, 0.35 / 0.75, 0])


def test_typical_p_after_top_k_uses_the_renormalised_top_k():
    # top_k=2 on D: 2/3, 1/3; H = 0.636514; |surprisal - H| = |0.405465 - H| = 0.231049 and
    # |1.098612 - H| = 0.462098, so 2/3 comes first and alone reaches 0.5
    close(filter_distribution(D, top_k=2, typical_p=0.5), [0, 1, 0, 0, 0])


def test_temperature_comes_before_top_p():
    # T = 0.5 on 0.5, 0.3, 0.2: 0.25, 0.09, 0.04 over 0.38 = 0.657895, ... which alone reaches 0.6
    r = np.array([0, 0.5, 0.3, 0.2])
    close(filter_distribution(r, temperature=0.5, top_p=0.6), [0, 1, 0, 0])
    close(filter_distribution(r, top_p=0.6), [0, 0.625, 0.375, 0])  # without temperature: two words


def test_epsilon_cutoff_sees_the_renormalised_distribution():
    # top_k=3 on P: 0.5, 0.3, 0.15 over 0.95 = 0.526316, 0.315789, 0.157895 >= 0.155: all three stay
    close(filter_distribution(P, top_k=3, epsilon_cutoff=0.155), np.array([0, 0.5, 0.3, 0.15, 0]) / 0.95)
    # on P itself 0.15 < 0.155 goes
    close(filter_distribution(P, epsilon_cutoff=0.155), np.array([0, 0.5, 0.3, 0, 0]) / 0.8)


# -- never empty, bad parameters ------------------------------------------------------------------------------

EXTREME = [
    {"temperature": 1e-6}, {"temperature": 1e6}, {"top_k": 1}, {"top_p": 1e-12}, {"min_p": 1.0},
    {"typical_p": 1e-12}, {"epsilon_cutoff": 0.999999}, {"eta_cutoff": 0.999999},
    {"temperature": 1e-6, "top_k": 1, "top_p": 1e-12, "min_p": 1.0, "typical_p": 1e-12,
     "epsilon_cutoff": 0.999999, "eta_cutoff": 0.999999},
    {"top_p": 1e-12, "typical_p": 1e-12, "epsilon_cutoff": 0.999999},
]
DISTRIBUTIONS = {
    "decimal": P,
    "uniform": np.array([0.0] + [0.1] * 10),
    "peaked": np.array([0.0, 1 - 3e-300, 1e-300, 1e-300, 1e-300]),
    "tiny": np.array([0.0, 1e-300, 2e-300, 3e-300]),
    "padding_heavy": np.array([0.999, 1e-4, 5e-4, 4e-4]),
    "random": np.concatenate(([0.0], np.random.default_rng(0).dirichlet(np.full(50, 0.1)))),
}


@pytest.mark.parametrize("params", EXTREME, ids=lambda params: ",".join(params))
@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_the_kept_set_is_never_empty(name, params):
    q = filter_distribution(DISTRIBUTIONS[name], **params)
    assert np.all(np.isfinite(q)) and np.all(q >= 0)
    assert q[0] == 0
    assert np.count_nonzero(q) >= 1
    assert q.sum() == pytest.approx(1.0)


BAD = [
    ({"temperature": 0}, r"temperature must be > 0 .*got 0"),
    ({"temperature": -1.5}, r"temperature must be > 0 .*got -1\.5"),
    ({"temperature": math.nan}, r"temperature must be > 0 .*got nan"),
    ({"top_k": -1}, r"top_k must be an integer >= 0 .*got -1"),
    ({"top_k": 2.5}, r"top_k must be an integer >= 0 .*got 2\.5"),
    ({"top_p": 0}, r"top_p must be in \(0, 1\] .*got 0"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\] .*got 1\.5"),
    ({"typical_p": 0.0}, r"typical_p must be in \(0, 1\] .*got 0\.0"),
    ({"typical_p": 1.01}, r"typical_p must be in \(0, 1\] .*got 1\.01"),
    ({"min_p": -0.1}, r"min_p must be in \[0, 1\] .*got -0\.1"),
    ({"min_p": 1.1}, r"min_p must be in \[0, 1\] .*got 1\.1"),
    ({"epsilon_cutoff": 1.0}, r"epsilon_cutoff must be in \[0, 1\) .*got 1\.0"),
    ({"epsilon_cutoff": -0.2}, r"epsilon_cutoff must be in \[0, 1\) .*got -0\.2"),
    ({"eta_cutoff": 1}, r"eta_cutoff must be in \[0, 1\) .*got 1"),
    ({"eta_cutoff": -1e-3}, r"eta_cutoff must be in \[0, 1\) .*got -0\.001"),
    ({"top_q": 0.5}, r"unknown sampling parameter\(s\) 'top_q'; use temperature, top_h, top_k"),
]


@pytest.mark.parametrize(("params", "match"), BAD, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_bad_parameters_raise_a_clear_value_error(params, match):
    with pytest.raises(ValueError, match=match):
        filter_distribution(P, **params)


@pytest.mark.parametrize("strategy", ("greedy", "sample", "mirostat", "beam"))
def test_continue_text_checks_the_parameters_first(corpus, strategy):
    table = np.eye(corpus.vocab_size)
    with pytest.raises(ValueError, match="top_q"):
        continue_text(FixedModel(table), corpus, "city", strategy=strategy, top_q=0.5)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        continue_text(FixedModel(table), corpus, "city", strategy=strategy, top_p=2)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):  # checked before the empty text
        continue_text(FixedModel(table), corpus, "", strategy=strategy, top_p=2)
    with pytest.raises(ValueError, match="unknown strategy 'nucleus'"):
        continue_text(FixedModel(table), corpus, "city", strategy="nucleus")
    if strategy != "sample":  # a parameter of another strategy is refused by name
        with pytest.raises(ValueError, match="top_p"):
            continue_text(FixedModel(table), corpus, "city", strategy=strategy, top_p=0.5)


def test_a_distribution_without_words_is_refused():
    with pytest.raises(ValueError, match="no mass outside the padding"):
        filter_distribution([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        filter_distribution([0.0, 1.5, -0.5])


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_seed_text_is_refused(corpus, text):
    table = np.zeros((corpus.vocab_size, corpus.vocab_size))
    with pytest.raises(ValueError, match="seed text is empty"):
        continue_text(FixedModel(table), corpus, text, n_words=2)


# -- the model's outputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("head", ["linear", "softmax"])
def test_traced_outputs_are_the_eager_calls_bits(head):
    from entropylab.decoding import forward
    from entropylab.model import build_model
    from entropylab.training.train import seed_everything

    seed_everything(3)
    model = build_model(40, 6, head=head)
    windows = np.random.default_rng(0).integers(0, 40, size=(37, 6))
    eager = np.asarray(model(windows, training=False), dtype=np.float64)
    traced = forward.outputs(model, windows)
    assert traced.dtype == np.float64 and traced.shape == (37, 40)
    np.testing.assert_array_equal(traced, eager)  # the same bits, not only close
    np.testing.assert_array_equal(forward.outputs(model, windows[:5]),  # another batch size, the same trace
                                  np.asarray(model(windows[:5], training=False), dtype=np.float64))
    model.set_weights([w * 0.5 for w in model.get_weights()])  # the traced call reads the current weights
    np.testing.assert_array_equal(forward.outputs(model, windows),
                                  np.asarray(model(windows, training=False), dtype=np.float64))
