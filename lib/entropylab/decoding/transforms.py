"""The sampling transforms on a ``B x V`` batch of distributions, and the ``sample`` strategy that draws from them.

Sampling draws from the model's distribution ``p`` of each row (softmax of the logits, or ``c / sum c`` for the
linear head: :mod:`.generate`) after the transforms below. Index 0 (padding) never has mass. A transform is a pure
function of a batch of distributions that returns the renormalised batch. The transforms take the parameter names
of Hugging Face ``transformers``' ``generate()`` and combine as its logits processors do: each one is applied to
the *renormalised result of the previous one*, in the order ``GenerationMixin._get_logits_processor``
(``transformers/generation/utils.py``) appends them, Top-H right after temperature::

    temperature -> top_h -> top_k -> top_p -> min_p -> typical_p -> epsilon_cutoff -> eta_cutoff

(:data:`SAMPLING_PARAMETERS`; a transform registered later applies after these). Below ``p`` is the distribution a
transform receives, ``H(p) = -sum_j p_j ln p_j`` its entropy in nats, and a transform that "keeps" a set ``S``
returns ``p_j / sum_{i in S} p_i`` on ``S`` and 0 elsewhere. A parameter at its default value is off. No result is
ever empty, and the word kept when nothing else is follows ``transformers``' ``min_tokens_to_keep=1``:

* ``top_k``, ``min_p``, ``epsilon_cutoff`` and ``eta_cutoff`` never remove a word tied with the row's most likely
  one (``transformers`` removes only words *below* a threshold that the most likely word reaches), so a tie at
  the top keeps every tied word;
* ``top_p`` and Top-H keep a prefix of the sorted words, at least its first: exactly **one** word of a tie at the
  top when the bound allows no more (``p = (1/4, 1/4, 1/4, 1/4)`` with ``top_p = 0.5`` keeps two words, not four);
* ``typical_p`` keeps at least the most *typical* word.

* ``temperature = T > 0`` (default 1): ``p_j <- p_j^(1/T) / sum_i p_i^(1/T)``, i.e. ``softmax(logits / T)``.
  Ackley, Hinton & Sejnowski (1985), "A Learning Algorithm for Boltzmann Machines";
  ``TemperatureLogitsWarper``.
* ``top_h = α in (0, 1]`` (Top-H, default 1 = off; Baghaei Potraghloo et al. 2025, "Top-H Decoding: Adapting the
  Creativity and Coherence with Bounded Entropy in Text Generation"), as the authors' code
  (``TopH_LogitsProcessor``) and ``transformers``' ``TopHLogitsWarper`` compute it: take the ``N = min(100, V)``
  most likely words ``c_1 .. c_N`` (the candidates), renormalise over them, ``q_i = p_{c_i} / sum_{l <= N}
  p_{c_l}``, and keep ``c_1 .. c_k`` for the largest ``k >= 1`` with

      sum_{i <= k} -q_i ln q_i  <=  α H(q),   H(q) = sum_{i <= N} -q_i ln q_i,

  i.e. words are added in decreasing ``p`` while the running sum of the entropy terms stays within ``α`` times the
  candidates' entropy. The most likely word is always kept, alone when its own term already exceeds the bound
  (``p = (0.9, 0.06, 0.04)``, ``α = 0.6``: ``H = 0.392``, the bound is 0.235, the first term 0.095 and the first
  two 0.264, so one word). Words outside the candidates are never kept. (The authors' code sums the terms of
  ``p`` itself over the candidates on both sides; it is the same rule whenever the candidates hold all the mass,
  ``V <= 100``.) At ``α = 1`` ``transformers`` would keep all 100 candidates; here 1 switches Top-H off. It is a
  transform (it only truncates ``p`` and composes with the others), not a strategy of its own.
* ``top_k = k >= 0`` (default 0 = off): keep the words with ``p_j >= p_(k)``, the ``k``-th largest
  probability (words tied with it are kept too). Fan, Lewis & Dauphin (2018), "Hierarchical Neural Story
  Generation"; ``TopKLogitsWarper``.
* ``top_p in (0, 1]`` (nucleus, default 1 = off): sort the words by decreasing ``p``; keep word ``j`` iff the
  mass of the words before it is ``< top_p``, i.e. the smallest most-likely set whose mass *reaches*
  ``top_p`` (mass exactly ``top_p`` is enough), at least one word. Holtzman, Buys, Du, Forbes & Choi (2020), "The
  Curious Case of Neural Text Degeneration"; ``TopPLogitsWarper`` (which removes a word iff the mass of the words
  no more likely than it is ``<= 1 - top_p``: the same rule counted from the tail).
* ``min_p in [0, 1]`` (default 0 = off): keep the words with ``p_j >= min_p * max_i p_i``. Nguyen et al. (2024),
  "Turning Up the Heat: Min-p Sampling for Creative and Coherent LLM Outputs"; ``MinPLogitsWarper``.
* ``typical_p in (0, 1]`` (locally typical sampling, default 1 = off): sort the words by
  ``d_j = |-ln p_j - H(p)|`` (surprisal's distance from the entropy), find the first word at which the
  cumulative mass reaches ``typical_p``, and keep every word with ``d_j`` at most that word's. Meister, Pimentel,
  Wiher & Cotterell (2023), "Locally Typical Sampling"; ``TypicalLogitsWarper``.
* ``epsilon_cutoff in [0, 1)`` (default 0 = off): keep the words with ``p_j >= epsilon_cutoff``. Hewitt, Manning
  & Liang (2022), "Truncation Sampling as Language Model Desmoothing"; ``EpsilonLogitsWarper``.
* ``eta_cutoff = ε in [0, 1)`` (default 0 = off): keep the words with ``p_j >= η``,
  ``η = min(ε, sqrt(ε) * exp(-H(p)))``. Hewitt, Manning & Liang (2022), as above; ``EtaLogitsWarper``.

Ties in the sort of ``top_p`` and Top-H go to the lower word index (it counts as the more likely; a stable sort by
decreasing ``p``, as the greedy argmax picks the lower index too). The references count ties the same way but
leave their order to an unstable sort (``torch.sort``, ``torch.topk``), so which of several tied words is kept is
the project's choice, how many is theirs. The "reaches" tests of ``top_p`` and ``typical_p`` (and Top-H's bound)
allow a rounding error of ``1e-12``, so that a set whose mass is the threshold on paper (``0.7 + 0.1`` for
``top_p=0.8``) is not lost to floating point.

The ``sample`` strategy draws one word per row from the transformed ``p`` (inverse CDF, one uniform number per row:
:func:`sample_rows`); with every transform off it draws from ``p`` as it is (ancestral sampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .registry import (
    Parameter,
    Slider,
    Step,
    Stepper,
    check_decoder,
    register_strategy,
    register_transform,
    registered_transforms,
)

#: The parameters of ``transformers``' logits processors, in the order it (and :func:`filter_batch`) applies them.
SAMPLING_PARAMETERS = ("temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")
#: How many of each row's most likely words Top-H looks at (``transformers``' ``TopHLogitsWarper.top_n``, the
#: authors' ``top_n``).
TOP_H_CANDIDATES = 100
#: Rounding allowance of the cumulative-mass tests of ``top_p``, ``typical_p`` and Top-H.
MASS_TOLERANCE = 1e-12
#: How many of each row's words (most likely, or most typical) ``top_p`` and ``typical_p`` sort first; rows whose
#: kept set does not end well inside them are sorted whole (:func:`_sorted_prefix_keep`).
CANDIDATES = 256
#: False: every ordering is a full stable sort (what :func:`leading` replaces; ``python -m entropylab bench
#: generation --decoders`` times both).
PARTIAL_SORT = True


@register_strategy("sample", transforms=True, label="sampling", selectable=False)
def sample(params: dict[str, Any], rows: int) -> Stepper:
    """Draw each row's word from ``p`` after the active transforms (:func:`filter_batch`), or from ``p`` itself."""
    active = any(t.active(params[t.parameter.name]) for t in registered_transforms())

    def step(s: Step) -> tuple[np.ndarray, None]:
        return sample_rows(filter_batch(s.p, **params) if active else s.p, s.rng), None

    return step


