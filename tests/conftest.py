"""Shared fixtures: the real NYT folder (from ../shared) and small corpora."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest

from entropylab.data import find_nyt_dir


@pytest.fixture(scope="session")
def nyt_dir():
    folder = find_nyt_dir(None)
    if folder is None:
        pytest.skip("NYT data not found (tests and CI use ../shared/data/nyt-comments)")
    return folder


@pytest.fixture(scope="session")
def nyt_corpus(nyt_dir):
    from entropylab.data import load_corpus

    return load_corpus("nyt", nyt_dir)


@pytest.fixture(scope="session")
def small_synthetic():
    from entropylab.synthetic import make_synthetic_corpus

    return make_synthetic_corpus(n_headlines=300, n_words=60, branching=5, seed=3)
