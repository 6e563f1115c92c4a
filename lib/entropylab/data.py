"""The corpus: NYT headlines (paper §4.1, after Bansal's Kaggle guide) or the synthetic source.

Pipeline for the NYT files (DESIGN.md §3):

* read every ``Articles<Month><Year>.csv`` in chronological order (then row order), column ``headline``;
* drop headlines equal to ``"Unknown"``;
* clean: drop every character of :data:`string.punctuation`, lowercase, drop non-ASCII;
* vocabulary: words by descending frequency, ties by first occurrence, index 0 is padding;
* sequences: a headline of ``n`` tokens gives the ``n - 1`` prefixes of length ``2..n``, left-padded to the
  longest headline; the last token of each prefix is the **integer** label.
"""

from __future__ import annotations

import os
import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEADLINE_COLUMN = "headline"
UNKNOWN_HEADLINE = "Unknown"
DATA_ENV_VAR = "ENTROPYLAB_DATA"
KAGGLE_DATASET = "aashita/nyt-comments"
EXPECTED_NYT_FILES = 9
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
         "November", "December"], start=1)
}
_MONTH_ALIASES = {"Jan": 1, "Feb": 2, "Sept": 9, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12, "Aug": 8}
_FILE_PATTERN = re.compile(r"^Articles([A-Za-z]+)(\d{4})\.csv$")
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


# ---------------------------------------------------------------------------------------------------------
# Finding the data
# ---------------------------------------------------------------------------------------------------------

def candidate_data_dirs() -> list[Path]:
    """Where the NYT files are looked for when no folder is given, in order."""
    candidates: list[Path] = []
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        candidates.append(Path(env).expanduser())
    project_root = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), project_root):
        candidates.append(base / "data" / "nyt-comments")
        candidates.append(base.parent / "shared" / "data" / "nyt-comments")
    unique: list[Path] = []
    for c in candidates:
        if c not in unique:
            unique.append(c)
    return unique


def article_files(data_dir: Path) -> list[Path]:
    """The ``Articles*.csv`` files of a folder in chronological order (year, then month)."""
    found = []
    for path in Path(data_dir).glob("Articles*.csv"):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            continue
        month_name, year = match.groups()
        month = _MONTHS.get(month_name) or _MONTH_ALIASES.get(month_name)
        if month is None:
            raise DataError(f"{path}: cannot read the month from the file name; expected e.g. ArticlesJan2017.csv")
        found.append((int(year), month, path))
    return [p for _, _, p in sorted(found)]


def find_nyt_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the NYT files: ``data_dir`` if given (it must hold them), else the first candidate.

    Returns ``None`` when no candidate holds any ``Articles*.csv`` file.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data folder {path} does not exist. Give the folder that holds the nine Articles*.csv files "
                f"of the Kaggle dataset {KAGGLE_DATASET}, or run `make data` to download them.")
        if not article_files(path):
            raise DataError(
                f"data folder {path} holds no Articles*.csv file. Give the folder of the Kaggle dataset "
                f"{KAGGLE_DATASET}, or run `make data` to download them.")
        return path
    for candidate in candidate_data_dirs():
        if candidate.is_dir() and article_files(candidate):
            return candidate
    return None


def missing_data_message() -> str:
    """One line that says the NYT data is absent and names the fix."""
    looked = ", ".join(str(p) for p in candidate_data_dirs())
    return (f"NYT data not found (looked in {looked}); set ${DATA_ENV_VAR} or pass data_dir, "
            f"or run `make data` to download {KAGGLE_DATASET} with kagglehub.")


