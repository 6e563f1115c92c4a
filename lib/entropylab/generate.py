"""Continuing a seed text word by word (paper §4.4): greedy, as the paper does, and seeded sampling.

Greedy picks ``argmax_j o_j`` at each step (the paper's "highest probability outputs"). The sampling
strategies work on the normalised distribution ``p`` (softmax of logits, or ``c / sum c`` for the
linear head) and use the parameter names of Hugging Face ``transformers``:

* ``temperature``: ``p_j ∝ p_j^(1/T)``;
* ``top_k``: keep the ``k`` most likely words;
* ``top_p`` (nucleus): keep the smallest most-likely set whose mass reaches ``top_p``;
* ``typical_p`` (locally typical sampling): keep the words whose surprisal ``-log p_j`` is closest to the
  entropy ``H(p)`` until their mass reaches ``typical_p``;
* ``min_p``: keep the words with ``p_j >= min_p * max_j p_j``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import Corpus
from .losses import EPSILON

PAPER_SEED_TEXTS = ("United States", "President Trump", "Donald Trump", "India and China", "New York",
                    "Science and Technology")
STRATEGIES = ("greedy", "sample")


@dataclass
class Continuation:
    seed_text: str
    words: list[str]
    probabilities: list[float]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def as_paper(self) -> str:
        """The paper's notation: ``[Word Word ...]``."""
        return "[" + " ".join(self.words) + "]"


def normalise(outputs: np.ndarray, head: str) -> np.ndarray:
    """The distribution ``p`` of one output row (softmax, or ``c / sum c`` with ``c = clip(o, eps, 1)``)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if head == "softmax":
        shifted = np.exp(outputs - outputs.max())
        return shifted / shifted.sum()
    clipped = np.clip(outputs, EPSILON, 1.0)
    return clipped / clipped.sum()


def filter_distribution(p: np.ndarray, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                        typical_p: float = 1.0, min_p: float = 0.0) -> np.ndarray:
    """Apply the sampling transforms (see the module docstring) and renormalise. Index 0 (padding) is off."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use strategy='greedy' for argmax)")
    p = np.asarray(p, dtype=np.float64).copy()
    p[0] = 0.0
    logp = np.log(np.maximum(p, 1e-300)) / temperature
    p = np.exp(logp - logp.max()) * (p > 0)
    p /= p.sum()
    keep = p > 0
    if top_k and top_k > 0:
        threshold = np.sort(p)[-min(top_k, keep.sum())]
        keep &= p >= threshold
    if top_p < 1.0:
        order = np.argsort(-p)
        cumulative = np.cumsum(p[order])
        cut = np.searchsorted(cumulative, top_p) + 1
        mask = np.zeros_like(keep)
        mask[order[:cut]] = True
        keep &= mask
    if typical_p < 1.0:
        surprisal = -np.log(np.maximum(p, 1e-300))
        entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        order = np.argsort(np.where(p > 0, np.abs(surprisal - entropy), np.inf))
        cumulative = np.cumsum(p[order])
        cut = np.searchsorted(cumulative, typical_p) + 1
        mask = np.zeros_like(keep)
        mask[order[:cut]] = True
        keep &= mask
    if min_p > 0.0:
        keep &= p >= min_p * p.max()
    filtered = np.where(keep, p, 0.0)
    return filtered / filtered.sum()


def continue_text(model: Any, corpus: Corpus, seed_text: str, n_words: int = 10, *, head: str = "linear",
                  strategy: str = "greedy", seed: int | None = None, title_case: bool = True,
                  **params: Any) -> Continuation:
    """The next ``n_words`` words after ``seed_text``; unknown seed words are skipped with a warning."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(seed)
    context = corpus.encode(seed_text)
    index_word = corpus.index_word
    words: list[str] = []
    probabilities: list[float] = []
    for _ in range(n_words):
        outputs = np.asarray(model(corpus.pad(context), training=False))[0]
        p = normalise(outputs, head)
        if strategy == "greedy":
            outputs = outputs.copy()
            outputs[0] = -np.inf  # padding is never a word
            choice = int(np.argmax(outputs))
        else:
            choice = int(rng.choice(len(p), p=filter_distribution(p, **params)))
        context.append(choice)
        word = index_word.get(choice, "")
        words.append(word.title() if title_case else word)
        probabilities.append(float(p[choice]))
    return Continuation(seed_text, words, probabilities)
