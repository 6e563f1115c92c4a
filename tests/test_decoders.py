"""Batched decoders: each transform against the one-row rules and hand-computed cases, Top-H as published (its
running entropy sum, its 100 candidates, its place after temperature), what a tie at the top keeps, Mirostat 2.0
(its observed surprise settles at the target on the synthetic source), beam search, seeding and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropylab.decoding import (
    check_decoder,
    continue_prefixes,
    continue_text,
    filter_batch,
    filter_distribution,
    mirostat_step,
    model_distributions,
    normalise,
    transforms,
)
from entropylab.decoding.transforms import keep_top_h

CASES = [{"temperature": 0.7}, {"top_k": 3}, {"top_p": 0.8}, {"min_p": 0.2}, {"typical_p": 0.6},
         {"epsilon_cutoff": 0.05}, {"eta_cutoff": 0.1}, {"temperature": 1.5, "top_k": 5, "top_p": 0.9},
         {"min_p": 0.05, "typical_p": 0.9, "eta_cutoff": 0.02}]


@pytest.mark.parametrize("params", CASES)
def test_rows_of_a_batch_are_filtered_independently(params):
    """The hand-computed cases of each transform are in tests/test_decoding.py (one row, the same code); here a
    batch gives each row what that row alone gives."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(12, 0.4), size=40)
    p[5, 3:6] = p[5, 3]  # ties
    batched = filter_batch(p, **params)
    for row, alone in zip(batched, p, strict=True):
        assert np.array_equal(row, filter_distribution(alone, **params))
        assert row[0] == 0 and row.sum() == pytest.approx(1.0) and np.count_nonzero(row) >= 1


def kept(row: np.ndarray) -> list[int]:
    """The word indices a filtered row keeps."""
    return np.flatnonzero(row).tolist()


def test_top_h_adds_words_while_the_running_sum_of_entropy_terms_stays_within_alpha_h():
    # the published rule (Top-H authors' code, transformers' TopHLogitsWarper): p = (0.9, 0.06, 0.04), H = 0.392
    # nats; the terms -p ln p are 0.0948, 0.1688, 0.1288; at alpha = 0.6 the bound is 0.2354 and the first two
    # terms already sum to 0.2636: one word (the renormalised entropy of the first two, 0.2338, would allow two)
    p = np.array([[0.0, 0.9, 0.06, 0.04]])
    terms = -p[0, 1:] * np.log(p[0, 1:])
    assert terms.sum() == pytest.approx(0.3924, abs=1e-4) and terms[:2].sum() == pytest.approx(0.2636, abs=1e-4)
    assert np.array_equal(keep_top_h(p, 0.6), [[0, 1, 0, 0]])
    assert np.array_equal(filter_batch(p, top_h=0.6), [[0, 1, 0, 0]])
    assert np.allclose(keep_top_h(p, 0.7), [[0, 0.9 / 0.96, 0.06 / 0.96, 0]])  # bound 0.2747 >= 0.2636: two
    assert np.allclose(keep_top_h(p, 1.0), p)
    # p = (0.5, 0.3, 0.2): terms 0.3466, 0.3612, 0.3219, H = 1.0297; 0.6 H = 0.618 < 0.708 <= 0.7 H = 0.721
    p = np.array([[0.0, 0.5, 0.3, 0.2]])
    assert np.array_equal(keep_top_h(p, 0.6), [[0, 1, 0, 0]])
    assert np.allclose(filter_batch(p, top_h=0.7), [[0, 0.625, 0.375, 0]])


