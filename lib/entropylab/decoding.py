"""Continuing a seed text word by word (paper §4.4): greedy, as the paper does, and seeded sampling.

Greedy picks ``argmax_j o_j`` at each step (the paper's "highest probability outputs"). Sampling draws from
the normalised distribution ``p`` of one output row (softmax of the logits, or ``c / sum c`` for the linear
head, see :func:`normalise`) after the truncation transforms below. Index 0 (padding) never has mass.

The transforms take the parameter names of Hugging Face ``transformers``' ``generate()`` and combine as its
logits processors do: each one is applied to the *renormalised result of the previous one*, in the order
``GenerationMixin._get_logits_processor`` (``transformers/generation/utils.py``) appends them::

    temperature -> top_k -> top_p -> min_p -> typical_p -> epsilon_cutoff -> eta_cutoff

(:data:`SAMPLING_PARAMETERS`). Below ``p`` is the distribution a transform receives, ``H(p) = -sum_j p_j ln p_j``
its entropy in nats, and a transform that "keeps" a set ``S`` returns ``p_j / sum_{i in S} p_i`` on ``S`` and 0
elsewhere. Each one always keeps at least the most likely word (``transformers``' ``min_tokens_to_keep=1``), so
the result is never empty. A parameter at its default value is off.

* ``temperature = T > 0`` (default 1): ``p_j <- p_j^(1/T) / sum_i p_i^(1/T)``, i.e. ``softmax(logits / T)``.
  Ackley, Hinton & Sejnowski (1985), "A Learning Algorithm for Boltzmann Machines";
  ``TemperatureLogitsWarper``.
* ``top_k = k >= 0`` (default 0 = off): keep the words with ``p_j >= p_(k)``, the ``k``-th largest
  probability (words tied with it are kept too). Fan, Lewis & Dauphin (2018), "Hierarchical Neural Story
  Generation"; ``TopKLogitsWarper``.
* ``top_p in (0, 1]`` (nucleus, default 1 = off): sort the words by decreasing ``p``; keep word ``j`` iff the
  mass of the words before it is ``< top_p``, i.e. the smallest most-likely set whose mass *reaches*
  ``top_p`` (mass exactly ``top_p`` is enough). Holtzman, Buys, Du, Forbes & Choi (2020), "The Curious Case of
  Neural Text Degeneration"; ``TopPLogitsWarper`` (which removes a word iff the mass of the words no more likely
  than it is ``<= 1 - top_p``: the same rule counted from the tail).
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

Ties in the sort of ``top_p`` go to the lower word index (it counts as the more likely). The "reaches" tests of
``top_p`` and ``typical_p`` allow a rounding error of ``1e-12``, so that a set whose mass is the threshold on
paper (``0.7 + 0.1`` for ``top_p=0.8``) is not lost to floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .objectives import EPSILON

if TYPE_CHECKING:
    from .data import Corpus

STRATEGIES = ("greedy", "sample")
#: The sampling parameters, in the order :func:`filter_distribution` applies them (``transformers``' order).
SAMPLING_PARAMETERS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")

#: Rounding allowance of the cumulative-mass tests of ``top_p`` and ``typical_p``.
_MASS_TOLERANCE = 1e-12


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


# -- parameters -----------------------------------------------------------------------------------------------

def _real(name: str, value: Any, allowed: str, ok) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not ok(number):  # NaN fails every comparison in ``ok``
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def check_sampling_parameters(**params: Any) -> dict[str, Any]:
    """The sampling parameters with their defaults filled in; one ``ValueError`` for the first bad one.

    Each message names the parameter, its allowed range and the value given.
    """
    unknown = sorted(set(params) - set(SAMPLING_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown sampling parameter(s) {', '.join(map(repr, unknown))}; "
                         f"use {', '.join(SAMPLING_PARAMETERS)}")
    checked: dict[str, Any] = {}
    checked["temperature"] = _real("temperature", params.get("temperature", 1.0),
                                   "> 0 (use strategy='greedy' for argmax)", lambda x: x > 0)
    top_k = params.get("top_k", 0)
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    checked["top_k"] = int(top_k)
    checked["top_p"] = _real("top_p", params.get("top_p", 1.0), "in (0, 1] (1 = off)", lambda x: 0 < x <= 1)
    checked["min_p"] = _real("min_p", params.get("min_p", 0.0), "in [0, 1] (0 = off)", lambda x: 0 <= x <= 1)
    checked["typical_p"] = _real("typical_p", params.get("typical_p", 1.0), "in (0, 1] (1 = off)",
                                 lambda x: 0 < x <= 1)
    for name in ("epsilon_cutoff", "eta_cutoff"):
        checked[name] = _real(name, params.get(name, 0.0), "in [0, 1) (0 = off)", lambda x: 0 <= x < 1)
    return checked


def filter_distribution(p: np.ndarray, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                        typical_p: float = 1.0, min_p: float = 0.0, epsilon_cutoff: float = 0.0,
                        eta_cutoff: float = 0.0, **unknown: Any) -> np.ndarray:
    """The distribution to sample from: ``p`` with padding (index 0) removed, then the transforms in turn.

    The order is ``transformers``' (``temperature``, ``top_k``, ``top_p``, ``min_p``, ``typical_p``,
    ``epsilon_cutoff``, ``eta_cutoff``) and each transform sees the renormalised output of the one before:

    * ``temperature``: ``p_j^(1/T) / sum_i p_i^(1/T)`` (Ackley et al. 1985; ``TemperatureLogitsWarper``);
    * ``top_k``: keep ``p_j >= `` the ``k``-th largest ``p`` (Fan et al. 2018; ``TopKLogitsWarper``);
    * ``top_p``: keep the smallest most-likely set with mass ``>= top_p`` (Holtzman et al. 2020;
      ``TopPLogitsWarper``);
    * ``min_p``: keep ``p_j >= min_p * max p`` (Nguyen et al. 2024; ``MinPLogitsWarper``);
    * ``typical_p``: keep the words closest in surprisal ``-ln p_j`` to ``H(p)`` until their mass reaches
      ``typical_p``, with ties (Meister et al. 2023; ``TypicalLogitsWarper``);
    * ``epsilon_cutoff``: keep ``p_j >= epsilon_cutoff`` (Hewitt et al. 2022; ``EpsilonLogitsWarper``);
    * ``eta_cutoff = ε``: keep ``p_j >= min(ε, sqrt(ε) exp(-H(p)))`` (Hewitt et al. 2022; ``EtaLogitsWarper``).

    Every transform keeps at least one word (the most likely; for ``typical_p`` the most typical), so the result
    always sums to 1. The module docstring has the exact rules; :func:`entropylab.decoders.filter_batch` applies
    them to a whole batch (this is its one-row view). Raises ``ValueError`` for a parameter out of range or an
    unknown one.
    """
    from .decoders import filter_batch  # the batched transforms; this is their one-row view

    params = check_sampling_parameters(temperature=temperature, top_k=top_k, top_p=top_p, typical_p=typical_p,
                                       min_p=min_p, epsilon_cutoff=epsilon_cutoff, eta_cutoff=eta_cutoff,
                                       **unknown)
    p = np.array(p, dtype=np.float64).ravel()
    if p.size < 2 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("p must be a distribution over the padding index 0 and at least one word "
                         "(finite, non-negative)")
    if not p[1:].sum() > 0:
        raise ValueError("p has no mass outside the padding index 0")
    return filter_batch(p[None, :], **params)[0]


def continue_text(model: Any, corpus: Corpus, seed_text: str, n_words: int = 10, *, head: str = "linear",
                  strategy: str = "greedy", seed: int | None = None, title_case: bool = True,
                  **params: Any) -> Continuation:
    """The next ``n_words`` words after ``seed_text``; unknown seed words are skipped with a warning.

    ``params`` are the sampling parameters of :func:`filter_distribution` (used with ``strategy='sample'``);
    they are checked before the first step whatever the strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    check_sampling_parameters(**params)
    rng = np.random.default_rng(seed)
    if not str(seed_text).strip():
        raise ValueError("the seed text is empty; give at least one word to continue (e.g. 'New York')")
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
