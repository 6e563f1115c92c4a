"""The decoders by name: every strategy, sampling transform and selectable decoder registers itself here.

Three kinds of entries, each added by a decorator in the module that implements it:

* a **strategy** (:func:`register_strategy`) turns the model's output rows into words. A *stepwise* strategy
  (greedy, sampling, Mirostat) is a function ``start(params, rows) -> step`` that returns the step function the
  generate loop (:func:`entropylab.decoding.generate.continue_prefixes`) calls once per word with a :class:`Step`
  (the raw outputs, the distributions ``p``, the random generator, the input window); ``step`` returns the chosen
  word of every row and, optionally, a per-row number to record (Mirostat's observed surprise), else ``None``.
  A *search* strategy (beam search) is a function ``search(model, window, n_words, *, head, params, true_next)``
  that produces the whole :class:`~entropylab.decoding.generate.Continuations` itself.
* a **transform** (:func:`register_transform`) is a sampling transform ``apply(p, value) -> p`` on a ``B x V``
  batch; the strategy registered with ``transforms=True`` (``sample``) takes every transform's parameter, and the
  transforms apply in the order they were registered (``transformers``' order for the built-in ones).
* a **decoder** (:class:`Decoder`) is one choice of the explorer's selector and of the decoding study's grid: a
  strategy with the one parameter that varies it (named as ``transformers`` names it), its slider's range, step
  and default, whether it is an integer, and whether it is deterministic (a seed changes nothing: greedy, beam).
  Registering a transform or a strategy with ``slider=`` (or without parameters) registers its decoder too.

Each parameter is a :class:`Parameter`: its name, its value when off (the default), its range in words and the test
of that range. :func:`check_decoder` is the one check of a strategy's parameters. ``import entropylab.decoding``
imports every module of the package, so a new decoder is one new file there that registers itself (see
``tests/test_decoding_registry.py`` for a toy one); :func:`unregister` and :func:`restoring` undo registrations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Parameter:
    """A decoding parameter: ``name`` (``transformers``' name), its ``default`` (the value that switches a transform
    off), the allowed range in words (``allowed``, used in the error message) and its test ``ok``."""

    name: str
    default: float
    allowed: str
    ok: Callable[[float], bool]
    integer: bool = False

    def check(self, value: Any) -> Any:
        """``value`` as a float (an int for an integer parameter); a ``ValueError`` naming the range otherwise."""
        if self.integer:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not self.ok(value):
                raise ValueError(f"{self.name} must be {self.allowed}, got {value!r}")
            return int(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not self.ok(number):  # NaN fails every comparison in ``ok``
            raise ValueError(f"{self.name} must be {self.allowed}, got {value!r}")
        return number


@dataclass(frozen=True)
class Slider:
    """The range, step and starting value a decoder's parameter is offered at (explorer slider, study grids)."""

    low: float
    high: float
    step: float
    default: float


@dataclass(frozen=True)
class Step:
    """What a stepwise strategy sees at each step: the model's raw ``outputs`` and its distributions ``p`` (padding
    removed, rows renormalised), both ``B x V`` float64, the continuation's random generator, and the model's
    input ``window`` (``B x L`` word ids, the words so far at its right end)."""

    outputs: np.ndarray
    p: np.ndarray
    rng: np.random.Generator
    window: np.ndarray


