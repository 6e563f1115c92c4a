"""Decoding a batch of prefixes at once: the truncation transforms on a ``B x V`` batch of distributions, Top-H,
Mirostat 2.0, beam search, and the loop that continues every prefix with one model call per step for the batch.

A transform is a pure function of a batch of distributions (rows of ``p``, padding index 0 without mass) that
returns the renormalised batch; each keeps at least one word per row (the most likely; for ``typical_p`` the most
typical). They compose as ``transformers``'
logits processors do, each one on the renormalised output of the one before, in the order of
:data:`entropylab.decoding.SAMPLING_PARAMETERS` (``temperature -> top_k -> top_p -> min_p -> typical_p ->
epsilon_cutoff -> eta_cutoff``), then ``top_h``; their rules are those of :mod:`entropylab.decoding` (one row),
which :func:`filter_batch` reproduces row for row (``tests/test_decoders.py``). Below ``H(p) = -sum_j p_j ln p_j``.

* ``top_h = α in (0, 1]`` (Top-H, Baghaei Potraghloo et al. 2025, "Top-H Decoding: Adapting the Creativity and
  Coherence with Bounded Entropy in Text Generation"): the entropy-constrained mass maximisation
  ``max_S sum_{j in S} p_j`` subject to ``H(q_S) <= α H(p)``, with ``q_S = p_S / sum_{j in S} p_j``, solved by the
  paper's greedy: add words in decreasing ``p`` while the kept set's renormalised entropy stays ``<= α H(p)``; stop
  at the first word that would break it (the most likely word alone has entropy 0, so it is always kept).
* Mirostat 2.0 (Basu, Ramachandran, Keskar & Varshney 2021, "Mirostat: A Neural Text Decoding Algorithm that
  Directly Controls Perplexity", §4 and Alg. 2), per sequence, surprises in bits: ``mu_0 = 2 τ``; at each step keep
  the words with surprise ``-log2 p_j <= mu`` (at least the most likely one), sample ``w`` from the renormalised
  kept set ``q``, observe ``s = -log2 q_w`` (as the reference implementation in llama.cpp does) and update
  ``mu <- mu - η (s - τ)``; the observed surprise is thus steered towards the target ``τ``.
* Beam search (``num_beams = K``): keep, per prefix, the ``K`` continuations of highest total log-probability
  ``sum_i ln p(w_i | context)``, extending each by every word and keeping the ``K`` best each step (no length
  normalisation: every continuation has the same length); the result is the best one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .decoding import SAMPLING_PARAMETERS, check_sampling_parameters

STRATEGIES = ("greedy", "sample", "mirostat", "beam")
#: The decoders' own parameters beside the sampling transforms (``top_h`` composes with them).
DECODER_PARAMETERS = ("top_h", "tau", "eta", "num_beams")
_MASS_TOLERANCE = 1e-12
#: How many of each row's words (most likely, or most typical) are sorted first; rows whose kept set does not end
#: well inside them are sorted whole (:func:`_sorted_prefix_keep`).
CANDIDATES = 256
#: False: every ordering is a full stable sort (what :func:`leading` replaces; ``python -m entropylab.bench
#: generation --decoders`` times both).
PARTIAL_SORT = True


# -- parameters ------------------------------------------------------------------------------------------------

def check_decoder(strategy: str, **params: Any) -> dict[str, Any]:
    """``strategy`` and its parameters checked, defaults filled in; one ``ValueError`` naming the first bad one.

    ``sample`` takes the sampling transforms and ``top_h``; ``mirostat`` takes ``tau`` (target surprise in bits,
    > 0) and ``eta`` (learning rate, > 0); ``beam`` takes ``num_beams`` (an integer >= 1); ``greedy`` none.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    allowed = {"greedy": (), "sample": (*SAMPLING_PARAMETERS, "top_h"), "mirostat": ("tau", "eta"),
               "beam": ("num_beams",)}[strategy]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"strategy {strategy!r} takes {', '.join(allowed) or 'no parameters'}; "
                         f"got {', '.join(map(repr, unknown))}")
    if strategy == "sample":
        top_h = params.pop("top_h", 1.0)
        checked = check_sampling_parameters(**params)
        checked["top_h"] = _real("top_h", top_h, "in (0, 1] (1 = off)", lambda x: 0 < x <= 1)
        return checked
    if strategy == "mirostat":
        return {"tau": _real("tau", params.get("tau", 3.0), "> 0 (target surprise in bits)", lambda x: x > 0),
                "eta": _real("eta", params.get("eta", 0.1), "> 0 (learning rate)", lambda x: x > 0)}
    if strategy == "beam":
        beams = params.get("num_beams", 4)
        if isinstance(beams, bool) or not isinstance(beams, int | np.integer) or beams < 1:
            raise ValueError(f"num_beams must be an integer >= 1, got {beams!r}")
        return {"num_beams": int(beams)}
    return {}


def _real(name: str, value: Any, allowed: str, ok: Callable[[float], bool]) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not ok(number):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


