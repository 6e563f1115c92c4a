"""entropy-lab: reproduce, check and extend entropy-based training of a small LSTM language model."""

from .data import Corpus, load_corpus

__all__ = ["Corpus", "load_corpus"]
__version__ = "0.1.0"
