"""The REFERENCE pipeline: the Kaggle guide's way of training the paper's model, kept only to benchmark against."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Corpus
from ..model import build_model

VALIDATION_SPLIT = 0.2


@dataclass
class NaiveResult:
    """What a naive run gives back: Keras' history (``loss``, ``val_loss`` per epoch) and the model."""

    history: dict[str, list[float]]
    model: Any
    n_train: int
    n_val: int
    label_bytes: int


def one_hot_labels(y: np.ndarray, vocab_size: int) -> np.ndarray:
    """The guide's labels: ``keras.utils.to_categorical(y, num_classes=V)`` (float64, ``len(y) x V``)."""
    import keras

    return keras.utils.to_categorical(y, num_classes=vocab_size)


def split_sizes(n: int, validation_split: float = VALIDATION_SPLIT) -> tuple[int, int]:
    """Training and validation sizes of Keras' ``validation_split``: Keras 3's ``train_validation_split`` trains
    on the first ``floor(n * (1 - validation_split))`` examples and validates on the rest."""
    cut = math.floor(n * (1.0 - validation_split))
    return cut, n - cut


def train_naive(corpus: Corpus, *, epochs: int = 1, batch_size: int = 32, seed: int = 0,
                validation_split: float = VALIDATION_SPLIT, embedding_dim: int = 10, lstm_units: int = 100,
                dropout: float = 0.1, callbacks: list[Any] | None = None, verbose: int = 0) -> NaiveResult:
    """Train the paper's model the guide's way on ``corpus`` and return its history.

    Do not use it for experiments; :func:`entropylab.training.train.run` computes the same objective without
    its costs. It is what the paper's code does, after Bansal's *Beginner's Guide to Text Generation using
    LSTMs*:

    * labels as a dense one-hot matrix from ``keras.utils.to_categorical`` (float64: ``N x V x 8`` bytes,
      4.7 GB for the full NYT data, 51,770 x 11,265), on top of the integer prefix sequences;
    * ``model.fit`` on the NumPy arrays with ``validation_split=0.2`` (Keras validates on the sequences after
      the first ``floor(N * 0.8)``, as ``split="tail"`` does: :func:`split_sizes`), batch 32, shuffling each
      epoch, Keras' default ``jit_compile="auto"`` (no XLA on a CPU);
    * Keras' ``mean_squared_error`` on the linear head: ``mean_j (onehot(t)_j - o_j)^2`` per example, which
      is exactly :func:`entropylab.objectives.paper_mse` (``(sum_j o_j^2 - 2 o_t + 1) / V``) on the integer
      label ``t``.

    The model is the project's own :func:`entropylab.model.build_model` (the paper's ``create_model``), so
    the benchmark compares pipelines, not models. The corpus is the project's (its sequences and vocabulary
    are the guide's); only the label step is the guide's.
    """
    import keras

    keras.utils.set_random_seed(seed)
    predictors = corpus.X
    labels = one_hot_labels(corpus.y, corpus.vocab_size)
    model = build_model(corpus.vocab_size, corpus.max_len - 1, embedding_dim=embedding_dim,
                        lstm_units=lstm_units, dropout=dropout, head="linear")
    model.compile(loss="mean_squared_error", optimizer="adam")
    history = model.fit(predictors, labels, epochs=epochs, batch_size=batch_size,
                        validation_split=validation_split, verbose=verbose, callbacks=callbacks or [])
    n_train, n_val = split_sizes(len(corpus.y), validation_split)
    return NaiveResult({k: [float(v) for v in vals] for k, vals in history.history.items()}, model,
                       n_train, n_val, int(labels.nbytes))
