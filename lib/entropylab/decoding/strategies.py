"""The decoding strategies beside greedy (:mod:`.generate`) and sampling (:mod:`.transforms`): Mirostat 2.0 and
beam search. (Top-H only truncates ``p`` and composes with the other truncations, so it is a transform:
:func:`entropylab.decoding.transforms.keep_top_h`.)

* Mirostat 2.0 (Basu, Ramachandran, Keskar & Varshney 2021, "Mirostat: A Neural Text Decoding Algorithm that
  Directly Controls Perplexity", §4 and Alg. 2), per sequence, surprises in bits: ``mu_0 = 2 τ``; at each step keep
  the words with surprise ``-log2 p_j <= mu``, or, when there is none, the one most likely word (of a tie at the
  top, the lower index: one word, never the whole tie), sample ``w`` from the renormalised kept set ``q``, observe
  ``s = -log2 q_w`` and update ``mu <- mu - η (s - τ)``; the observed surprise is thus steered towards the target
  ``τ`` (``tau > 0``, default 3 bits; ``eta > 0``, the learning rate, default 0.1). This is the reference
  implementation's rule (llama.cpp, ``llama_sampler_mirostat_v2_apply`` in ``src/llama-sampling.cpp``: sort by
  decreasing ``p``, cut at the first word whose surprise exceeds ``mu``, keep one word if that leaves none, observe
  the surprise under the renormalised kept set): four tied words of 2 bits and ``mu = 1`` keep one word, ``s = 0``.
* Beam search (``num_beams = K``, an integer >= 1, default 4): keep, per prefix, the ``K`` continuations of highest
  total log-probability ``sum_i ln p(w_i | context)``, extending each by every word and keeping the ``K`` best each
  step (no length normalisation: every continuation has the same length); the result is the best one. Ties go to
  the lower beam, then the lower word. All prefixes' beams share one model call per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import forward
from .generate import Continuations, distributions
from .registry import Parameter, Slider, Step, Stepper, register_strategy
from .transforms import leading, renormalise, sample_rows

TAU = Parameter("tau", 3.0, "> 0 (target surprise in bits)", lambda x: x > 0)
ETA = Parameter("eta", 0.1, "> 0 (learning rate)", lambda x: x > 0)
NUM_BEAMS = Parameter("num_beams", 4, "an integer >= 1", lambda k: k >= 1, integer=True)


def mirostat_step(p: np.ndarray, mu: np.ndarray, tau: float, eta: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Mirostat 2.0 step for each row (module docstring): ``(chosen words, new mu, observed surprise)``."""
    with np.errstate(divide="ignore"):
        surprise = np.where(p > 0, -np.log2(np.where(p > 0, p, 1.0)), np.inf)
    within = surprise <= mu[:, None]
    none = np.flatnonzero(~within.any(axis=1))
    within[none, np.argmax(p[none], axis=1)] = True  # the most likely word alone (lower index of a tie)
    kept = renormalise(p, within, keep_most_likely=False)
    chosen = sample_rows(kept, rng)
    observed = -np.log2(kept[np.arange(len(p)), chosen])
    return chosen, mu - eta * (observed - tau), observed


@register_strategy("mirostat", parameters=(TAU, ETA), slider=Slider(0.5, 10.0, 0.5, 3.0))
def mirostat(params: dict[str, Any], rows: int) -> Stepper:
    """Mirostat 2.0 with ``mu_0 = 2 τ`` for every row; each step records the observed surprise."""
    mu = np.full(rows, 2.0 * params["tau"])

    def step(s: Step) -> tuple[np.ndarray, np.ndarray]:
        nonlocal mu
        chosen, mu, observed = mirostat_step(s.p, mu, params["tau"], params["eta"], s.rng)
        return chosen, observed

    return step


@register_strategy("beam", parameters=(NUM_BEAMS,), slider=Slider(1, 10, 1, 4), deterministic=True, search=True)
def beam_search(model: Any, window: np.ndarray, n_words: int, *, head: str, params: dict[str, Any],
                true_next: Callable[[np.ndarray], np.ndarray] | None) -> Continuations:
    """Beam search (module docstring): per prefix the ``num_beams`` best partial continuations by total
    log-probability, all prefixes' beams in one model call per step."""
    beams = params["num_beams"]
    n = len(window)
    windows = window[:, None, :]  # n x k x L, k grows to `beams`
    scores = np.zeros((n, 1))
    history = np.zeros((n, 1, 0), dtype=np.int64)
    logs = np.zeros((n, 1, 0))
    truths = np.zeros((n, 1, 0))
    whole_p = np.zeros((n, 1, 0))
    take = np.arange(n)[:, None]
    for _ in range(n_words):
        k = windows.shape[1]
        flat = windows.reshape(n * k, -1)
        p, weights, whole = distributions(forward.outputs(model, flat), head)
        with np.errstate(divide="ignore"):
            log_p = np.log(p).reshape(n, k, -1)
        vocab = log_p.shape[2]
        total = (scores[:, :, None] + log_p).reshape(n, k * vocab)
        width = min(beams, int(np.isfinite(total).sum(axis=1).min()))
        best = leading(-total, width)  # ties: the lower beam, then the lower word
        parent, word = best // vocab, best % vocab
        scores = np.take_along_axis(total, best, axis=1)
        step_log = log_p[take, parent, word]
        step_whole = (weights.reshape(n, k, -1)[take, parent, word] / whole.reshape(n, k)[take, parent])
        if true_next is not None:
            q = np.asarray(true_next(flat)).reshape(n, k, -1)[take, parent, word]
            truths = np.concatenate([truths[take, parent], q[:, :, None]], axis=2)
        history = np.concatenate([history[take, parent], word[:, :, None]], axis=2)
        logs = np.concatenate([logs[take, parent], step_log[:, :, None]], axis=2)
        whole_p = np.concatenate([whole_p[take, parent], step_whole[:, :, None]], axis=2)
        windows = np.concatenate([windows[take, parent][:, :, 1:], word[:, :, None].astype(window.dtype)], axis=2)
    top = np.argmax(scores, axis=1)
    rows = np.arange(n)
    return Continuations(history[rows, top], -logs[rows, top], truths[rows, top] if true_next is not None else None,
                         None, whole_p[rows, top])