# -- helpers on a batch ----------------------------------------------------------------------------------------

def entropy(p: np.ndarray) -> np.ndarray:
    """``H(p)`` of each row, in nats."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)


def renormalise(p: np.ndarray, keep: np.ndarray, keep_most_likely: bool = True) -> np.ndarray:
    """``p`` on the kept words of each row, renormalised. With ``keep_most_likely`` every word tied with the row's
    largest ``p`` is kept too (``top_k``, ``min_p``, the cutoffs: module docstring); a caller that passes
    ``False`` must keep at least one word of each row itself."""
    if keep_most_likely:
        keep = keep | (p >= p.max(axis=1, keepdims=True))
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


# -- the transforms, registered in the order they apply ------------------------------------------------------------

@register_transform(Parameter("temperature", 1.0, "> 0 (use strategy='greedy' for argmax)", lambda x: x > 0),
                    Slider(0.1, 3.0, 0.1, 1.0))
def apply_temperature(p: np.ndarray, temperature: float) -> np.ndarray:
    """``p_j^(1/T) / sum_i p_i^(1/T)`` row by row (``softmax(logits / T)``)."""
    with np.errstate(divide="ignore"):
        scaled = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)) / temperature, -np.inf)
    out = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


@register_transform(Parameter("top_h", 1.0, "in (0, 1] (1 = off)", lambda x: 0 < x <= 1), Slider(0.05, 1.0, 0.05, 0.4))
def keep_top_h(p: np.ndarray, alpha: float) -> np.ndarray:
    """Top-H as published (module docstring): of the :data:`TOP_H_CANDIDATES` most likely words, renormalised to
    ``q``, keep the longest prefix ``c_1 .. c_k`` (``k >= 1``) with ``sum_{i <= k} -q_i ln q_i <= α H(q)``."""
    order = leading(-p, min(TOP_H_CANDIDATES, p.shape[1]))  # ties: the lower index first
    top = np.take_along_axis(p, order, axis=1)
    q = top / top.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, -q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    bound = alpha * terms.sum(axis=1, keepdims=True) + MASS_TOLERANCE
    within = (np.cumsum(terms, axis=1) <= bound) & (q > 0)  # a prefix: the running sum only grows
    within[:, 0] = True
    keep = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(keep, order, within, axis=1)
    return renormalise(p, keep, keep_most_likely=False)


@register_transform(Parameter("top_k", 0, "an integer >= 0 (0 = off)", lambda k: k >= 0, integer=True),
                    Slider(1, 100, 1, 10))
def keep_top_k(p: np.ndarray, k: int) -> np.ndarray:
    """Keep ``p_j >= `` the row's ``k``-th largest ``p`` (ties with it kept)."""
    k = min(k, p.shape[1])
    kth = np.partition(p, p.shape[1] - k, axis=1)[:, p.shape[1] - k][:, None]
    return renormalise(p, p >= kth)


