"""The interpolated modified Kneser-Ney count models: a hand case, a plain dictionary reference of Chen & Goodman's
formulas, distributions that sum to 1 for seen and unseen contexts, the decoders' interface, the order chosen on a
carve of the training split, the reference rows, and NLTK's ``KneserNeyInterpolated`` where it is installed."""

from __future__ import annotations

import importlib.util
import math
from collections import Counter, defaultdict
from fractions import Fraction

import numpy as np
import pytest

from entropylab.metrics.kneser_ney import (
    FALLBACK_DISCOUNTS,
    KneserNeyModel,
    best_order_model,
    choose_order,
    modified_discounts,
    tuning_carve,
)
from entropylab.metrics.references import ngram_references


def rows_of(headlines: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """The project's prefix rows (:func:`entropylab.data.corpus.prefix_sequences`) of encoded headlines."""
    x, y = [], []
    for ids in headlines:
        for end in range(1, len(ids)):
            context = ids[:end][-width:]
            x.append([0] * (width - len(context)) + context)
            y.append(ids[end])
    return np.array(x, dtype=np.int64), np.array(y, dtype=np.int64)


def random_headlines(n: int, vocab: int, seed: int, longest: int = 7) -> list[list[int]]:
    """Headlines of 2 to ``longest`` words drawn from a Zipf-like law over ``1 .. vocab - 1``."""
    rng = np.random.default_rng(seed)
    words = np.arange(1, vocab)
    p = 1.0 / words
    p /= p.sum()
    return [rng.choice(words, size=int(rng.integers(2, longest + 1)), p=p).tolist() for _ in range(n)]


# -- a hand case -----------------------------------------------------------------------------------------------

HAND = [[1, 2, 3], [1, 2], [2, 3], [3, 2]]  # rows: (0 1 -> 2) x2, (1 2 -> 3), (0 2 -> 3), (0 3 -> 2)


def test_a_bigram_with_fixed_discounts_gives_the_hand_computed_probabilities():
    """D = 1/2 on both levels, V = 4 (words 1, 2, 3). Bigram counts c(1,2) = 2, c(2,3) = 2, c(3,2) = 1;
    continuation counts N1+(. 2) = |{1, 3}| = 2, N1+(. 3) = |{2}| = 1, N1+(. 1) = 0, so S_1 = 3 and
    g_1 = (1/2)(2)/3 = 1/3: p_1(1) = 0 + (1/3)(1/3) = 1/9, p_1(2) = 3/2/3 + 1/9 = 11/18, p_1(3) = 1/2/3 + 1/9 = 5/18.
    Context 1: S = 2, g = (1/2)(1)/2 = 1/4: p(2|1) = 3/4 + 11/72 = 65/72, p(1|1) = 2/72, p(3|1) = 5/72.
    Context 3: S = 1, g = 1/2: p(2|3) = 1/2 + 11/36 = 29/36. A word (here none) or context never seen falls to p_1."""
    x, y = rows_of(HAND, 2)
    model = KneserNeyModel(y, x, 4, order=2, discounts=0.5)
    windows = np.array([[0, 1], [0, 1], [0, 1], [1, 2], [0, 3], [2, 2]])
    words = np.array([1, 2, 3, 3, 2, 2])
    expected = [Fraction(2, 72), Fraction(65, 72), Fraction(5, 72), Fraction(54 + 5, 72), Fraction(29, 36),
                Fraction(11, 72)]
    assert model.probability_of(windows, words) == pytest.approx([float(f) for f in expected], abs=1e-15)
    assert model.probabilities(np.array([[0, 0]]))[0].tolist() == pytest.approx([0, 1 / 9, 11 / 18, 5 / 18])


def test_lower_levels_count_left_extensions_and_a_context_starting_with_padding_keeps_its_raw_count():
    """Order 3 on the hand rows, D = 1/2: level 2 counts the distinct tokens before each bigram: N1+(. 1 2) = |{0}|
    = 1 although (1, 2) occurs twice, N1+(. 2 3) = |{1, 0}| = 2, N1+(. 3 2) = 1. Context (3, 1) was never seen:
    p_3(2 | 3 1) = p_2(2 | 1) = 1/2 + (1/2)(11/18) = 29/36; p_3(2 | 0 1) = 3/4 + (1/4)(29/36). At order 4, level 3's
    context (0, 1) starts with padding: (0 1, 2) keeps its raw count 2 (its continuation count would be 1)."""
    x, y = rows_of(HAND, 2)
    model = KneserNeyModel(y, x, 4, order=3, discounts=0.5)
    assert model.counts[1].tolist() == [1.0, 2.0, 1.0]  # pairs in order (1, 2), (2, 3), (3, 2)
    assert model.probability_of(np.array([[3, 1]]), np.array([2]))[0] == pytest.approx(29 / 36)
    assert model.probability_of(np.array([[0, 1]]), np.array([2]))[0] == pytest.approx(3 / 4 + 29 / 144)
    x3, y3 = rows_of(HAND, 3)
    for keep, expected in ((True, 2.0), (False, 1.0)):
        four = KneserNeyModel(y3, x3, 4, order=4, discounts=0.5, padding_keeps_raw_counts=keep)
        first = int(np.flatnonzero(four._pair_keys[2] % 4 == 2)[0])  # ((0, 1), 2): the first pair ending in 2
        assert four.counts[2][first] == expected


def test_chen_and_goodman_discounts_from_the_count_of_counts():
    counts = np.array([1] * 10 + [2] * 4 + [3] * 3 + [4] * 2 + [7])  # n1..n4 = 10, 4, 3, 2
    y = 10 / (10 + 8)
    assert modified_discounts(counts) == pytest.approx((1 - 2 * y * 4 / 10, 2 - 3 * y * 3 / 4, 3 - 4 * y * 2 / 3))
    assert modified_discounts(np.array([1, 1, 2, 3])) is None  # n4 = 0: the model falls back
    x, y_ = rows_of(HAND, 2)
    model = KneserNeyModel(y_, x, 4, order=2)
    assert model.fallback_levels == [1, 2] and model.discounts.tolist() == [list(FALLBACK_DISCOUNTS)] * 2


# -- a dictionary reference ------------------------------------------------------------------------------------

def reference_probability(x: np.ndarray, y: np.ndarray, vocab: int, order: int):
    """Chen & Goodman's interpolated modified Kneser-Ney written out with dictionaries (module docstring of
    :mod:`entropylab.metrics.kneser_ney`), returning ``p(word, context tuple)``."""
    def context(row: list[int], k: int) -> tuple[int, ...]:
        return tuple(row[len(row) - (k - 1):]) if k > 1 else ()

    raw: list[Counter] = [Counter() for _ in range(order + 2)]
    for row, w in zip(x.tolist(), y.tolist(), strict=True):
        for k in range(1, order + 1):
            raw[k][(context(row, k), w)] += 1
    counts: dict[int, dict] = {order: dict(raw[order])}
    for k in range(order - 1, 0, -1):
        left: dict = defaultdict(set)
        for (u, w) in raw[k + 1]:
            left[(u[1:], w)].add(u[0])
        counts[k] = {key: raw[k][key] if key[0] and key[0][0] == 0 else len(left[key]) for key in raw[k]}
    discounts = {}
    for k in range(1, order + 1):
        n = [sum(1 for c in counts[k].values() if c == r) for r in (1, 2, 3, 4)]
        if min(n) == 0:
            discounts[k] = FALLBACK_DISCOUNTS
            continue
        big_y = n[0] / (n[0] + 2 * n[1])
        d = (1 - 2 * big_y * n[1] / n[0], 2 - 3 * big_y * n[2] / n[1], 3 - 4 * big_y * n[3] / n[2])
        discounts[k] = d if all(0 <= v <= r for r, v in enumerate(d, 1)) else FALLBACK_DISCOUNTS

    by_context: dict = defaultdict(dict)
    for k in counts:
        for (u, w), c in counts[k].items():
            by_context[(k, u)][w] = c

    def discount(k: int, c: float) -> float:
        return 0.0 if c == 0 else discounts[k][min(int(c), 3) - 1]

    def p(w: int, u: tuple[int, ...], k: int = order) -> float:
        if k == 0:
            return 1.0 / (vocab - 1) if w > 0 else 0.0
        u = u[len(u) - (k - 1):] if k > 1 else ()
        mine = by_context.get((k, u), {})
        lower = p(w, u[1:] if k > 1 else (), k - 1)
        total = sum(mine.values())
        if total == 0 or w == 0:
            return lower if w > 0 else 0.0
        gamma = sum(discount(k, c) for c in mine.values()) / total
        return max(mine.get(w, 0) - discount(k, mine.get(w, 0)), 0) / total + gamma * lower

    return p


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_the_model_matches_a_dictionary_reference_of_the_formulas(order, small_synthetic):
    corpus, cut = small_synthetic, 1400
    x, y, vocab = corpus.X[:cut], corpus.y[:cut], corpus.vocab_size
    model = KneserNeyModel(y, x, vocab, order)
    assert model.fallback_levels == []  # the discounts come from the counts on every level
    reference = reference_probability(x, y, vocab, order)
    width = x.shape[1]
    windows = np.vstack([corpus.X[cut:cut + 10], np.zeros((1, width), dtype=np.int64),  # seen and unseen ones
                         np.r_[np.zeros(width - 2), [vocab - 1, vocab - 2]][None, :].astype(np.int64),
                         np.arange(width)[None, ::-1] % vocab])
    table = model.probabilities(windows)
    expected = np.array([[reference(w, tuple(row)) for w in range(vocab)] for row in windows.tolist()])
    assert np.allclose(table, expected, rtol=1e-12, atol=1e-15)


# -- distributions -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_every_context_seen_or_not_gets_a_distribution_over_the_whole_vocabulary(order):
    vocab = 40
    x, y = rows_of(random_headlines(200, vocab - 5, seed=7), 7)  # words 35..39 never occur
    model = KneserNeyModel(y, x, vocab, order)
    rng = np.random.default_rng(0)
    unseen = rng.integers(0, vocab, size=(50, 7))
    windows = np.vstack([x[:50], unseen, np.full((1, 7), 39), np.zeros((1, 7), dtype=np.int64)])
    table = model.probabilities(windows)
    assert np.allclose(table.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(table[:, 0] == 0) and np.all(table[:, 1:] > 0)
    words = rng.integers(1, vocab, size=len(windows))
    assert np.allclose(model.probability_of(windows, words), table[np.arange(len(windows)), words])
    log_p = model(windows)
    assert np.all(np.isneginf(log_p[:, 0])) and np.allclose(np.exp(log_p), table)


def test_the_decoders_read_a_kneser_ney_model_like_the_count_models():
    from entropylab.decoding import continue_prefixes

    vocab = 30
    x, y = rows_of(random_headlines(300, vocab, seed=1), 6)
    model = KneserNeyModel(y, x, vocab, 3)
    result = continue_prefixes(model, x[:40], 5, head="softmax", strategy="sample", seed=0)
    assert result.words.shape == (40, 5) and np.all(result.words > 0)
    window = x[:40].copy()
    for step in range(5):  # each word's surprisal is the model's -ln p in the sliding window
        p = model.probability_of(window, result.words[:, step])
        assert np.allclose(result.surprisal[:, step], -np.log(p))
        window = np.hstack([window[:, 1:], result.words[:, step:step + 1]])


def test_bad_arguments_are_one_clear_line():
    x, y = rows_of(HAND, 2)
    for kwargs, message in (({"order": 4}, "windows of at least 3 tokens"), ({"order": 0}, "integer >= 1"),
                            ({"discounts": 1.5}, "one number in \\[0, 1\\]"),
                            ({"discounts": [0.5, 0.5, 0.5]}, "need 2 entries")):
        with pytest.raises(ValueError, match=message):
            KneserNeyModel(y, x, 4, **{"order": 2, **kwargs})
    with pytest.raises(ValueError, match="word ids must lie"):
        KneserNeyModel(y, x, 3, 2)


# -- the order and the carve -------------------------------------------------------------------------------------

def markov_headlines(n: int, vocab: int, memory: int, seed: int) -> list[list[int]]:
    """Headlines whose next word depends on the ``memory`` words before it (a fixed random table, 2 choices)."""
    rng = np.random.default_rng(seed)
    table = np.random.default_rng(99).integers(1, vocab, size=(vocab,) * memory + (2,))
    out = []
    for _ in range(n):
        ids = rng.integers(1, vocab, size=memory).tolist()
        for _ in range(int(rng.integers(4, 9))):
            ids.append(int(table[tuple(ids[-memory:])][rng.integers(2)]))
        out.append(ids)
    return out


def test_the_order_is_chosen_on_the_held_out_side():
    vocab = 12
    for memory, expected in ((1, 2), (2, 3)):
        x, y = rows_of(markov_headlines(600, vocab, memory, seed=0), 12)
        fit, held = tuning_carve(x, y, "headline", 0.2, seed=0)
        order, scores = choose_order(y[fit], x[fit], y[held], x[held], vocab)
        assert order == expected, scores
        assert scores[order] == min(scores.values()) and set(scores) == {2, 3, 4, 5}


def test_the_tuning_carve_takes_whole_headlines_and_keeps_copies_of_a_text_together():
    headlines = random_headlines(200, 20, seed=3) + [[5, 6, 7]] * 6
    x, y = rows_of(headlines, 8)
    owner = np.repeat(np.arange(len(headlines)), [len(h) - 1 for h in headlines])
    fit, held = tuning_carve(x, y, "headline", 0.2, seed=1)
    assert len(np.intersect1d(fit, held)) == 0 and len(fit) + len(held) == len(y)
    assert len(np.intersect1d(owner[fit], owner[held])) == 0  # no headline on both sides
    texts = [tuple(h) for h in headlines]
    assert not {texts[h] for h in owner[fit]} & {texts[h] for h in owner[held]}  # nor a text
    assert 0.2 <= len(np.unique(owner[held])) / len(headlines) < 0.25
    fit_tail, held_tail = tuning_carve(x, y, "tail", 0.25)
    assert held_tail.tolist() == list(range(len(y) - len(held_tail), len(y))) and len(fit_tail) == math.floor(
        len(y) * 0.75)


def test_the_reference_rows_add_the_kneser_ney_model_only_when_asked():
    vocab = 12
    train, val = markov_headlines(500, vocab, 2, seed=0), markov_headlines(100, vocab, 2, seed=1)
    (x, y), (xv, yv) = rows_of(train, 12), rows_of(val, 12)
    plain = ngram_references(y, x, yv, xv, vocab)
    assert set(plain) == {"unigram_cross_entropy", "unigram_perplexity", "bigram_cross_entropy", "bigram_perplexity"}
    rows = ngram_references(y, x, yv, xv, vocab, kneser_ney=True)
    assert {k: rows[k] for k in plain} == plain
    assert rows["kneser_ney_order"] == 3
    expected = KneserNeyModel(y, x, vocab, 3).cross_entropy(xv, yv)
    assert rows["kneser_ney_cross_entropy"] == pytest.approx(expected)
    assert rows["kneser_ney_cross_entropy"] < plain["bigram_cross_entropy"]
    # the choice reads the training side only: a validation side that favours another order changes nothing
    other = ngram_references(y, x, *reversed(rows_of(markov_headlines(100, vocab, 1, seed=1), 12)), vocab,
                             kneser_ney=True)
    assert other["kneser_ney_order"] == 3
    model, scores = best_order_model(y, x, vocab)
    assert model.order == 3 and scores == {k: rows[f"kneser_ney_heldout_{k}"] for k in (2, 3, 4, 5)}
    given = ngram_references(y, x, yv, xv, vocab, kneser_ney=True, heldout=(yv, xv), orders=(2, 4))
    assert given["kneser_ney_order"] == 4 and set(k for k in given if k.startswith("kneser_ney_heldout")) == {
        "kneser_ney_heldout_2", "kneser_ney_heldout_4"}


@pytest.mark.skipif(importlib.util.find_spec("nltk") is None, reason="NLTK is not installed (optional check)")
@pytest.mark.parametrize(("order", "discount"), [(2, 0.75), (3, 0.1), (4, 0.75)])
def test_nltk_s_kneser_ney_gives_the_same_probabilities_with_its_own_settings(order, discount):
    """NLTK's KneserNeyInterpolated: one discount for every count, no discount and no uniform floor on the
    unigram level, plain continuation counts after padding. With those settings the two agree."""
    from nltk.lm import KneserNeyInterpolated

    vocab = 15
    x, y = rows_of(random_headlines(60, vocab, seed=0), 6)
    lm = KneserNeyInterpolated(order=order, discount=discount)
    lm.fit([[(*(str(t) for t in row[len(row) - (k - 1):]), str(w)) for k in range(1, order + 1)]
            for row, w in zip(x.tolist(), y.tolist(), strict=True)], vocabulary_text=[str(w) for w in range(vocab)])
    ours = KneserNeyModel(y, x, vocab, order, discounts=[0.0] + [discount] * (order - 1),
                          padding_keeps_raw_counts=False)
    windows, _ = rows_of(random_headlines(10, vocab, seed=1), 6)
    theirs = [[lm.score(str(w), tuple(str(t) for t in row[len(row) - (order - 1):])) for w in range(1, vocab)]
              for row in windows.tolist()]
    assert np.allclose(ours.probabilities(windows)[:, 1:], theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["headline", "tail"])
def test_the_carve_of_the_rows_is_the_objectives_study_s_tuning_carve(small_synthetic, mode):
    """:func:`tuning_carve` on a split's training rows takes the rows that a tuning run (``run_split`` with
    ``tuning``: the training side split again by the same rule) holds out."""
    data = small_synthetic.split(mode, 0.2, 0)
    tuning = small_synthetic.select(data.train_index).split(mode, 0.2, 0)
    fit, held = tuning_carve(data.x_train, data.y_train, mode, 0.2, 0)
    assert np.array_equal(held, tuning.val_index) and np.array_equal(fit, tuning.train_index)
