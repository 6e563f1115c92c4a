"""The corpus as the models see it: cleaning, vocabulary, prefix sequences and the training/validation(/test) split."""

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


_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Split:
    """Training, validation (dev) and, when asked for, test arrays of one split.

    The validation side is the **dev** side: every choice (early stopping, the best epoch, a tuned value, a
    count model's order) is made on it. The test side (``test_fraction > 0``) is read once per run, after
    training; without one its arrays are empty and the validation side is what a study reports.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    mode: str
    fraction: float
    seed: int | None
    train_index: np.ndarray
    val_index: np.ndarray
    test_fraction: float = 0.0
    test_index: np.ndarray = field(default_factory=lambda: _NO_ROWS)
    x_test: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int32))
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.y_train), len(self.y_val)

    @property
    def has_test(self) -> bool:
        """True when the split holds a test side (``test_fraction > 0``)."""
        return len(self.y_test) > 0


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

    def split(self, mode: str = "tail", fraction: float = 0.2, seed: int | None = 0,
              test_fraction: float = 0.0) -> Split:
        """Training/validation(/test) split of the sequences; ``seed`` is the split's own seed (``headline`` only).

        ``fraction`` is the validation (dev) side's share and ``test_fraction`` the test side's (0: no test side,
        the two-sided split of the paper's protocol, unchanged).

        ``tail``: what Keras' ``validation_split`` takes (``train_validation_split`` of Keras 3): training
        is the first ``floor(N * (1 - fraction - test_fraction))`` sequences, validation the next ones up to
        ``floor(N * (1 - test_fraction))``, test the rest (in time order: test is the latest). ``seed`` is ignored
        and :attr:`Split.seed` is ``None``.

        ``headline``: every copy of a cleaned headline falls on one side, so no held-out prefix is a training
        prefix of the same text. The headlines that own sequences are grouped by cleaned text (groups in order of
        first occurrence), the groups are permuted with ``numpy.random.default_rng(seed)``, and the held-out sides
        take whole groups in that order: test first, until it holds at least ``test_fraction`` of those headlines,
        then validation until both hold at least ``fraction + test_fraction`` of them (the shortest such runs of
        groups); training gets the rest. With ``test_fraction = 0`` this is the earlier two-sided split exactly.
        ``seed`` must be an integer and :attr:`Split.seed` records it.
        """
        if mode not in SPLIT_MODES:
            raise ValueError(f"unknown split mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
        if not 0.0 <= test_fraction < 1.0 or fraction + test_fraction >= 1.0:
            raise ValueError(f"test fraction must be >= 0 and leave a training side (validation {fraction} + test "
                             f"{test_fraction} < 1), got {test_fraction}")
        n = self.n_sequences
        if mode == "tail":
            # Keras: int(math.floor(batch_dim * (1.0 - validation_split)))
            cut = math.floor(n * (1.0 - fraction - test_fraction))
            test_cut = math.floor(n * (1.0 - test_fraction)) if test_fraction > 0 else n
            train, val, test = np.arange(cut), np.arange(cut, test_cut), np.arange(test_cut, n)
            split_seed = None
        else:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise ValueError(f"the headline split needs an integer seed (the split seed), got {seed!r}")
            split_seed = int(seed)
            test_heads, val_heads = self._held_out_headlines(fraction, test_fraction, split_seed)
            is_test = np.isin(self.headline_index, test_heads)
            is_val = np.isin(self.headline_index, val_heads)
            train, val, test = np.flatnonzero(~is_val & ~is_test), np.flatnonzero(is_val), np.flatnonzero(is_test)
        if len(train) == 0 or len(val) == 0 or (test_fraction > 0 and len(test) == 0):
            raise DataError(f"split {mode!r} with fraction {fraction} (test {test_fraction}) leaves an empty side "
                            f"({n} sequences)")
        return Split(self.X[train], self.y[train], self.X[val], self.y[val], mode, fraction, split_seed,
                     train, val, test_fraction, test, self.X[test], self.y[test])

    def _held_out_headlines(self, fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The headlines of the ``headline`` split's test and validation sides (see :meth:`split`)."""
        owners = np.unique(self.headline_index)
        texts = self.cleaned_texts()
        groups: dict[str, list[int]] = {}
        for h in owners.tolist():
            groups.setdefault(texts[h], []).append(h)
        members = list(groups.values())
        order = np.random.default_rng(seed).permutation(len(members))
        taken = np.cumsum([len(members[g]) for g in order])

        def groups_for(share: float) -> int:
            return int(np.searchsorted(taken, share * len(owners), side="left")) + 1

        n_test = groups_for(test_fraction) if test_fraction > 0 else 0
        n_held = max(groups_for(fraction + test_fraction), n_test + 1)

        def heads(chosen: np.ndarray) -> np.ndarray:
            return np.array([h for g in chosen for h in members[g]], dtype=np.int64)

        return heads(order[:n_test]), heads(order[n_test:n_held])

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


