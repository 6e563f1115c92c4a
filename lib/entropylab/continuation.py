"""Continuing a batch of prefixes word by word with any decoder of :mod:`entropylab.decoders`: one model call per
step for the whole batch (``B`` prefixes, or ``B x K`` beams).

Each prefix is a row of the model's padded input window; after each step the chosen word is appended and the
window slides left by one (the model only ever sees its fixed window). The model's distribution ``p`` of a row is
``softmax(z)`` (softmax head) or ``c / sum_j c_j`` with ``c = clip(o, eps, 1)`` (linear head); padding (index 0)
never has mass. Besides the words, a continuation records each word's **surprisal** under the model's unfiltered
distribution, ``-ln p(w_i | context)`` in nats, and, given the exact law ``q`` of a synthetic source, each word's
probability ``q(w_i | context)`` under the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .decoders import check_decoder, filter_batch, leading, mirostat_step, sample_rows
from .objectives import EPSILON


@dataclass
class Continuations:
    """``words`` (``B x n`` word ids), their ``surprisal`` under the model (nats), the source's probability of
    each (``true_probability``, synthetic corpus only) and, for Mirostat, the observed surprise in bits."""

    words: np.ndarray
    surprisal: np.ndarray
    true_probability: np.ndarray | None = None
    observed_surprise: np.ndarray | None = None


def model_distributions(model: Any, window: np.ndarray, head: str) -> np.ndarray:
    """``p`` of every row of ``window`` (one model call), padding removed, rows renormalised (float64)."""
    outputs = np.asarray(model(window, training=False), dtype=np.float64)
    softmax = head == "softmax"
    p = np.exp(outputs - outputs.max(axis=1, keepdims=True)) if softmax else np.clip(outputs, EPSILON, 1.0)
    p[:, 0] = 0.0
    return p / p.sum(axis=1, keepdims=True)


def _slide(window: np.ndarray, words: np.ndarray) -> np.ndarray:
    return np.concatenate([window[:, 1:], words[:, None].astype(window.dtype)], axis=1)


def continue_prefixes(model: Any, contexts: np.ndarray, n_words: int, *, head: str, strategy: str = "greedy",
                      seed: int = 0, true_next: Callable[[np.ndarray], np.ndarray] | None = None,
                      **params: Any) -> Continuations:
    """The next ``n_words`` words of every row of ``contexts`` by ``strategy`` (``greedy``, ``sample`` with the
    transforms of :func:`entropylab.decoders.filter_batch`, ``mirostat`` with ``tau``/``eta``, ``beam`` with
    ``num_beams``); sampling draws from ``numpy.random.default_rng(seed)``, so a seed gives the same words."""
    params = check_decoder(strategy, **params)
    if isinstance(n_words, bool) or not isinstance(n_words, int) or n_words < 1:
        raise ValueError(f"n_words must be an integer >= 1, got {n_words!r}")
    window = np.array(contexts, dtype=np.int32, ndmin=2, copy=True)
    if strategy == "beam":
        return _beam_search(model, window, n_words, head, params["num_beams"], true_next)
    rng = np.random.default_rng(seed)
    plain = check_decoder("sample") if strategy == "sample" else None  # ancestral sampling: p as it is
    rows = np.arange(len(window))
    words = np.zeros((len(window), n_words), dtype=np.int64)
    surprisal = np.zeros((len(window), n_words))
    true_probability = None if true_next is None else np.zeros((len(window), n_words))
    observed = np.zeros((len(window), n_words)) if strategy == "mirostat" else None
    mu = np.full(len(window), 2.0 * params["tau"]) if strategy == "mirostat" else None
    for step in range(n_words):
        p = model_distributions(model, window, head)
        if strategy == "greedy":
            chosen = np.argmax(p, axis=1)
        elif strategy == "sample":
            chosen = sample_rows(filter_batch(p, **params) if params != plain else p, rng)
        else:
            chosen, mu, observed[:, step] = mirostat_step(p, mu, params["tau"], params["eta"], rng)
        surprisal[:, step] = -np.log(p[rows, chosen])
        if true_probability is not None:
            true_probability[:, step] = np.asarray(true_next(window))[rows, chosen]
        words[:, step] = chosen
        window = _slide(window, chosen)
    return Continuations(words, surprisal, true_probability, observed)


def _beam_search(model: Any, window: np.ndarray, n_words: int, head: str, beams: int,
                 true_next: Callable[[np.ndarray], np.ndarray] | None) -> Continuations:
    """Beam search (:mod:`entropylab.decoders`): per prefix the ``beams`` best partial continuations by total
    log-probability, all prefixes' beams in one model call per step."""
    n = len(window)
    windows = window[:, None, :]  # n x k x L, k grows to `beams`
    scores = np.zeros((n, 1))
    history = np.zeros((n, 1, 0), dtype=np.int64)
    logs = np.zeros((n, 1, 0))
    truths = np.zeros((n, 1, 0))
    for _ in range(n_words):
        k = windows.shape[1]
        flat = windows.reshape(n * k, -1)
        p = model_distributions(model, flat, head)
        with np.errstate(divide="ignore"):
            log_p = np.log(p).reshape(n, k, -1)
        vocab = log_p.shape[2]
        total = (scores[:, :, None] + log_p).reshape(n, k * vocab)
        width = min(beams, int(np.isfinite(total).sum(axis=1).min()))
        best = leading(-total, width)  # ties: the lower beam, then the lower word
        parent, word = best // vocab, best % vocab
        take = np.arange(n)[:, None]
        scores = np.take_along_axis(total, best, axis=1)
        step_log = log_p[take, parent, word]
        if true_next is not None:
            q = np.asarray(true_next(flat)).reshape(n, k, -1)[take, parent, word]
            truths = np.concatenate([truths[take, parent], q[:, :, None]], axis=2)
        history = np.concatenate([history[take, parent], word[:, :, None]], axis=2)
        logs = np.concatenate([logs[take, parent], step_log[:, :, None]], axis=2)
        windows = np.concatenate([windows[take, parent][:, :, 1:], word[:, :, None].astype(window.dtype)], axis=2)
    top = np.argmax(scores, axis=1)
    rows = np.arange(n)
    return Continuations(history[rows, top], -logs[rows, top], truths[rows, top] if true_next is not None else None)
