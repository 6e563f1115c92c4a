"""Count-model reference rows: the validation cross-entropy of unigram and bigram models fitted on the training split.

A neural model's numbers mean little until they are set against these: on a temporal split they are hard to beat.
"""

from __future__ import annotations

import math

import numpy as np


def ngram_references(y_train: np.ndarray, x_train: np.ndarray, y_val: np.ndarray, x_val: np.ndarray,
                     vocab_size: int, interpolation: float = 0.6) -> dict[str, float]:
    """Validation cross-entropy (nats) of two count models fitted on the training split.

    * unigram with add-one smoothing: ``p(v) = (n(v) + 1) / (N + V - 1)`` over the ``V - 1`` words;
    * bigram on the context's last word ``u``, interpolated with that unigram:
      ``p(v | u) = lam * n(u, v) / n(u) + (1 - lam) p(v)`` (``lam`` fixed at 0.6, not tuned on validation).
    """
    words = vocab_size - 1
    unigram_counts = np.bincount(y_train, minlength=vocab_size).astype(np.float64)
    unigram = (unigram_counts + 1.0) / (len(y_train) + words)
    unigram[0] = 0.0
    uni_ce = float(-np.mean(np.log(unigram[y_val])))

    prev_train, prev_val = x_train[:, -1].astype(np.int64), x_val[:, -1].astype(np.int64)
    pair_train = prev_train * vocab_size + y_train
    pairs, counts = np.unique(pair_train, return_counts=True)
    context_counts = np.bincount(prev_train, minlength=vocab_size).astype(np.float64)
    pair_val = prev_val * vocab_size + y_val
    position = np.searchsorted(pairs, pair_val)
    position = np.minimum(position, len(pairs) - 1)
    pair_count = np.where(pairs[position] == pair_val, counts[position], 0).astype(np.float64)
    seen = context_counts[prev_val] > 0
    ml = np.divide(pair_count, context_counts[prev_val], out=np.zeros_like(pair_count), where=seen)
    prob = np.where(seen, interpolation * ml + (1 - interpolation) * unigram[y_val], unigram[y_val])
    bi_ce = float(-np.mean(np.log(prob)))
    return {"unigram_cross_entropy": uni_ce, "unigram_perplexity": math.exp(uni_ce),
            "bigram_cross_entropy": bi_ce, "bigram_perplexity": math.exp(bi_ce)}
