"""The data package: the corpus, its NYT and synthetic sources (the bigram world and the hidden-state source), loading
by name, statistics and figures."""

from __future__ import annotations

from .corpus import (
    SPLIT_MODES,
    Corpus,
    DataError,
    Split,
    UnknownWordsWarning,
    build_vocabulary,
    clean_headline,
    corpus_from_headlines,
    prefix_sequences,
    tokenize,
)
from .load import load_corpus, resolve_dataset
from .nyt import (
    DATA_ENV_VAR,
    KAGGLE_DATASET,
    article_files,
    candidate_data_dirs,
    find_nyt_dir,
    load_nyt,
    missing_data_message,
    read_headlines,
)

__all__ = [
    "DATA_ENV_VAR",
    "KAGGLE_DATASET",
    "SPLIT_MODES",
    "Corpus",
    "DataError",
    "Split",
    "UnknownWordsWarning",
    "article_files",
    "build_vocabulary",
    "candidate_data_dirs",
    "clean_headline",
    "corpus_from_headlines",
    "find_nyt_dir",
    "load_corpus",
    "load_nyt",
    "missing_data_message",
    "prefix_sequences",
    "read_headlines",
    "resolve_dataset",
    "tokenize",
]