# -- the transforms on a batch -------------------------------------------------------------------------------

def entropy(p: np.ndarray) -> np.ndarray:
    """``H(p)`` of each row, in nats."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)


def _renormalise(p: np.ndarray, keep: np.ndarray, keep_most_likely: bool = True) -> np.ndarray:
    if keep_most_likely:
        keep = keep | (p >= p.max(axis=1, keepdims=True))  # each row keeps its most likely word
    out = np.where(keep, p, 0.0)
    return out / out.sum(axis=1, keepdims=True)


def leading(key: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` indices of each row of smallest ``key`` in increasing ``key`` (ties: the lower index first),
    by a partition then a sort of those ``m``: ``O(V + m log m)`` instead of a full sort's ``O(V log V)``."""
    if m <= 0:
        return np.zeros((len(key), 0), dtype=np.int64)
    if m >= key.shape[1] or not PARTIAL_SORT:
        return np.argsort(key, axis=1, kind="stable")[:, :m]
    kth = np.partition(key, m - 1, axis=1)[:, m - 1 : m]
    below, tied = key < kth, key == kth
    need = m - below.sum(axis=1, keepdims=True)  # the lowest-index ties with the m-th key fill the rest
    chosen = below | (tied & (np.cumsum(tied, axis=1) <= need))
    part = np.nonzero(chosen)[1].reshape(len(key), m)  # in increasing index
    within = np.lexsort((part, np.take_along_axis(key, part, axis=1)), axis=1)
    return np.take_along_axis(part, within, axis=1)


def _sorted_prefix_keep(key: np.ndarray, length_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Keep, per row, the first ``length_of(order, rows)`` words in increasing ``key``; ``order`` holds the rows
    ``rows``' words in that order, possibly only their leading :data:`CANDIDATES`.

    A row is settled from its leading candidates when its kept prefix ends before the last candidate, at a key
    strictly below the last candidate's (then every word of the full order up to the cut is a candidate, in the
    same order); the other rows are sorted whole. The result is exactly a full sort's, and much faster when the
    kept sets are small (tens of words of a vocabulary of thousands)."""
    n, vocab = key.shape
    rows = np.arange(n)
    order = leading(key, CANDIDATES if PARTIAL_SORT else vocab)
    length = length_of(order, rows)
    keep = np.zeros(key.shape, dtype=bool)
    if order.shape[1] < vocab:
        last_key = np.take_along_axis(key, order[:, -1:], axis=1)[:, 0]
        cut = np.take_along_axis(order, np.clip(length - 1, 0, order.shape[1] - 1)[:, None], axis=1)
        cut_key = np.take_along_axis(key, cut, axis=1)[:, 0]
        unsettled = (length >= order.shape[1]) | ~(cut_key < last_key)
        if unsettled.any():
            full = np.argsort(key[unsettled], axis=1, kind="stable")
            sub = np.zeros((len(full), vocab), dtype=bool)
            taken = np.arange(vocab)[None, :] < length_of(full, rows[unsettled])[:, None]
            np.put_along_axis(sub, full, taken, axis=1)
            keep[unsettled] = sub
        order, length, rows = order[~unsettled], length[~unsettled], rows[~unsettled]
    sub = np.zeros((len(rows), vocab), dtype=bool)
    np.put_along_axis(sub, order, np.arange(order.shape[1])[None, :] < length[:, None], axis=1)
    keep[rows] = sub
    return keep


def apply_temperature(p: np.ndarray, temperature: float) -> np.ndarray:
    """``p_j^(1/T) / sum_i p_i^(1/T)`` row by row (``softmax(logits / T)``)."""
    with np.errstate(divide="ignore"):
        scaled = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)) / temperature, -np.inf)
    out = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def keep_top_k(p: np.ndarray, k: int) -> np.ndarray:
    """Keep ``p_j >= `` the row's ``k``-th largest ``p`` (ties with it kept)."""
    k = min(k, p.shape[1])
    kth = np.partition(p, p.shape[1] - k, axis=1)[:, p.shape[1] - k][:, None]
    return _renormalise(p, p >= kth)


