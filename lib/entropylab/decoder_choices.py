"""The decoders by name, each a strategy of :mod:`entropylab.decoders` with the one parameter that varies it
(named as ``transformers`` names it) and that parameter's range: the explorer's decoder selector and slider, and
the decoding study's grid (:mod:`entropylab.studies.decoding`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DecoderControl:
    """One choice of the decoder selector: its strategy, the parameter its slider sets and the slider's range."""

    name: str
    strategy: str
    parameter: str | None = None
    low: float = 0.0
    high: float = 1.0
    step: float = 0.05
    default: float = 0.0
    integer: bool = False

    def arguments(self, value: float | None) -> tuple[str, dict[str, Any]]:
        """``(strategy, parameters)`` for :func:`entropylab.continuation.continue_prefixes`."""
        if self.parameter is None:
            return self.strategy, {}
        value = self.default if value is None else value
        return self.strategy, {self.parameter: round(float(value)) if self.integer else float(value)}

    def describe(self, value: float | None) -> str:
        """``greedy``, ``top_p=0.9``, ``mirostat tau=3``: the decoder in words."""
        if self.parameter is None:
            return self.name
        strategy, params = self.arguments(value)
        prefix = "" if strategy == "sample" else f"{strategy} "
        return f"{prefix}{self.parameter}={params[self.parameter]:g}"


DECODERS: dict[str, DecoderControl] = {c.name: c for c in (
    DecoderControl("greedy", "greedy"),
    DecoderControl("temperature", "sample", "temperature", 0.1, 3.0, 0.1, 1.0),
    DecoderControl("top_k", "sample", "top_k", 1, 100, 1, 10, integer=True),
    DecoderControl("top_p", "sample", "top_p", 0.05, 1.0, 0.05, 0.9),
    DecoderControl("typical_p", "sample", "typical_p", 0.05, 1.0, 0.05, 0.9),
    DecoderControl("min_p", "sample", "min_p", 0.0, 0.5, 0.01, 0.1),
    DecoderControl("epsilon_cutoff", "sample", "epsilon_cutoff", 0.0, 0.02, 0.0005, 0.001),
    DecoderControl("eta_cutoff", "sample", "eta_cutoff", 0.0, 0.02, 0.0005, 0.002),
    DecoderControl("top_h", "sample", "top_h", 0.05, 1.0, 0.05, 0.4),
    DecoderControl("mirostat", "mirostat", "tau", 0.5, 10.0, 0.5, 3.0),
    DecoderControl("beam", "beam", "num_beams", 1, 10, 1, 4, integer=True),
)}


def get(name: str) -> DecoderControl:
    """The decoder choice ``name``; an unknown one is a ``ValueError`` listing the known ones."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")
    return DECODERS[name]