#: ``step(Step) -> (chosen word per row, a number per row to record or None)``
Stepper = Callable[[Step], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class Strategy:
    """A way of choosing words: stepwise (``start``) or a whole search (``search``); see the module docstring."""

    name: str
    parameters: tuple[Parameter, ...] = ()
    start: Callable[[dict[str, Any], int], Stepper] | None = None
    search: Callable[..., Any] | None = None
    deterministic: bool = False
    transforms: bool = False
    label: str = ""


@dataclass(frozen=True)
class Transform:
    """A sampling transform ``apply(p, value)``; it is off at its parameter's default."""

    parameter: Parameter
    apply: Callable[[np.ndarray, Any], np.ndarray]

    def active(self, value: Any) -> bool:
        return value != self.parameter.default


@dataclass(frozen=True)
class Decoder:
    """One choice of the decoder selector: its strategy, the parameter its slider sets and the slider's range."""

    name: str
    strategy: str
    parameter: str | None = None
    low: float = 0.0
    high: float = 1.0
    step: float = 0.05
    default: float = 0.0
    integer: bool = False

    @property
    def deterministic(self) -> bool:
        """Whether a sampling seed leaves the words unchanged (greedy, beam): such a decoder runs once."""
        return get_strategy(self.strategy).deterministic

    def arguments(self, value: float | None) -> tuple[str, dict[str, Any]]:
        """``(strategy, parameters)`` for :func:`entropylab.decoding.continue_prefixes`."""
        if self.parameter is None:
            return self.strategy, {}
        value = self.default if value is None else value
        return self.strategy, {self.parameter: round(float(value)) if self.integer else float(value)}

    def describe(self, value: float | None) -> str:
        """``greedy``, ``top_p=0.9``, ``mirostat tau=3``: the decoder in words (a transform without its strategy)."""
        if self.parameter is None:
            return self.name
        strategy, params = self.arguments(value)
        prefix = "" if get_strategy(strategy).transforms else f"{strategy} "
        return f"{prefix}{self.parameter}={params[self.parameter]:g}"


#: Every registered entry by name, in registration order (live: registering changes them in place).
STRATEGIES: dict[str, Strategy] = {}
TRANSFORMS: dict[str, Transform] = {}
DECODERS: dict[str, Decoder] = {}


def _new_name(table: dict[str, Any], kind: str, name: str) -> None:
    if not name.isidentifier():
        raise ValueError(f"a {kind} name must be an identifier (letters, digits, _), got {name!r}")
    if name in table:
        raise ValueError(f"a {kind} named {name!r} is already registered; choose another name or unregister it")


def register_decoder(decoder: Decoder) -> Decoder:
    """Add ``decoder`` to the selector (its strategy must be registered)."""
    _new_name(DECODERS, "decoder", decoder.name)
    strategy = get_strategy(decoder.strategy)
    if decoder.parameter is not None and decoder.parameter not in {p.name for p in parameters_of(strategy)}:
        raise ValueError(f"decoder {decoder.name!r}: strategy {strategy.name!r} has no parameter "
                         f"{decoder.parameter!r}")
    DECODERS[decoder.name] = decoder
    return decoder


def _decoder(name: str, strategy: str, parameter: Parameter | None, slider: Slider | None) -> Decoder:
    if parameter is None:
        return register_decoder(Decoder(name, strategy))
    if slider is None:
        raise ValueError(f"decoder {name!r}: give the slider (low, high, step, default) of {parameter.name}")
    return register_decoder(Decoder(name, strategy, parameter.name, slider.low, slider.high, slider.step,
                                    slider.default, parameter.integer))


def register_strategy(name: str, *, parameters: tuple[Parameter, ...] = (), slider: Slider | None = None,
                      deterministic: bool = False, search: bool = False, transforms: bool = False,
                      label: str = "", selectable: bool = True) -> Callable[[Callable], Callable]:
    """Decorator: register the decorated ``start`` (or, with ``search=True``, ``search``) function as the strategy
    ``name`` with its ``parameters``; unless ``selectable=False`` also the decoder ``name``, whose slider
    (``slider``) sets the first parameter. ``transforms=True``: the strategy also takes the transforms' parameters;
    ``label`` names its parameters in messages (``sampling``)."""
    def register(function: Callable) -> Callable:
        _new_name(STRATEGIES, "strategy", name)
        if selectable:
            _new_name(DECODERS, "decoder", name)
        STRATEGIES[name] = Strategy(name, tuple(parameters), None if search else function,
                                    function if search else None, deterministic, transforms, label)
        if selectable:
            try:
                _decoder(name, name, parameters[0] if parameters else None, slider)
            except ValueError:
                del STRATEGIES[name]
                raise
        return function

    return register


def register_transform(parameter: Parameter, slider: Slider | None = None, *,
                       selectable: bool = True) -> Callable[[Callable], Callable]:
    """Decorator: register the decorated ``apply(p, value)`` as the sampling transform of ``parameter``, applied
    after the transforms registered before it, and (unless ``selectable=False``) the decoder of the same name
    with ``slider``."""
    def register(function: Callable) -> Callable:
        _new_name(TRANSFORMS, "transform", parameter.name)
        if selectable:
            _new_name(DECODERS, "decoder", parameter.name)
        known = {p.name for s in STRATEGIES.values() for p in s.parameters}
        if parameter.name in known:
            raise ValueError(f"transform {parameter.name!r}: a strategy already has a parameter of that name")
        TRANSFORMS[parameter.name] = Transform(parameter, function)
        if selectable:
            sampler = next((s.name for s in STRATEGIES.values() if s.transforms), None)
            if sampler is None:
                del TRANSFORMS[parameter.name]
                raise ValueError("no strategy takes the transforms yet; register one with transforms=True first")
            try:
                _decoder(parameter.name, sampler, parameter, slider)
            except ValueError:
                del TRANSFORMS[parameter.name]
                raise
        return function

    return register


def get_strategy(name: str) -> Strategy:
    """The strategy ``name``; an unknown one is a ``ValueError`` listing the known ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def get_decoder(name: str) -> Decoder:
    """The decoder choice ``name``; an unknown one is a ``ValueError`` listing the known ones."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")
    return DECODERS[name]


