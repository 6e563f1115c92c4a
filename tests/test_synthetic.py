import numpy as np

from entropylab.data.synthetic import MarkovSource, make_synthetic_corpus


def test_synthetic_corpus_is_seeded_and_deterministic():
    a = make_synthetic_corpus(n_headlines=200, n_words=50, seed=1)
    b = make_synthetic_corpus(n_headlines=200, n_words=50, seed=1)
    c = make_synthetic_corpus(n_headlines=200, n_words=50, seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert a.headlines == b.headlines and a.headlines != c.headlines


def test_true_next_distribution_is_a_distribution_and_explains_the_labels():
    corpus = make_synthetic_corpus(n_headlines=2000, n_words=40, branching=4, seed=0)
    q = corpus.true_next(corpus.X)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
    assert q[:, 0].max() == 0.0  # padding is never a label
    # every observed label has positive true probability
    assert (q[np.arange(len(corpus.y)), corpus.y] > 0).all()
    # empirical frequencies of the labels after one context word match the law
    last = corpus.X[:, -1]
    word = np.bincount(last).argmax()
    rows = last == word
    empirical = np.bincount(corpus.y[rows], minlength=corpus.vocab_size) / rows.sum()
    assert np.abs(empirical - q[rows][0]).max() < 0.05


def test_continuation_rows_sum_to_one():
    source = MarkovSource(n_words=30, branching=3, seed=4)
    np.testing.assert_allclose(source.continuation().sum(axis=1), 1.0)
