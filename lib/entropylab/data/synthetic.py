"""The "bigram world": a synthetic headline corpus drawn from a seeded first-order Markov source whose next-word law
is known exactly (dataset name ``synthetic``).

The next word depends on the last word alone, so a bigram count model is the true model class here; the
hidden-state source of :mod:`entropylab.data.hidden_state` (dataset ``hidden_state``) is the one where the whole
prefix matters.
"""

from __future__ import annotations

import numpy as np

from .corpus import Corpus, build_vocabulary, clean_headline, prefix_sequences, tokenize

_CONSONANTS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"


def _made_up_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pronounceable lowercase words of 2-3 syllables."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        syllables = rng.integers(2, 4)
        word = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS)) for _ in range(syllables))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class MarkovSource:
    """The bigram world's seeded chain: ``transition[u]`` is a distribution over ``n_words`` words plus END (last
    column).

    The source is a sparse first-order Markov chain over a Zipfian vocabulary of made-up words:

    * the first word ``w_1`` is drawn from a Zipf law ``P(w = k) ∝ 1 / k^s`` over the words;
    * each word ``u`` has ``branching`` successors (drawn by popularity, Zipf again) with Dirichlet weights,
      plus an end-of-headline probability ``end_probability``;
    * a headline stops at the end token or at ``max_words`` words.

    Because the labels of the prefix sequences are real next words (never the end token), the exact
    distribution of the label given its context is the continuation law
    ``q(v | u) = T[u, v] / (1 - T[u, END])``, where ``u`` is the context's last word. Its mean entropy over the
    validation split is the floor of any model's cross-entropy there (the entropy rate of the labels), and
    ``KL(q || p)`` of a model's distribution ``p`` is computable exactly, which one-hot labels only approximate.
    """

    def __init__(self, n_words: int = 400, branching: int = 12, zipf_exponent: float = 1.1,
                 end_probability: float = 0.12, seed: int = 0) -> None:
        if n_words < 4 or branching < 1 or not 0.0 < end_probability < 1.0:
            raise ValueError("need n_words >= 4, branching >= 1 and 0 < end_probability < 1")
        rng = np.random.default_rng(seed)
        self.words = _made_up_words(n_words, rng)
        ranks = np.arange(1, n_words + 1, dtype=np.float64)
        popularity = ranks ** -zipf_exponent
        popularity /= popularity.sum()
        self.start = popularity.copy()
        self.transition = np.zeros((n_words, n_words + 1))
        for u in range(n_words):
            successors = rng.choice(n_words, size=min(branching, n_words), replace=False, p=popularity)
            weights = rng.dirichlet(np.full(len(successors), 0.5))
            self.transition[u, successors] = (1.0 - end_probability) * weights
            self.transition[u, -1] = end_probability
        self.seed = seed

    def continuation(self) -> np.ndarray:
        """``q[u, v] = P(next = v | last = u, the headline goes on)``, rows sum to 1."""
        moves = self.transition[:, :-1]
        return moves / moves.sum(axis=1, keepdims=True)

    def sample(self, n_headlines: int, max_words: int, seed: int) -> list[list[int]]:
        rng = np.random.default_rng(seed)
        n_words = len(self.words)
        out: list[list[int]] = []
        for _ in range(n_headlines):
            ids = [int(rng.choice(n_words, p=self.start))]
            while len(ids) < max_words:
                nxt = int(rng.choice(n_words + 1, p=self.transition[ids[-1]]))
                if nxt == n_words:
                    break
                ids.append(nxt)
            out.append(ids)
        return out


def encode_sampled(words: list[str], sampled: list[list[int]]) -> tuple[list[str], dict[str, int], list[list[int]]]:
    """A synthetic source's sampled headlines (lists of source word ids) as text, the vocabulary built like the NYT
    one (frequency order, first occurrence on ties) with the source's never-sampled words after it (so every word
    its law can emit has an index), and each headline's vocabulary ids."""
    headlines = [" ".join(words[i] for i in ids) for ids in sampled]
    token_lists = [tokenize(clean_headline(h)) for h in headlines]
    word_index = build_vocabulary(token_lists)
    for w in words:
        if w not in word_index:
            word_index[w] = len(word_index) + 1
    return headlines, word_index, [[word_index[w] for w in tokens] for tokens in token_lists]


def make_synthetic_corpus(n_headlines: int = 3000, n_words: int = 400, branching: int = 12,
                          max_words: int = 16, end_probability: float = 0.12, seed: int = 0) -> Corpus:
    """The bigram world: a :class:`~entropylab.data.corpus.Corpus` (name ``synthetic``) sampled from
    :class:`MarkovSource`, with ``true_next`` set.

    The vocabulary is built like the NYT one (frequency order, first occurrence on ties); words of the
    source that were never sampled follow at the end, so every word the true law can emit has an index.
    """
    source = MarkovSource(n_words, branching, end_probability=end_probability, seed=seed)
    headlines, word_index, encoded = encode_sampled(source.words, source.sample(n_headlines, max_words, seed=seed + 1))
    max_len = max(len(ids) for ids in encoded)
    X, y, owner = prefix_sequences(encoded, max_len)

    vocab_size = len(word_index) + 1
    source_to_vocab = np.array([word_index[w] for w in source.words])
    q_by_vocab = np.zeros((vocab_size, vocab_size), dtype=np.float32)  # row: last word (vocab id)
    q_by_vocab[np.ix_(source_to_vocab, source_to_vocab)] = source.continuation()

    def true_next(contexts: np.ndarray) -> np.ndarray:
        """Exact next-word distribution for each context row (its last token decides it)."""
        return q_by_vocab[np.asarray(contexts)[:, -1]]

    return Corpus("synthetic", headlines, word_index, max_len, X, y, owner,
                  source=f"synthetic Markov source (seed {seed}, {n_words} words, branching {branching})",
                  true_next=true_next)
