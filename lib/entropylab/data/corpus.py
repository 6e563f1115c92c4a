"""The corpus as the models see it: cleaning, vocabulary, prefix sequences and the training/validation split."""

from __future__ import annotations

import math
import string
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)
SPLIT_MODES = ("tail", "headline")


class DataError(ValueError):
    """The data folder or its files are not what the loader needs; the message names the fix."""


def clean_headline(text: str) -> str:
    """Bansal's cleaning: remove ``string.punctuation``, lowercase, drop non-ASCII characters."""
    text = text.translate(_PUNCTUATION_TABLE).lower()
    return text.encode("utf8").decode("ascii", "ignore")


def tokenize(text: str) -> list[str]:
    """Split a cleaned headline into words (as Keras' tokenizer does after its filters: on spaces)."""
    return [w for w in text.replace("\t", " ").replace("\n", " ").split(" ") if w]



def build_vocabulary(token_lists: Iterable[Sequence[str]]) -> dict[str, int]:
    """Word -> index by descending frequency, ties by first occurrence; index 0 is left for padding."""
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)  # Counter keeps first-insertion order, and sorted() is stable
    ordered = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    return {word: i for i, (word, _) in enumerate(ordered, start=1)}


def prefix_sequences(encoded: Sequence[Sequence[int]], max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All prefixes of length 2..n of each encoded headline, left-padded to ``max_len``.

    Returns ``X`` (int32, N x max_len-1), ``y`` (int32, N: the last token of each prefix) and
    ``headline_index`` (int32, N: which headline each sequence comes from).
    """
    n_sequences = sum(max(len(ids) - 1, 0) for ids in encoded)
    X = np.zeros((n_sequences, max_len - 1), dtype=np.int32)
    y = np.zeros(n_sequences, dtype=np.int32)
    owner = np.zeros(n_sequences, dtype=np.int32)
    row = 0
    for h, ids in enumerate(encoded):
        for end in range(1, len(ids)):
            context = ids[:end]
            X[row, max_len - 1 - len(context):] = context
            y[row] = ids[end]
            owner[row] = h
            row += 1
    return X, y, owner


@dataclass(frozen=True)
class Split:
    """Training and validation arrays of one split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    mode: str
    fraction: float
    seed: int | None
    train_index: np.ndarray
    val_index: np.ndarray

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.y_train), len(self.y_val)