def read_headlines(data_dir: str | os.PathLike) -> list[str]:
    """Raw headlines of every ``Articles*.csv`` in chronological order, ``"Unknown"`` dropped."""
    import pandas as pd

    files = article_files(Path(data_dir))
    if not files:
        raise DataError(f"{data_dir} holds no Articles*.csv file")
    if len(files) != EXPECTED_NYT_FILES:
        warnings.warn(f"{data_dir} holds {len(files)} Articles*.csv files, the paper used "
                      f"{EXPECTED_NYT_FILES}; results will differ from the paper's.", stacklevel=2)
    headlines: list[str] = []
    for path in files:
        try:
            frame = pd.read_csv(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read as CSV ({exc}); re-download it with `make data`") from exc
        if HEADLINE_COLUMN not in frame.columns:
            raise DataError(
                f"{path}: no column {HEADLINE_COLUMN!r} (columns: {', '.join(map(str, frame.columns))}); "
                f"the loader needs the Articles*.csv files of {KAGGLE_DATASET}, not the Comments*.csv ones.")
        values = frame[HEADLINE_COLUMN].dropna().astype(str).tolist()
        headlines.extend(h for h in values if h != UNKNOWN_HEADLINE)
    return headlines


# ---------------------------------------------------------------------------------------------------------
# Vocabulary and sequences
# ---------------------------------------------------------------------------------------------------------

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

    def split(self, mode: str = "tail", fraction: float = 0.2, seed: int | None = 0) -> Split:
        """Training/validation split.

        ``tail``: the last ``fraction`` of the sequences, as Keras' ``validation_split`` takes them
        (train = the first ``ceil(N * (1 - fraction))``). ``headline``: a seeded random choice of headlines, so
        that no headline's prefixes fall on both sides.
        """
        if mode not in SPLIT_MODES:
            raise ValueError(f"unknown split mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
        n = self.n_sequences
        if mode == "tail":
            cut = int(np.ceil(n * (1.0 - fraction)))
            train, val = np.arange(cut), np.arange(cut, n)
        else:
            rng = np.random.default_rng(seed)
            n_headlines = int(self.headline_index.max()) + 1 if n else 0
            chosen = rng.permutation(n_headlines)[: round(n_headlines * fraction)]
            is_val = np.isin(self.headline_index, chosen)
            train, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"split {mode!r} with fraction {fraction} leaves an empty side ({n} sequences)")
        return Split(self.X[train], self.y[train], self.X[val], self.y[val], mode, fraction,
                     seed if mode == "headline" else None, train, val)

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
    """Clean, build the vocabulary and the prefix sequences of a list of raw headlines."""
    token_lists = [tokenize(clean_headline(h)) for h in headlines]
    word_index = build_vocabulary(token_lists)
    encoded = [[word_index[w] for w in tokens] for tokens in token_lists]
    max_len = max((len(ids) for ids in encoded), default=0)
    if max_len < 2:
        raise DataError(f"corpus {name!r} has no headline of two words or more")
    X, y, owner = prefix_sequences(encoded, max_len)
    return Corpus(name, headlines, word_index, max_len, X, y, owner, source=source, true_next=true_next)


def resolve_dataset(name: str = "auto", data_dir: str | os.PathLike | None = None) -> str:
    """``"auto"`` becomes ``"nyt"`` when the NYT files are found, else ``"synthetic"`` (said in one line)."""
    if name != "auto":
        if name not in ("nyt", "synthetic"):
            raise ValueError(f"unknown corpus {name!r}; use 'nyt', 'synthetic' or 'auto'")
        return name
    if data_dir is not None or find_nyt_dir(None) is not None:
        return "nyt"
    notice = missing_data_message() + " Using the project's SYNTHETIC corpus instead."
    print(notice)
    return "synthetic"


def load_nyt(data_dir: str | os.PathLike | None = None) -> Corpus:
    """The paper's corpus from the NYT ``Articles*.csv`` files (see :func:`find_nyt_dir`)."""
    folder = find_nyt_dir(data_dir)
    if folder is None:
        raise DataError(missing_data_message())
    return corpus_from_headlines("nyt", read_headlines(folder), source=str(folder))


def load_corpus(name: str = "nyt", data_dir: str | os.PathLike | None = None, *, fallback: bool = False,
                **options) -> Corpus:
    """Load a corpus by name: ``"nyt"`` (the paper's) or ``"synthetic"`` (seeded, exactly known).

    With ``fallback=True`` a missing NYT folder (none given, none found) gives the synthetic corpus and says
    so in one warning line; a folder that was given but is wrong is always an error.
    ``options`` go to :func:`entropylab.synthetic.make_synthetic_corpus` for the synthetic corpus.
    """
    if name == "nyt":
        if options:
            raise TypeError(f"the nyt corpus takes no options, got {sorted(options)}")
        if fallback and resolve_dataset("auto", data_dir) == "synthetic":
            from .synthetic import make_synthetic_corpus

            return make_synthetic_corpus()
        return load_nyt(data_dir)
    if name == "synthetic":
        from .synthetic import make_synthetic_corpus

        return make_synthetic_corpus(**options)
    raise ValueError(f"unknown corpus {name!r}; use 'nyt' or 'synthetic'")
