"""Continuing prefixes word by word with any registered strategy: one batched path, its one-text view, and greedy.

:func:`continue_prefixes` continues a batch of ``B`` prefixes with one model call per step for the whole batch
(``B x K`` for a beam search). Each prefix is a row of the model's padded input window; after each step the chosen
word is appended and the window slides left by one (the model only ever sees its fixed window). At each step the
strategy (:mod:`.registry`) gets the model's raw outputs ``o`` and its distribution ``p`` of every row:
``p = softmax(z)`` (softmax head) or ``p_j = c_j / sum_i c_i`` with ``c = clip(o, eps, 1)`` (linear head),
padding (index 0) removed and the row renormalised, so padding never has mass.

**Greedy** (paper §4.4, "the highest probability outputs") takes ``argmax_{j >= 1} o_j``, the argmax of the
model's *raw* outputs over the words (padding excluded). For the softmax head this is the argmax of ``p``; for the
linear head it is not always: clipping maps every output ``>= 1`` to 1 and every output ``<= eps`` to ``eps``, so
``p`` ties where the outputs do not (a collapsed model's ``p`` is uniform), and the raw outputs decide.

Besides the words, a continuation records each word's **surprisal** under the model's unfiltered ``p``,
``-ln p(w_i | context)`` in nats; its **probability** under the model's whole normalised output row,
``c_w / sum_j c_j`` over every index ``j`` including padding (softmax: ``exp(z_w) / sum_j exp(z_j)``), the paper's
§4.4 ``mean_probability``; given the exact law ``q`` of a synthetic source, each word's probability
``q(w_i | context)`` under the source; and, for Mirostat, the observed surprise in bits.

:func:`continue_text` is the one-row view: the next words after a seed text, by any decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..objectives import EPSILON
from . import forward
from .registry import Step, Stepper, check_decoder, get_strategy, register_strategy

if TYPE_CHECKING:
    from ..data import Corpus

#: The decoder that takes the argmax of the raw outputs (the paper's).
GREEDY = "greedy"


@dataclass
class Continuations:
    """``words`` (``B x n`` word ids), their ``surprisal`` under the model (nats), the source's probability of
    each (``true_probability``, synthetic corpus only), for Mirostat the observed surprise in bits, and each word's
    ``probability`` under the model's whole normalised output row (module docstring)."""

    words: np.ndarray
    surprisal: np.ndarray
    true_probability: np.ndarray | None = None
    observed_surprise: np.ndarray | None = None
    probability: np.ndarray | None = None


@dataclass
class Continuation:
    """The words after one seed text and the probability of each (:func:`continue_text`)."""

    seed_text: str
    words: list[str]
    probabilities: list[float]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def as_paper(self) -> str:
        """The paper's notation: ``[Word Word ...]``."""
        return "[" + " ".join(self.words) + "]"


@register_strategy(GREEDY, deterministic=True)
def greedy(params: dict[str, Any], rows: int) -> Stepper:
    """Each row's ``argmax_{j >= 1} o_j`` (module docstring)."""
    return lambda s: (greedy_words(s.outputs), None)


def greedy_words(outputs: np.ndarray) -> np.ndarray:
    """``argmax_{j >= 1} o_j`` of every row of the raw outputs (padding, index 0, is never a word)."""
    return np.argmax(outputs[:, 1:], axis=1) + 1


# -- the model's distributions -----------------------------------------------------------------------------------

def output_weights(outputs: np.ndarray, head: str) -> np.ndarray:
    """The unnormalised ``p`` of every row: ``exp(z - max z)`` (softmax head) or ``clip(o, eps, 1)`` (linear)."""
    if head == "softmax":
        return np.exp(outputs - outputs.max(axis=-1, keepdims=True))
    return np.clip(outputs, EPSILON, 1.0)


def normalise(outputs: np.ndarray, head: str) -> np.ndarray:
    """The whole normalised output row, padding included: softmax, or ``c / sum c`` with ``c = clip(o, eps, 1)``."""
    weights = output_weights(np.asarray(outputs, dtype=np.float64), head)
    return weights / weights.sum()