@dataclass
class Corpus:
    """Headlines turned into integer prefix sequences, with the vocabulary to go back to words.

    ``true_next`` (synthetic corpus only) maps a batch of contexts ``X`` to the exact next-word
    distribution over the vocabulary, shape (B, vocab_size).
    """

    name: str
    headlines: list[str]
    word_index: dict[str, int]
    max_len: int
    X: np.ndarray
    y: np.ndarray
    headline_index: np.ndarray
    source: str = ""
    true_next: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def vocab_size(self) -> int:
        """Number of indices including padding (the model's output width)."""
        return len(self.word_index) + 1

    @property
    def index_word(self) -> dict[int, str]:
        return {i: w for w, i in self.word_index.items()}

    @property
    def n_sequences(self) -> int:
        return len(self.y)

    def summary(self) -> dict[str, int | str]:
        return {"corpus": self.name, "headlines": len(self.headlines), "vocab_size": self.vocab_size,
                "max_len": self.max_len, "sequences": self.n_sequences}

    def encode(self, text: str, *, on_unknown: str = "warn") -> list[int]:
        """Clean and encode a text; unknown words are skipped with a warning (or ``on_unknown="raise"``)."""
        words = tokenize(clean_headline(text))
        unknown = [w for w in words if w not in self.word_index]
        if unknown:
            message = (f"seed text {text!r}: {len(unknown)} word(s) not in the {self.name} vocabulary "
                       f"({', '.join(repr(w) for w in unknown)}); they are skipped")
            if on_unknown == "raise":
                raise KeyError(message)
            if on_unknown == "warn":
                warnings.warn(message, UnknownWordsWarning, stacklevel=2)
        return [self.word_index[w] for w in words if w in self.word_index]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of a list of indices (padding 0 is dropped)."""
        index_word = self.index_word
        return [index_word[int(i)] for i in ids if int(i) != 0]

    def pad(self, ids: Sequence[int]) -> np.ndarray:
        """Left-pad (or keep the last ``max_len - 1``) ids as one model input row."""
        width = self.max_len - 1
        ids = list(ids)[-width:]
        row = np.zeros((1, width), dtype=np.int32)
        if ids:
            row[0, width - len(ids):] = ids
        return row

    def cleaned_texts(self) -> list[str]:
        """Every headline's cleaned text, its tokens joined by single spaces (what the model sees of it)."""
        return [" ".join(tokenize(clean_headline(h))) for h in self.headlines]

    def split(self, mode: str = "tail", fraction: float = 0.2, seed: int | None = 0) -> Split:
        """Training/validation split of the sequences; ``seed`` is the split's own seed (``headline`` only).

        ``tail``: what Keras' ``validation_split`` takes (``train_validation_split`` of Keras 3): training
        is the first ``floor(N * (1 - fraction))`` sequences, validation the rest. ``seed`` is ignored and
        :attr:`Split.seed` is ``None``.

        ``headline``: every copy of a cleaned headline falls on one side, so no validation prefix is a
        training prefix of the same text. The headlines that own sequences are grouped by cleaned text
        (groups in order of first occurrence), the groups are permuted with ``numpy.random.default_rng(seed)``,
        and validation takes whole groups in that order until it holds at least ``fraction`` of those
        headlines (the shortest such run of groups); training gets the rest. ``seed`` must be an integer and
        :attr:`Split.seed` records it.
        """
        if mode not in SPLIT_MODES:
            raise ValueError(f"unknown split mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
        n = self.n_sequences
        if mode == "tail":
            cut = math.floor(n * (1.0 - fraction))  # Keras: int(math.floor(batch_dim * (1.0 - validation_split)))
            train, val = np.arange(cut), np.arange(cut, n)
            split_seed = None
        else:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise ValueError(f"the headline split needs an integer seed (the split seed), got {seed!r}")
            split_seed = int(seed)
            is_val = np.isin(self.headline_index, self._validation_headlines(fraction, split_seed))
            train, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"split {mode!r} with fraction {fraction} leaves an empty side ({n} sequences)")
        return Split(self.X[train], self.y[train], self.X[val], self.y[val], mode, fraction, split_seed,
                     train, val)

    def _validation_headlines(self, fraction: float, seed: int) -> np.ndarray:
        """The headlines of the ``headline`` split's validation side (see :meth:`split`)."""
        owners = np.unique(self.headline_index)
        texts = self.cleaned_texts()
        groups: dict[str, list[int]] = {}
        for h in owners.tolist():
            groups.setdefault(texts[h], []).append(h)
        members = list(groups.values())
        order = np.random.default_rng(seed).permutation(len(members))
        taken = np.cumsum([len(members[g]) for g in order])
        n_groups = int(np.searchsorted(taken, fraction * len(owners), side="left")) + 1
        return np.array([h for g in order[:n_groups] for h in members[g]], dtype=np.int64)

    def select(self, indices: np.ndarray) -> Corpus:
        """The sequences at ``indices`` (in their order; vocabulary unchanged): e.g. a split's training side, to
        carve a tuning split out of it."""
        indices = np.asarray(indices, dtype=np.int64)
        return Corpus(self.name, self.headlines, self.word_index, self.max_len, self.X[indices], self.y[indices],
                      self.headline_index[indices], source=self.source + f" ({len(indices)} selected sequences)",
                      true_next=self.true_next)

    def subset(self, max_sequences: int | None) -> Corpus:
        """The first ``max_sequences`` sequences (vocabulary unchanged), for quick runs."""
        if max_sequences is None or max_sequences >= self.n_sequences:
            return self
        if max_sequences < 2:
            raise ValueError("max_sequences must be at least 2")
        k = int(max_sequences)
        return Corpus(self.name, self.headlines, self.word_index, self.max_len, self.X[:k], self.y[:k],
                      self.headline_index[:k], source=self.source + f" (first {k} sequences)",
                      true_next=self.true_next)


class UnknownWordsWarning(UserWarning):
    """A seed text holds words the model has never seen."""


def corpus_from_headlines(name: str, headlines: list[str], source: str = "",
                          true_next: Callable[[np.ndarray], np.ndarray] | None = None) -> Corpus:
    """The corpus of a list of raw headlines, the NYT pipeline (paper §4.1, after Bansal's Kaggle guide).

    * clean each headline (:func:`clean_headline`: drop :data:`string.punctuation`, lowercase, drop non-ASCII)
      and split it on spaces (:func:`tokenize`);
    * vocabulary (:func:`build_vocabulary`): words by descending frequency, ties by first occurrence, index 0
      is padding;
    * sequences (:func:`prefix_sequences`): a headline of ``n`` tokens gives the ``n - 1`` prefixes of length
      ``2..n``, left-padded to the longest headline; the last token of each prefix is the **integer** label.
    """
    token_lists = [tokenize(clean_headline(h)) for h in headlines]
    word_index = build_vocabulary(token_lists)
    encoded = [[word_index[w] for w in tokens] for tokens in token_lists]
    max_len = max((len(ids) for ids in encoded), default=0)
    if max_len < 2:
        raise DataError(f"corpus {name!r} has no headline of two words or more")
    X, y, owner = prefix_sequences(encoded, max_len)
    return Corpus(name, headlines, word_index, max_len, X, y, owner, source=source, true_next=true_next)