def test_top_h_on_a_flat_row_keeps_alpha_times_the_words_where_the_renormalised_rule_keeps_far_fewer():
    # one word of 0.2 and 40 of 0.02: H = 0.3219 + 40 * 0.0782 = 3.4515 nats; at alpha = 0.5 the bound 1.7258
    # admits the first word and m of the others while 0.3219 + 0.0782 m <= 1.7258: m = 17 (17.94), 18 words
    # (the renormalised entropy of the first k words, the old rule, stays within the bound only up to 9 words)
    p = np.array([[0.0, 0.2] + [0.02] * 40])
    h = -(0.2 * math.log(0.2) + 0.8 * math.log(0.02))
    m = math.floor((0.5 * h + 0.2 * math.log(0.2)) / (-0.02 * math.log(0.02)))
    assert h == pytest.approx(3.4515, abs=1e-4) and m == 17
    out = keep_top_h(p, 0.5)
    assert kept(out[0]) == list(range(1, 19))  # of the tied 0.02s, the lower indices count as the more likely
    assert np.allclose(out[0, 1:19], p[0, 1:19] / 0.54)


def test_top_h_looks_at_the_100_most_likely_words_only():
    # one word of 0.5 and 200 of 0.0025 (H(p) = 3.34 nats): the candidates are the first word and 99 of the
    # others, mass A = 0.7475, renormalised q_1 = 0.5 / A, q_s = 0.0025 / A, H(q) = 2.1564; at alpha = 0.9 the
    # running sum -q_1 ln q_1 + m (-q_s ln q_s) stays within 0.9 H(q) for m <= 87: 88 words (the same rule on all
    # 201 words would keep 178, the old renormalised rule 167)
    p = np.array([[0.0, 0.5] + [0.0025] * 200])
    a = 0.5 + 99 * 0.0025
    q1, qs = 0.5 / a, 0.0025 / a
    hq = -(q1 * math.log(q1) + 99 * qs * math.log(qs))
    m = math.floor((0.9 * hq + q1 * math.log(q1)) / (-qs * math.log(qs)))
    assert hq == pytest.approx(2.1564, abs=1e-4) and m == 87
    assert kept(keep_top_h(p, 0.9)[0]) == list(range(1, 89))
    # alpha = 1 keeps exactly the 100 candidates, as TopHLogitsWarper(1.0) does; the project's top_h = 1 is off
    assert kept(keep_top_h(p, 1.0)[0]) == list(range(1, 101))
    assert np.allclose(filter_batch(p, top_h=1.0), p, rtol=0, atol=1e-15)
    assert transforms.TOP_H_CANDIDATES == 100


def test_top_h_applies_right_after_temperature_as_in_transformers():
    # p = (0.3, 0.25, 0.2, 0.15, 0.1), top_h = 0.5 and top_k = 3. Top-H first (transformers' order): H = 1.5445,
    # bound 0.7722, terms 0.3612 + 0.3466 = 0.7078 then 1.0297: two words, which top_k = 3 leaves alone. Top-k
    # first would give (0.4, 0.333, 0.267), bound 0.5425 < 0.3665 + 0.3662: one word.
    p = np.array([[0.0, 0.3, 0.25, 0.2, 0.15, 0.1]])
    assert np.allclose(filter_batch(p, top_k=3, top_h=0.5), [[0, 0.3 / 0.55, 0.25 / 0.55, 0, 0, 0]])
    assert np.array_equal(keep_top_h(transforms.keep_top_k(p, 3), 0.5), [[0, 1, 0, 0, 0, 0]])


def test_a_tie_at_the_top_keeps_only_what_top_p_and_top_h_count():
    # four words of 1/4: top_p = 0.5 keeps the two whose preceding mass is < 0.5 (TopPLogitsWarper removes the
    # words whose mass counted from the tail is <= 1 - 0.5: two of them), not all four; the lower indices first
    tied = np.array([[0.0, 0.25, 0.25, 0.25, 0.25]])
    assert np.array_equal(filter_batch(tied, top_p=0.5), [[0, 0.5, 0.5, 0, 0]])
    assert np.array_equal(filter_batch(tied, top_p=0.1), [[0, 1, 0, 0, 0]])  # at least one word, only one
    # Top-H: each term is ln 4 / 4 = 0.3466; alpha = 0.3 bounds the sum by 0.4159: one word; alpha = 0.5: two
    assert np.array_equal(filter_batch(tied, top_h=0.3), [[0, 1, 0, 0, 0]])
    assert np.array_equal(filter_batch(tied, top_h=0.5), [[0, 0.5, 0.5, 0, 0]])
    # forty words of 1/40 (H = ln 40 = 3.69 nats): the running sum is k ln(40) / 40, so alpha = 0.5 keeps k = 20
    flat = np.array([[0.0] + [1 / 40] * 40])
    assert kept(filter_batch(flat, top_h=0.5)[0]) == list(range(1, 21))
    # the cutoffs and top_k keep every word tied with the most likely one, as transformers does
    assert np.array_equal(filter_batch(tied, epsilon_cutoff=0.5), tied)
    assert np.array_equal(filter_batch(tied, top_k=1), tied)


