"""Word-frequency bands of the vocabulary, fixed once per run from its training labels (Labeau & Cohen report the
effect of their objectives by word frequency; every run reports its cross-entropy per band the same way).

With ``n_w`` the number of times word ``w`` is a training label (the training split's next words; padding, id 0,
is never counted) and ``N = sum_w n_w`` the training tokens, the words seen in training (``n_w > 0``) are sorted by
count descending, ties by id ascending: ``w_1, w_2, ...``. Word ``w_k`` **starts** at token
``s_k = n_{w_1} + ... + n_{w_{k-1}}`` of that order (``0 <= s_k < N``), and its band is the third of the training
tokens its first token lies in:

* ``frequent``: ``3 s_k < N`` (the word starts in the first third);
* ``middle``: ``N <= 3 s_k < 2 N``;
* ``rare``: ``3 s_k >= 2 N``, the rest of the words seen in training;
* ``unseen``: ``n_w = 0`` (a word of the vocabulary that is never a training label);
* padding (id 0) belongs to no band (:data:`NO_BAND`).

So a word that straddles a boundary (its tokens run from one third into the next) goes to the band it starts in;
the first word always is ``frequent``, and a band may be empty (one word holding over a third of the tokens leaves
``middle`` without words when it also reaches past ``2N/3``). The comparison is in integers, without rounding.

The band of each vocabulary id is one ``V``-long vector (:func:`word_bands`): a batch's labels look up their bands in
it, and the evaluator (:mod:`entropylab.metrics.validation`) adds ``-log p_t`` and a count per band.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The bands, in the order of their index in :func:`word_bands`.
BANDS = ("frequent", "middle", "rare", "unseen")
#: The band index of padding (id 0): no band.
NO_BAND = -1
#: The words seen in training are cut into this many parts of the training tokens (frequent, middle, rare).
THIRDS = 3


def word_bands(train_labels: Any, vocab_size: int) -> np.ndarray:
    """The band index (into :data:`BANDS`) of each vocabulary id ``0 .. vocab_size - 1`` (int32; padding: -1), from
    the training labels' counts by the rule of the module docstring."""
    labels = np.asarray(train_labels).reshape(-1)
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1 (padding included), got {vocab_size}")
    if labels.size and (labels.min() < 0 or labels.max() >= vocab_size):
        raise ValueError(f"training labels must be ids in [0, {vocab_size}); got {labels.min()} .. {labels.max()}: "
                         f"pass the corpus' vocab_size (padding included)")
    counts = np.bincount(labels.astype(np.int64), minlength=vocab_size).astype(np.int64)
    counts[0] = 0  # padding is never a word
    bands = np.full(vocab_size, BANDS.index("unseen"), dtype=np.int32)
    bands[0] = NO_BAND
    seen = np.flatnonzero(counts > 0)
    total = int(counts.sum())
    if total:
        order = seen[np.lexsort((seen, -counts[seen]))]  # count descending, then id ascending
        starts = np.concatenate([[0], np.cumsum(counts[order])[:-1]])
        bands[order] = np.minimum(THIRDS * starts // total, THIRDS - 1).astype(np.int32)
    return bands


def band_summary(bands: np.ndarray, train_labels: Any) -> dict[str, dict[str, float]]:
    """Per band, its number of words and its share of the training tokens (``unseen``: 0)."""
    labels = np.asarray(train_labels).reshape(-1)
    label_bands = bands[labels.astype(np.int64)]
    counted = label_bands[label_bands != NO_BAND]
    return {band: {"words": int((bands == index).sum()),
                   "train_share": float((counted == index).mean()) if counted.size else float("nan")}
            for index, band in enumerate(BANDS)}
