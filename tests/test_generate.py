import numpy as np
import pytest

from entropylab.data import UnknownWordsWarning, corpus_from_headlines
from entropylab.generate import PAPER_SEED_TEXTS, continue_text, filter_distribution, normalise


class FixedModel:
    """A stand-in model whose output row depends only on the last context word."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float32)

    def __call__(self, x, training=False):
        return self.table[np.asarray(x)[:, -1]]


@pytest.fixture
def corpus():
    return corpus_from_headlines("t", ["new york city hall", "new york times", "city hall news"])


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


def test_filters():
    p = np.array([0.0, 0.5, 0.3, 0.15, 0.05])
    assert np.count_nonzero(filter_distribution(p, top_p=0.7)) == 2
    assert np.count_nonzero(filter_distribution(p, min_p=0.5)) == 2
    np.testing.assert_allclose(filter_distribution(p, temperature=1.0), p)
    flat = filter_distribution(p, temperature=100.0)
    assert flat[1:].std() < p[1:].std()
    with pytest.raises(ValueError, match="temperature"):
        filter_distribution(p, temperature=0)
    np.testing.assert_allclose(normalise(np.array([0.0, 0.0]), "softmax"), [0.5, 0.5])


def test_paper_seed_texts():
    assert len(PAPER_SEED_TEXTS) == 6 and "Science and Technology" in PAPER_SEED_TEXTS