def registered_transforms() -> tuple[Transform, ...]:
    """The sampling transforms in the order they apply."""
    return tuple(TRANSFORMS.values())


def strategy_names() -> tuple[str, ...]:
    """The names of the registered strategies."""
    return tuple(STRATEGIES)


def deterministic_decoders() -> tuple[str, ...]:
    """The decoders whose words a sampling seed does not change (run once)."""
    return tuple(name for name, decoder in DECODERS.items() if decoder.deterministic)


def parameters_of(strategy: Strategy) -> tuple[Parameter, ...]:
    """A strategy's parameters: its own, then (``transforms=True``) every transform's."""
    extra = tuple(t.parameter for t in TRANSFORMS.values()) if strategy.transforms else ()
    return strategy.parameters + extra


def check_decoder(strategy: str, **params: Any) -> dict[str, Any]:
    """``strategy``'s parameters checked, defaults filled in; one ``ValueError`` for the first problem.

    A value is checked against its parameter's own range first (whatever the strategy), so the message names the
    range; then a parameter the strategy does not take is refused, naming the ones it takes."""
    chosen = get_strategy(strategy)
    allowed = {p.name: p for p in parameters_of(chosen)}
    known = {p.name: p for s in STRATEGIES.values() for p in parameters_of(s)}
    for name, value in params.items():
        if name in allowed or name in known:
            allowed.get(name, known.get(name)).check(value)
    unknown = [name for name in params if name not in allowed]
    if unknown:
        names = ", ".join(map(repr, sorted(unknown)))
        if not allowed:
            raise ValueError(f"strategy {strategy!r} takes no parameters; got {names}")
        raise ValueError(f"unknown {chosen.label or strategy} parameter(s) {names}; use {', '.join(allowed)}")
    return {name: p.check(params.get(name, p.default)) for name, p in allowed.items()}


def unregister(name: str) -> None:
    """Remove the decoder, strategy and transform called ``name`` (whichever exist) and every decoder of that
    strategy; a ``ValueError`` when none does."""
    if name not in DECODERS and name not in STRATEGIES and name not in TRANSFORMS:
        raise ValueError(f"nothing is registered as {name!r}")
    if name in STRATEGIES:
        for other in [d.name for d in DECODERS.values() if d.strategy == name]:
            del DECODERS[other]
        del STRATEGIES[name]
    TRANSFORMS.pop(name, None)
    DECODERS.pop(name, None)


@contextmanager
def restoring() -> Iterator[None]:
    """Within the block, registrations are temporary: the registry is put back as it was on leaving it."""
    saved = [(table, dict(table)) for table in (STRATEGIES, TRANSFORMS, DECODERS)]
    try:
        yield
    finally:
        for table, entries in saved:
            table.clear()
            table.update(entries)