def keep_top_p(p: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest most-likely set whose mass reaches ``top_p`` (a word stays iff the mass before it is
    ``< top_p``)."""
    def length(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
        sorted_p = np.take_along_axis(p[rows], order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p
        return (before < top_p - _MASS_TOLERANCE).sum(axis=1)

    return _renormalise(p, _sorted_prefix_keep(-p, length))


def keep_min_p(p: np.ndarray, min_p: float) -> np.ndarray:
    """Keep ``p_j >= min_p * max_i p_i``."""
    return _renormalise(p, p >= min_p * p.max(axis=1, keepdims=True))


def keep_typical(p: np.ndarray, mass: float) -> np.ndarray:
    """Keep the words closest in surprisal to the entropy, ``|-ln p_j - H(p)|``, until their mass reaches
    ``mass`` (every word as close as the last one taken is kept). The word always kept is the most *typical* one
    (``transformers``' ``min_tokens_to_keep`` counts in this order), which may leave out the most likely word."""
    with np.errstate(divide="ignore"):
        distance = np.where(p > 0, np.abs(-np.log(np.where(p > 0, p, 1.0)) - entropy(p)[:, None]), np.inf)

    def length(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(np.take_along_axis(p[rows], order, axis=1), axis=1)
        return np.minimum((cumulative < mass - _MASS_TOLERANCE).sum(axis=1), p.shape[1] - 1) + 1

    first = _sorted_prefix_keep(distance, length)
    threshold = np.where(first, distance, -np.inf).max(axis=1, keepdims=True)  # ties with the last one stay
    return _renormalise(p, distance <= threshold, keep_most_likely=False)


def keep_above(p: np.ndarray, cutoff: float | np.ndarray) -> np.ndarray:
    """Keep ``p_j >= cutoff`` (a number, or one per row)."""
    return _renormalise(p, p >= np.reshape(cutoff, (-1, 1)) if np.ndim(cutoff) else p >= cutoff)


def keep_eta(p: np.ndarray, epsilon: float) -> np.ndarray:
    """Keep ``p_j >= min(ε, sqrt(ε) exp(-H(p)))`` (the row's own entropy)."""
    return keep_above(p, np.minimum(epsilon, math.sqrt(epsilon) * np.exp(-entropy(p))))


def keep_top_h(p: np.ndarray, alpha: float) -> np.ndarray:
    """Top-H (module docstring): the longest most-likely prefix ``S_j`` with ``H(q_{S_j}) <= α H(p)``, cut at the
    first word that would break the bound.

    ``H(q_S) = -(1/σ) sum_{i in S} p_i ln p_i + ln σ`` with ``σ = sum_{i in S} p_i``, so one cumulative sum gives
    every prefix's entropy."""
    bound = alpha * entropy(p) + _MASS_TOLERANCE

    def length(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
        sorted_p = np.take_along_axis(p[rows], order, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(sorted_p > 0, -sorted_p * np.log(np.where(sorted_p > 0, sorted_p, 1.0)), 0.0)
            sigma = np.cumsum(sorted_p, axis=1)
            prefix_entropy = np.cumsum(terms, axis=1) / sigma + np.log(sigma)
        within = (prefix_entropy <= bound[rows, None]) & (sorted_p > 0)
        within[:, 0] = True
        return np.argmin(np.concatenate([within, np.zeros((len(rows), 1), dtype=bool)], axis=1), axis=1)

    return _renormalise(p, _sorted_prefix_keep(-p, length))


def filter_batch(p: np.ndarray, **params: Any) -> np.ndarray:
    """Every row of ``p`` with padding removed, then the active transforms in turn (module docstring); the
    parameters are those of ``strategy='sample'`` (:func:`check_decoder`)."""
    params = check_decoder("sample", **params)
    p = np.array(p, dtype=np.float64, ndmin=2)
    if p.shape[1] < 2 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("p must be distributions over the padding index 0 and at least one word "
                         "(finite, non-negative)")
    p[:, 0] = 0.0
    total = p.sum(axis=1, keepdims=True)
    if not np.all(total > 0):
        raise ValueError("a row of p has no mass outside the padding index 0")
    p = p / total
    if params["temperature"] != 1.0:
        p = apply_temperature(p, params["temperature"])
    steps = ((params["top_k"] > 0, keep_top_k, params["top_k"]),
             (params["top_p"] < 1.0, keep_top_p, params["top_p"]),
             (params["min_p"] > 0.0, keep_min_p, params["min_p"]),
             (params["typical_p"] < 1.0, keep_typical, params["typical_p"]),
             (params["epsilon_cutoff"] > 0.0, keep_above, params["epsilon_cutoff"]),
             (params["eta_cutoff"] > 0.0, keep_eta, params["eta_cutoff"]),
             (params["top_h"] < 1.0, keep_top_h, params["top_h"]))
    for active, transform, value in steps:
        if active:
            p = transform(p, value)
    return p


def sample_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``p`` drawn from that row (inverse CDF, one uniform number per row)."""
    cumulative = np.cumsum(p, axis=1)
    draws = rng.random(len(p)) * cumulative[:, -1]
    return np.minimum((cumulative <= draws[:, None]).sum(axis=1), p.shape[1] - 1)


def mirostat_step(p: np.ndarray, mu: np.ndarray, tau: float, eta: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Mirostat 2.0 step for each row (module docstring): ``(chosen words, new mu, observed surprise)``."""
    with np.errstate(divide="ignore"):
        surprise = np.where(p > 0, -np.log2(np.where(p > 0, p, 1.0)), np.inf)
    kept = _renormalise(p, surprise <= mu[:, None])
    chosen = sample_rows(kept, rng)
    observed = -np.log2(kept[np.arange(len(p)), chosen])
    return chosen, mu - eta * (observed - tau), observed
