"""Statistics of a corpus: its regression counts, headline lengths, word counts, Zipf exponent and split sizes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .corpus import Corpus, clean_headline, tokenize

#: The loader's regression numbers on the nine NYT files (pinned by tests/test_data.py).
NYT_EXPECTED_COUNTS = {"headlines": 8603, "vocabulary indices (with padding)": 11265, "tokens at most": 24,
                       "prefix sequences": 51770}


def corpus_counts(corpus: Corpus) -> pd.DataFrame:
    """The loader's four regression numbers: headlines, vocabulary indices (with padding), the longest
    headline in tokens and the prefix sequences."""
    return pd.DataFrame({"count": [len(corpus.headlines), corpus.vocab_size, corpus.max_len, corpus.n_sequences]},
                        index=pd.Index(["headlines", "vocabulary indices (with padding)", "tokens at most",
                                        "prefix sequences"], name=corpus.name))


def headline_lengths(corpus: Corpus) -> pd.Series:
    """The length in words (after cleaning) of every headline."""
    return pd.Series([len(tokenize(clean_headline(h))) for h in corpus.headlines], name="words", dtype=int)


def split_table(corpus: Corpus, fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Training and validation sizes of the ``tail`` and ``headline`` splits (``seed``: the split seed), how
    many headlines have prefixes on both sides (0 for ``headline``, at most 1 for ``tail``), how many distinct
    cleaned headline texts have copies on both sides (0 for ``headline``: the copies of a text stay together)
    and the share of validation labels that never occur as a training label (no model trained on that split
    can predict them)."""
    texts = corpus.cleaned_texts()
    rows = []
    for mode in ("tail", "headline"):
        split = corpus.split(mode, fraction, seed)
        train_h = set(corpus.headline_index[split.train_index].tolist())
        val_h = set(corpus.headline_index[split.val_index].tolist())
        n_train, n_val = split.sizes
        unseen = ~np.isin(split.y_val, np.unique(split.y_train))
        rows.append({"mode": mode, "train": n_train, "validation": n_val,
                     "validation share": round(n_val / (n_train + n_val), 4),
                     "headlines on both sides": len(train_h & val_h),
                     "cleaned texts on both sides": len({texts[h] for h in train_h} & {texts[h] for h in val_h}),
                     "unseen validation labels": round(float(unseen.mean()), 4)})
    return pd.DataFrame(rows)


def word_counts(corpus: Corpus) -> np.ndarray:
    """Occurrences of each vocabulary word in the cleaned headlines, by rank (most frequent first)."""
    counts: Counter[str] = Counter()
    for h in corpus.headlines:
        counts.update(tokenize(clean_headline(h)))
    return np.array(sorted(counts.values(), reverse=True), dtype=np.int64)


def zipf_exponent(counts: Sequence[int]) -> float:
    """Least-squares slope ``s`` of ``log count = c - s log rank`` over all ranks (Zipf's law: ``s ≈ 1``)."""
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) < 2:
        raise ValueError("a Zipf fit needs at least two words")
    ranks = np.arange(1, len(counts) + 1, dtype=np.float64)
    slope, _ = np.polyfit(np.log(ranks), np.log(counts), 1)
    return float(-slope)
