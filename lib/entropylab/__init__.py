"""entropy-lab: reproduce, check and extend entropy-based training of a small LSTM language model."""

import os

# Quiet TensorFlow's C++ start-up lines (they end up in notebooks and break nbval); set before TF loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .data import Corpus, load_corpus

__all__ = ["Corpus", "load_corpus"]
__version__ = "0.1.0"
