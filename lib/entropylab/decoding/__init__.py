"""Decoding: the strategies, sampling transforms and decoder choices of :mod:`.registry`, and the one continuation
path of :mod:`.generate` (batched :func:`continue_prefixes`, its one-text view :func:`continue_text`, greedy).

* :mod:`.registry`: the decoders by name (strategy, parameter, range, slider, default, deterministic or not) and
  the one parameter check :func:`check_decoder`;
* :mod:`.generate`: the continuation loop, greedy, the model's distributions;
* :mod:`.transforms`: the sampling transforms on a batch (temperature, top_h, top_k, top_p, min_p, typical_p,
  epsilon_cutoff, eta_cutoff, in ``transformers``' order) and the ``sample`` strategy;
* :mod:`.strategies`: Mirostat 2.0 and beam search.

Importing the package imports every module in it (:func:`discover`), so a new decoder is one new file here that
registers itself with :func:`register_transform` or :func:`register_strategy`.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import registry
from .generate import (
    GREEDY,
    Continuation,
    Continuations,
    continue_prefixes,
    continue_text,
    greedy_words,
    model_distributions,
    normalise,
)
from .registry import (
    DECODERS,
    STRATEGIES,
    TRANSFORMS,
    Decoder,
    Parameter,
    Slider,
    Step,
    Strategy,
    Transform,
    check_decoder,
    deterministic_decoders,
    get_decoder,
    get_strategy,
    register_decoder,
    register_strategy,
    register_transform,
    registered_transforms,
    restoring,
    strategy_names,
    unregister,
)
from .strategies import beam_search, mirostat_step
from .transforms import SAMPLING_PARAMETERS, entropy, filter_batch, filter_distribution, sample_rows


def discover() -> list[str]:
    """Import every module of this package (each registers its decoders); returns their names."""
    names = []
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
        names.append(module.name)
    return names


discover()

__all__ = ["DECODERS", "GREEDY", "SAMPLING_PARAMETERS", "STRATEGIES", "TRANSFORMS", "Continuation", "Continuations",
           "Decoder", "Parameter", "Slider", "Step", "Strategy", "Transform", "beam_search", "check_decoder",
           "continue_prefixes", "continue_text", "deterministic_decoders", "discover", "entropy", "filter_batch",
           "filter_distribution", "get_decoder", "get_strategy", "greedy_words", "mirostat_step",
           "model_distributions", "normalise", "register_decoder", "register_strategy", "register_transform",
           "registered_transforms", "registry", "restoring", "sample_rows", "strategy_names", "unregister"]