def distributions(outputs: np.ndarray, head: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p, weights, whole)`` of every row of float64 ``outputs``: ``p`` with padding removed and renormalised,
    the unnormalised ``weights`` (padding zeroed) and each row's whole mass ``whole`` (padding included)."""
    weights = output_weights(outputs, head)
    whole = weights.sum(axis=1)
    weights[:, 0] = 0.0
    return weights / weights.sum(axis=1, keepdims=True), weights, whole


def model_distributions(model: Any, window: np.ndarray, head: str) -> np.ndarray:
    """``p`` of every row of ``window`` (one model call), padding removed, rows renormalised (float64)."""
    return distributions(forward.outputs(model, window), head)[0]


# -- continuing ----------------------------------------------------------------------------------------------------

def _slide(window: np.ndarray, words: np.ndarray) -> np.ndarray:
    return np.concatenate([window[:, 1:], words[:, None].astype(window.dtype)], axis=1)


def continue_prefixes(model: Any, contexts: np.ndarray, n_words: int, *, head: str, strategy: str = GREEDY,
                      seed: int | None = 0, true_next: Callable[[np.ndarray], np.ndarray] | None = None,
                      **params: Any) -> Continuations:
    """The next ``n_words`` words of every row of ``contexts`` by the registered ``strategy`` with its ``params``
    (``greedy``; ``sample`` with the transforms of :mod:`.transforms`; ``mirostat`` with ``tau``/``eta``; ``beam``
    with ``num_beams``; any other registered one); sampling draws from ``numpy.random.default_rng(seed)``, so a
    seed gives the same words. ``true_next(window)`` is a synthetic source's law of the next word."""
    chosen = get_strategy(strategy)
    params = check_decoder(strategy, **params)
    if isinstance(n_words, bool) or not isinstance(n_words, int) or n_words < 1:
        raise ValueError(f"n_words must be an integer >= 1, got {n_words!r}")
    window = np.array(contexts, dtype=np.int32, ndmin=2, copy=True)
    if chosen.search is not None:
        return chosen.search(model, window, n_words, head=head, params=params, true_next=true_next)
    assert chosen.start is not None
    step = chosen.start(params, len(window))
    rng = np.random.default_rng(seed)
    rows = np.arange(len(window))
    words = np.zeros((len(window), n_words), dtype=np.int64)
    surprisal = np.zeros((len(window), n_words))
    probability = np.zeros((len(window), n_words))
    true_probability = None if true_next is None else np.zeros((len(window), n_words))
    observed: np.ndarray | None = None
    for column in range(n_words):
        outputs = forward.outputs(model, window)
        p, weights, whole = distributions(outputs, head)
        picked, seen = step(Step(outputs, p, rng, window))
        if seen is not None:
            observed = np.zeros((len(window), n_words)) if observed is None else observed
            observed[:, column] = seen
        surprisal[:, column] = -np.log(p[rows, picked])
        probability[:, column] = weights[rows, picked] / whole
        if true_probability is not None:
            true_probability[:, column] = np.asarray(true_next(window))[rows, picked]
        words[:, column] = picked
        window = _slide(window, picked)
    return Continuations(words, surprisal, true_probability, observed, probability)


def continue_text(model: Any, corpus: Corpus, seed_text: str, n_words: int = 10, *, head: str = "linear",
                  strategy: str = GREEDY, seed: int | None = None, title_case: bool = True,
                  **params: Any) -> Continuation:
    """The next ``n_words`` words after ``seed_text`` by ``strategy`` and its ``params`` (as
    :func:`continue_prefixes`, of which this is the one-row view), with each word's probability under the model's
    whole normalised output row; unknown seed words are skipped with a warning. The parameters are checked first."""
    check_decoder(strategy, **params)
    if not str(seed_text).strip():
        raise ValueError("the seed text is empty; give at least one word to continue (e.g. 'New York')")
    result = continue_prefixes(model, corpus.pad(corpus.encode(seed_text)), n_words, head=head, strategy=strategy,
                               seed=seed, **params)
    words = [corpus.index_word.get(int(i), "") for i in result.words[0]]
    assert result.probability is not None
    return Continuation(seed_text, [w.title() if title_case else w for w in words], result.probability[0].tolist())