def test_mirostat_keeps_words_below_mu_and_moves_mu_towards_tau():
    p = np.array([[0.0, 0.5, 0.25, 0.25]])  # surprises 1, 2, 2 bits
    chosen, mu, observed = mirostat_step(p, np.array([1.5]), tau=3.0, eta=0.1, rng=np.random.default_rng(0))
    assert chosen.tolist() == [1] and observed.tolist() == [0.0]  # only word 1 is within 1.5 bits: q = 1
    assert mu.tolist() == [pytest.approx(1.5 - 0.1 * (0.0 - 3.0))]
    draws = [mirostat_step(p, np.array([2.5]), 3.0, 0.1, np.random.default_rng(s))[2][0] for s in range(200)]
    assert set(np.round(draws, 6)) == {1.0, 2.0}  # all three kept: q = p, surprises 1 or 2 bits


def test_mirostat_keeps_one_word_of_a_tie_at_the_top_when_none_is_within_mu():
    # four words of 2 bits each and mu = 1: none is within mu, so one word is kept (llama.cpp's Mirostat v2 keeps
    # the first of its sorted candidates), q = 1 and the observed surprise is 0 bits, not 2; mu moves up by
    # eta * tau = 0.3
    tied = np.array([[0.0, 0.25, 0.25, 0.25, 0.25]] * 50)
    chosen, mu, observed = mirostat_step(tied, np.ones(50), tau=3.0, eta=0.1, rng=np.random.default_rng(0))
    assert chosen.tolist() == [1] * 50 and np.all(observed == 0) and np.allclose(mu, 1.3)
    # with mu = 2 all four are within it: each drawn with q = 1/4, 2 bits
    chosen, mu, observed = mirostat_step(tied, np.full(50, 2.0), 3.0, 0.1, np.random.default_rng(0))
    assert set(chosen.tolist()) == {1, 2, 3, 4} and np.allclose(observed, 2.0)


def source_model(q: np.ndarray):
    """The synthetic source's exact law as a 'model' (logits ln q of the last word's row)."""
    with np.errstate(divide="ignore"):
        logits = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), -1e9)

    def model(x, training=False):
        return logits[np.asarray(x)[:, -1]]

    return model


def test_mirostat_observed_surprise_settles_at_tau_on_the_synthetic_source():
    from entropylab.data.synthetic import make_synthetic_corpus

    corpus = make_synthetic_corpus(n_headlines=300)  # the project's source: about 2.7 bits per word (median)
    q = corpus.true_next(np.arange(corpus.vocab_size)[:, None])
    starts = corpus.X[np.random.default_rng(0).choice(len(corpus.X), 400)]
    for tau in (1.0, 2.0):
        result = continue_prefixes(source_model(q), starts, 60, head="softmax", strategy="mirostat", tau=tau,
                                   eta=0.1, seed=1, true_next=corpus.true_next)
        assert result.observed_surprise[:, 30:].mean() == pytest.approx(tau, abs=0.05)
        assert np.all(result.true_probability > 0)  # only words the source can emit