@register_transform(Parameter("top_p", 1.0, "in (0, 1] (1 = off)", lambda x: 0 < x <= 1), Slider(0.05, 1.0, 0.05, 0.9))
def keep_top_p(p: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest most-likely set whose mass reaches ``top_p`` (a word stays iff the mass before it is
    ``< top_p``), at least one word: of words tied at the cut, only as many as the rule counts (the lower index
    first)."""
    def length(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
        sorted_p = np.take_along_axis(p[rows], order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p
        return np.maximum((before < top_p - MASS_TOLERANCE).sum(axis=1), 1)

    return renormalise(p, _sorted_prefix_keep(-p, length), keep_most_likely=False)


@register_transform(Parameter("min_p", 0.0, "in [0, 1] (0 = off)", lambda x: 0 <= x <= 1), Slider(0.0, 0.5, 0.01, 0.1))
def keep_min_p(p: np.ndarray, min_p: float) -> np.ndarray:
    """Keep ``p_j >= min_p * max_i p_i``."""
    return renormalise(p, p >= min_p * p.max(axis=1, keepdims=True))


@register_transform(Parameter("typical_p", 1.0, "in (0, 1] (1 = off)", lambda x: 0 < x <= 1),
                    Slider(0.05, 1.0, 0.05, 0.9))
def keep_typical(p: np.ndarray, mass: float) -> np.ndarray:
    """Keep the words closest in surprisal to the entropy, ``|-ln p_j - H(p)|``, until their mass reaches
    ``mass`` (every word as close as the last one taken is kept). The word always kept is the most *typical* one
    (``transformers``' ``min_tokens_to_keep`` counts in this order), which may leave out the most likely word."""
    with np.errstate(divide="ignore"):
        distance = np.where(p > 0, np.abs(-np.log(np.where(p > 0, p, 1.0)) - entropy(p)[:, None]), np.inf)

    def length(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(np.take_along_axis(p[rows], order, axis=1), axis=1)
        return np.minimum((cumulative < mass - MASS_TOLERANCE).sum(axis=1), p.shape[1] - 1) + 1

    first = _sorted_prefix_keep(distance, length)
    threshold = np.where(first, distance, -np.inf).max(axis=1, keepdims=True)  # ties with the last one stay
    return renormalise(p, distance <= threshold, keep_most_likely=False)


@register_transform(Parameter("epsilon_cutoff", 0.0, "in [0, 1) (0 = off)", lambda x: 0 <= x < 1),
                    Slider(0.0, 0.02, 0.0005, 0.001))
def keep_above(p: np.ndarray, cutoff: float | np.ndarray) -> np.ndarray:
    """Keep ``p_j >= cutoff`` (a number, or one per row)."""
    return renormalise(p, p >= np.reshape(cutoff, (-1, 1)) if np.ndim(cutoff) else p >= cutoff)


@register_transform(Parameter("eta_cutoff", 0.0, "in [0, 1) (0 = off)", lambda x: 0 <= x < 1),
                    Slider(0.0, 0.02, 0.0005, 0.002))
def keep_eta(p: np.ndarray, epsilon: float) -> np.ndarray:
    """Keep ``p_j >= min(ε, sqrt(ε) exp(-H(p)))`` (the row's own entropy)."""
    return keep_above(p, np.minimum(epsilon, math.sqrt(epsilon) * np.exp(-entropy(p))))


# -- all of them -------------------------------------------------------------------------------------------------

def filter_batch(p: np.ndarray, **params: Any) -> np.ndarray:
    """Every row of ``p`` with padding removed, then the active transforms in turn (module docstring). The
    parameters are those of ``strategy='sample'`` (:func:`entropylab.decoding.check_decoder`); a bad or unknown
    one is a ``ValueError``."""
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
    for transform in registered_transforms():
        value = params[transform.parameter.name]
        if transform.active(value):
            p = transform.apply(p, value)
    return p


def filter_distribution(p: np.ndarray, **params: Any) -> np.ndarray:
    """The one-row view of :func:`filter_batch`: the distribution to sample from, ``p`` (one row) with padding
    removed, then the transforms in turn (``temperature``, ``top_h``, ``top_k``, ``top_p``, ``min_p``,
    ``typical_p``, ``epsilon_cutoff``, ``eta_cutoff``: the module docstring has each rule). The result always sums to
    1; a parameter out of range, an unknown one, or a ``p`` without mass outside padding is a ``ValueError``."""
    return filter_batch(np.asarray(p, dtype=np.float64).reshape(1, -1), **params)[0]


def sample_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``p`` drawn from that row (inverse CDF, one uniform number per row)."""
    cumulative = np.cumsum(p, axis=1)
    draws = rng.random(len(p)) * cumulative[:, -1]
    return np.minimum((cumulative <= draws[:, None]).sum(axis=1), p.shape[1] - 1)
