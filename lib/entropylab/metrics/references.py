"""Count-model reference rows: the validation cross-entropy of unigram and bigram models fitted on the training split,
and (``kneser_ney=True``) of the interpolated modified Kneser-Ney model of :mod:`.kneser_ney` whose order is chosen
on a carve of the training split.

A neural model's numbers mean little until they are set against these: on a temporal split they are hard to beat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .kneser_ney import ORDERS, best_order_model


def ngram_references(y_train: np.ndarray, x_train: np.ndarray, y_val: np.ndarray, x_val: np.ndarray,
                     vocab_size: int, interpolation: float = 0.6, *, kneser_ney: bool = False,
                     carve: str = "headline", heldout: tuple[np.ndarray, np.ndarray] | None = None,
                     orders: tuple[int, ...] = ORDERS) -> dict[str, float]:
    """Validation cross-entropy ``H = -(1/N) sum_i ln p(y_i | x_i)`` (nats) of count models fitted on the training
    split, and each one's perplexity ``exp(H)``.

    * unigram with add-one smoothing: ``p(v) = (n(v) + 1) / (N + V - 1)`` over the ``V - 1`` words;
    * bigram on the context's last word ``u``, interpolated with that unigram:
      ``p(v | u) = lam * n(u, v) / n(u) + (1 - lam) p(v)`` (``lam`` fixed at 0.6, not tuned on validation);
    * with ``kneser_ney=True`` also ``kneser_ney_*``: the interpolated modified Kneser-Ney model
      (:class:`.kneser_ney.KneserNeyModel`, discounts from the training counts) of the order in ``orders`` with the
      lowest cross-entropy on a held-out side, refitted on the whole training split and scored on validation
      (:func:`.kneser_ney.best_order_model`); ``kneser_ney_order`` is that order and ``kneser_ney_heldout_<k>``
      each order's held-out cross-entropy. The held-out side is ``heldout = (y, x)`` when given (a dev side), else
      a carve of the training split (:func:`.kneser_ney.tuning_carve` with ``carve``, the split's mode:
      ``headline`` or ``tail``): the reported validation split never takes part in the choice.
    """
    unigram = CountModel(y_train, x_train, vocab_size, 1, interpolation)
    bigram = CountModel(y_train, x_train, vocab_size, 2, interpolation)
    uni_ce = float(-np.mean(np.log(unigram.probability_of(x_val, y_val))))
    bi_ce = float(-np.mean(np.log(bigram.probability_of(x_val, y_val))))
    rows = {"unigram_cross_entropy": uni_ce, "unigram_perplexity": math.exp(uni_ce),
            "bigram_cross_entropy": bi_ce, "bigram_perplexity": math.exp(bi_ce)}
    if kneser_ney:
        model, scores = best_order_model(y_train, x_train, vocab_size, carve=carve, heldout=heldout, orders=orders)
        kn_ce = model.cross_entropy(x_val, y_val)
        rows.update({"kneser_ney_order": model.order, "kneser_ney_cross_entropy": kn_ce,
                     "kneser_ney_perplexity": math.exp(kn_ce),
                     **{f"kneser_ney_heldout_{k}": v for k, v in scores.items()}})
    return rows


class CountModel:
    """The unigram (``order=1``) or bigram (``order=2``) count model of :func:`ngram_references`, fitted on a
    training split: :meth:`probability_of` scores given next words; called like a Keras model on a batch of context
    windows, it returns each row's log-probabilities over the vocabulary (padding ``-inf``), to be decoded with
    ``head="softmax"`` (``tests/test_decoding_study.py`` checks that both agree). The Kneser-Ney models
    (:class:`.kneser_ney.KneserNeyModel`, orders 2 to 5) have the same interface."""

    def __init__(self, y_train: np.ndarray, x_train: np.ndarray, vocab_size: int, order: int = 2,
                 interpolation: float = 0.6) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order!r}")
        words = vocab_size - 1
        counts = np.bincount(y_train, minlength=vocab_size).astype(np.float64)
        self.unigram = (counts + 1.0) / (len(y_train) + words)
        self.unigram[0] = 0.0
        self.order, self.vocab_size, self.interpolation = order, vocab_size, interpolation
        previous = x_train[:, -1].astype(np.int64)
        self.context_counts = np.bincount(previous, minlength=vocab_size).astype(np.float64)
        self.pairs, self.pair_counts = np.unique(previous * vocab_size + y_train, return_counts=True)

    def probability_of(self, window: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``p(y_i | last word of row i)`` for each row of ``window`` and its next word ``y_i``."""
        if self.order == 1:
            return self.unigram[y]
        previous = np.asarray(window)[:, -1].astype(np.int64)
        pair = previous * self.vocab_size + y
        position = np.minimum(np.searchsorted(self.pairs, pair), len(self.pairs) - 1)
        pair_count = np.where(self.pairs[position] == pair, self.pair_counts[position], 0).astype(np.float64)
        seen = self.context_counts[previous] > 0
        ml = np.divide(pair_count, self.context_counts[previous], out=np.zeros_like(pair_count), where=seen)
        lam = self.interpolation
        return np.where(seen, lam * ml + (1 - lam) * self.unigram[y], self.unigram[y])

    def probabilities(self, window: np.ndarray) -> np.ndarray:
        """``p(. | last word of each row)`` (``B x V``)."""
        window = np.asarray(window)
        p = np.tile(self.unigram, (len(window), 1))
        if self.order == 1:
            return p
        previous = window[:, -1].astype(np.int64)
        for row, word in enumerate(previous):
            n = self.context_counts[word]
            if n == 0:
                continue
            lo, hi = np.searchsorted(self.pairs, [word * self.vocab_size, (word + 1) * self.vocab_size])
            ml = np.zeros(self.vocab_size)
            ml[self.pairs[lo:hi] - word * self.vocab_size] = self.pair_counts[lo:hi] / n
            p[row] = self.interpolation * ml + (1 - self.interpolation) * self.unigram
        return p

    def __call__(self, window: np.ndarray, training: bool = False) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.probabilities(window))


class SourceModel:
    """A synthetic corpus's exact law ``q`` (its ``true_next``) as a text generator, like :class:`CountModel`:
    log-probabilities, words the source cannot emit at ``-inf``; decode with ``head="softmax"``."""

    def __init__(self, true_next: Any) -> None:
        self.true_next = true_next

    def __call__(self, window: np.ndarray, training: bool = False) -> np.ndarray:
        q = np.asarray(self.true_next(np.asarray(window)), dtype=np.float64)
        with np.errstate(divide="ignore"):
            return np.log(q)