def tree_model():
    """From word 1: 2 (0.6) or 3 (0.4); after 2 four words of 0.25; after 3 word 4 at 0.9: greedy takes 2 (total
    0.15), a beam of two finds 3 4 (0.36)."""
    table = np.full((8, 8), 1e-6)
    table[1, 2], table[1, 3] = 0.6, 0.4
    table[2, 4:8] = 0.25
    table[3, 4], table[3, 5] = 0.9, 0.1
    table[4:, 1] = 1.0

    def model(x, training=False):
        return np.log(table[np.asarray(x)[:, -1]])

    return model


def test_beam_search_finds_the_likelier_continuation_that_greedy_misses():
    contexts = np.array([[0, 1], [0, 1]])
    greedy = continue_prefixes(tree_model(), contexts, 2, head="softmax")
    beam = continue_prefixes(tree_model(), contexts, 2, head="softmax", strategy="beam", num_beams=2)
    one = continue_prefixes(tree_model(), contexts, 2, head="softmax", strategy="beam", num_beams=1)
    assert greedy.words.tolist() == [[2, 4], [2, 4]] and one.words.tolist() == greedy.words.tolist()
    assert beam.words.tolist() == [[3, 4], [3, 4]]
    assert beam.surprisal.sum(axis=1) == pytest.approx([-math.log(0.4 * 0.9)] * 2, rel=1e-4)
    assert np.all(greedy.surprisal.sum(axis=1) > beam.surprisal.sum(axis=1))


def test_seeded_sampling_is_reproducible_and_the_seed_matters():
    rng = np.random.default_rng(2)
    table = rng.dirichlet(np.full(30, 0.5), size=30)

    def model(x, training=False):
        return np.log(table[np.asarray(x)[:, -1]])

    contexts = np.ones((50, 3), dtype=np.int32)
    first = continue_prefixes(model, contexts, 8, head="softmax", strategy="sample", seed=7, top_p=0.9)
    again = continue_prefixes(model, contexts, 8, head="softmax", strategy="sample", seed=7, top_p=0.9)
    other = continue_prefixes(model, contexts, 8, head="softmax", strategy="sample", seed=8, top_p=0.9)
    assert np.array_equal(first.words, again.words) and not np.array_equal(first.words, other.words)
    assert not (first.words == 0).any()


def test_the_linear_head_is_normalised_after_clipping():
    outputs = np.array([[0.3, -0.2, 0.6, 0.2]])

    def model(x, training=False):
        return outputs

    p = model_distributions(model, np.zeros((1, 2), dtype=np.int32), "linear")
    assert p[0, 0] == 0 and p.sum() == pytest.approx(1.0)
    assert p[0, 2] / p[0, 3] == pytest.approx(3.0) and p[0, 1] > 0  # clipped to eps, never negative


