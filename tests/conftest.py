"""Shared fixtures: the real NYT folder (from ../shared) and small corpora.

Without the NYT files the tests that need them skip, except where ``ENTROPYLAB_REQUIRE_DATA=1`` (set by
``.ci/run``): there a missing data folder fails them, so CI never passes by skipping.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# The suite's sweeps (and the processes they start) train on TensorFlow unless the caller names a backend: their
# fault tests are timed for it (a run of `jit_compile: false` is a traced graph there, op by op on JAX), and their
# numbers are compared with in-process runs of this TensorFlow process. The sweeps' default, JAX, is checked end
# to end by tests/test_sweep_backend.py, which clears the variable.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

from entropylab.data import find_nyt_dir


@pytest.fixture(scope="session")
def nyt_dir():
    folder = find_nyt_dir(None)
    if folder is None:
        message = "NYT data not found (tests and CI use ../shared/data/nyt-comments, or $ENTROPYLAB_DATA)"
        if os.environ.get("ENTROPYLAB_REQUIRE_DATA") == "1":
            pytest.fail(f"{message}; ENTROPYLAB_REQUIRE_DATA=1 requires it")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def nyt_corpus(nyt_dir):
    from entropylab.data import load_corpus

    return load_corpus("nyt", nyt_dir)


@pytest.fixture(scope="session")
def small_synthetic():
    from entropylab.data.synthetic import make_synthetic_corpus

    return make_synthetic_corpus(n_headlines=300, n_words=60, branching=5, seed=3)