@pytest.mark.parametrize(("strategy", "params", "message"), [
    ("sample", {"temperature": -1.0}, "temperature must be > 0"),
    ("sample", {"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ("sample", {"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ("sample", {"top_h": 0.0}, r"top_h must be in \(0, 1\]"),
    ("mirostat", {"tau": -2.0}, "tau must be > 0"),
    ("beam", {"num_beams": 0}, "num_beams must be an integer >= 1"),
    ("greedy", {"top_k": 3}, "takes no parameters"),
    ("nucleus", {}, "unknown strategy 'nucleus'"),
])
def test_bad_decoder_parameters_are_one_clear_error(strategy, params, message):
    with pytest.raises(ValueError, match=message):
        check_decoder(strategy, **params)


@pytest.mark.parametrize(("transform", "values"), [(transforms.keep_top_p, (0.3, 0.9, 0.999)),
                                                   (transforms.keep_typical, (0.2, 0.9, 0.99))])
def test_sorting_only_the_leading_candidates_keeps_exactly_what_a_full_sort_keeps(monkeypatch, transform, values):
    rng = np.random.default_rng(3)
    p = np.exp(rng.normal(size=(120, 600)) * rng.uniform(0.3, 4.0, size=(120, 1)))
    p[:10, 1:40] = p[:10, 1:2]  # long ties, across any candidate boundary
    p = np.round(p / p.sum(axis=1, keepdims=True), 4)
    p[:, 0] = 0.0
    p[:, 1] += 1e-4
    p /= p.sum(axis=1, keepdims=True)
    for value in values:
        monkeypatch.setattr(transforms, "CANDIDATES", 10**6)
        full = transform(p, value)
        for candidates in (1, 3, 50):
            monkeypatch.setattr(transforms, "CANDIDATES", candidates)
            assert np.array_equal(transform(p, value), full), (value, candidates)


def test_leading_orders_the_smallest_keys_with_ties_by_index_as_a_stable_sort_does():
    key = np.array([[3.0, 1.0, 2.0, 1.0, 0.5, 1.0, 9.0]])
    for m in range(1, 8):
        assert transforms.leading(key, m).tolist() == np.argsort(key, axis=1, kind="stable")[:, :m].tolist()


def fixed_rows(rows):
    """A model whose output row is ``rows[last context word]``."""
    table = np.asarray(rows, dtype=np.float32)
    return lambda x, training=False: table[np.asarray(x)[:, -1]]


def test_greedy_is_the_argmax_of_the_raw_outputs_even_where_the_linear_head_s_p_ties():
    # row 0: every output <= eps, so p = clip(o, eps, 1) / sum is uniform, yet word 3 has the largest output;
    # row 1: two outputs >= 1 clip to 1 and tie in p, the raw outputs do not (word 2); padding has the largest
    # output in both and is never chosen
    model = fixed_rows([[9.0, -0.5, -0.3, -0.1, -0.2], [9.0, 1.5, 2.0, 0.3, 0.1]] + [[9.0, 0.1, 0.2, 0.3, 0.4]] * 3)
    p = model_distributions(model, np.array([[0], [1]]), "linear")
    assert np.allclose(p[0, 1:], 0.25) and p[1, 1] == p[1, 2]  # what an argmax of p cannot break
    result = continue_prefixes(model, np.array([[0], [1]]), 1, head="linear")
    assert result.words[:, 0].tolist() == [3, 2]
    assert result.surprisal[:, 0] == pytest.approx([-math.log(0.25), -math.log(1 / 2.4)])


class OneTextCorpus:
    """The least of a corpus that continue_text needs: words w1..w5, a window of three."""

    def __init__(self):
        self.index_word = {i: f"w{i}" for i in range(1, 6)}

    def encode(self, text):
        return [int(w[1:]) for w in text.split()]

    def pad(self, ids):
        row = np.zeros((1, 3), dtype=np.int32)
        ids = list(ids)[-3:]
        row[0, 3 - len(ids):] = ids
        return row


@pytest.mark.parametrize(("strategy", "params"), [("greedy", {}), ("sample", {"top_p": 0.9}),
                                                  ("mirostat", {"tau": 1.5}), ("beam", {"num_beams": 3})])
@pytest.mark.parametrize("head", ["linear", "softmax"])
def test_continue_text_is_the_one_row_view_of_continue_prefixes(strategy, params, head):
    rng = np.random.default_rng(5)
    table = rng.uniform(-0.2, 1.3, size=(6, 6))
    model = fixed_rows(table)
    text = continue_text(model, OneTextCorpus(), "w2 w4", 6, head=head, strategy=strategy, seed=3, title_case=False,
                         **params)
    batch = continue_prefixes(model, np.array([[0, 2, 4]]), 6, head=head, strategy=strategy, seed=3, **params)
    assert text.words == [f"w{i}" for i in batch.words[0]]
    # each word's probability under the whole normalised output row (padding included), the paper's
    context = [2, 4]
    for word, probability in zip(batch.words[0], text.probabilities, strict=True):
        assert probability == normalise(table[context[-1]].astype(np.float32), head)[word]
        context.append(word)
    assert np.allclose(np.exp(-batch.surprisal[0]) * (1 - np.array(
        [normalise(table[c].astype(np.float32), head)[0] for c in [4, *batch.words[0][:-1]]])), text.probabilities)
