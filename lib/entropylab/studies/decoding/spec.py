"""The ``decoding`` section of a parameter file: which finished runs are decoded, how, and the hyperfitted model.

.. code-block:: yaml

    decoding:
      prefixes: 500            # prefixes per cell and side (dev and test, or validation), or all
      words: 10                # words generated per prefix (at most 1000)
      sampling_seeds: [0, 1, 2]   # at least two: the tables' tie rule needs a standard error over seeds
      workers: 2               # models decoded at once, each in its own process
      models:                  # runs of this file (seed 0 unless `seed`), by objective; `dataset` limits one
        - {name: cross-entropy, loss: cross_entropy}
        - {name: best objective, loss: label_smoothing, weight: 0.03, dataset: synthetic}
      hyperfit: {model: cross-entropy, headlines: 100, max_epochs: 150, target_loss: 0.05, learning_rate: 0.003,
                 batch_size: 16}   # headlines: a number or all (every headline of the training split)
      references: [unigram, bigram, kneser_ney, source]   # count models (Kneser-Ney: the order chosen on dev) and
                                                          # the synthetic source, sampled at T = 1
      decoders: {greedy: [], top_p: [0.5, 0.9], beam: [2, 4]}   # names of entropylab.decoding.DECODERS

A mistake is one :class:`~entropylab.experiments.params.ParamsError` naming the file, the key and the fix.
``prefixes`` and ``hyperfit.headlines`` are read here as a number or ``None`` (the file's ``all``); that a number
is not more than there are (the rows of each held-out side and the training headlines of each setting) is checked
against the runs' data splits when the study is planned (:func:`entropylab.studies.decoding.study.check_stage`), where
``all`` becomes the number of each setting, so that what is recorded is what was used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...decoding import DECODERS, check_decoder
from ...experiments.params import ParamsError, ParamSet
from ...objectives import OBJECTIVES

SECTION_KEYS = ("prefixes", "words", "sampling_seeds", "workers", "models", "hyperfit", "references", "decoders")
MODEL_KEYS = ("name", "loss", "weight", "seed", "dataset")
HYPERFIT_KEYS = ("model", "headlines", "max_epochs", "target_loss", "learning_rate", "batch_size", "seed")
REFERENCES = ("unigram", "bigram", "kneser_ney", "source")
#: The fix for a damaged file of the study: its command again (a damaged cells file is decoded again).
RERUN = "run the study again: python -m entropylab reproduce --study decoding (with --params FILE for another file)"
#: The most ``words`` per prefix (the paper continues headlines by 10; 10**9 failed every job after the training).
MAX_WORDS = 1000
#: The word a file gives for ``prefixes`` or ``hyperfit.headlines`` to use every held-out row (with dev and test
#: sides, as many per side as the smaller holds) or training headline.
ALL = "all"
#: The fewest ``sampling_seeds``: the tables' tie rule needs a standard error over seeds (:mod:`.tables`).
MIN_SAMPLING_SEEDS = 2


@dataclass(frozen=True)
class ModelSpec:
    """A finished run to decode: its display name and what selects it among the file's runs."""

    name: str
    loss: str
    weight: float | None = None
    seed: int = 0
    dataset: str | None = None

    @property
    def slug(self) -> str:
        return slug(self.name)


@dataclass(frozen=True)
class HyperfitSpec:
    """The hyperfitting recipe (:mod:`.hyperfit`): the model it starts from, the training headlines it is fitted to
    and when it stops (the mean training cross-entropy below ``target_loss``, or ``max_epochs``)."""

    model: str
    headlines: int | None = 100  # None: every headline of the training split (the file's ``all``)
    max_epochs: int = 150
    target_loss: float = 0.05
    learning_rate: float = 0.003
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class DecodingSpec:
    """The checked ``decoding`` section (``prefixes`` None: every held-out row, per side as many as the smaller side
    holds, the file's ``all``)."""

    prefixes: int | None
    words: int
    sampling_seeds: tuple[int, ...]
    workers: int
    models: tuple[ModelSpec, ...]
    hyperfit: HyperfitSpec | None
    references: tuple[str, ...]
    decoders: dict[str, tuple[float, ...]]

    def cells(self) -> list[tuple[str, float | None, int]]:
        """Every ``(decoder, value, sampling seed)`` of one model: seeds only where they change the words (a
        deterministic decoder of :data:`entropylab.decoding.DECODERS` runs once)."""
        cells = []
        for name, values in self.decoders.items():
            seeds = self.sampling_seeds[:1] if DECODERS[name].deterministic else self.sampling_seeds
            for value in values or (None,):
                cells.extend((name, value, seed) for seed in seeds)
        return cells


def slug(name: str) -> str:
    """``KL w=10`` -> ``kl-w-10``: a model's name as a file name."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")


def _int(path: Path, key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParamsError(f"{path}: decoding.{key}: got {value!r}; expected an integer >= {low}")
    return value


def _count_or_all(path: Path, key: str, value: Any) -> int | None:
    """An integer >= 1, or None for the file's ``all``."""
    if value == ALL:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{path}: decoding.{key}: got {value!r}; expected an integer >= 1 or {ALL}")
    return value


def _positive(path: Path, key: str, value: Any) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and number > 0):
        raise ParamsError(f"{path}: decoding.{key}: got {value!r}; expected a number > 0")
    return float(number)


def _mapping(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParamsError(f"{path}: decoding.{key}: got {value!r}; expected a mapping with {', '.join(allowed)}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ParamsError(f"{path}: decoding.{key}.{unknown[0]}: unknown key; expected one of {', '.join(allowed)}")
    return value


def read_spec(param_set: ParamSet) -> DecodingSpec:
    """The ``decoding`` section of ``param_set`` checked (module docstring)."""
    path = param_set.path
    if param_set.decoding is None:
        raise ParamsError(f"{path}: decoding: missing; a decoding study's file needs a 'decoding' section "
                          f"(see params/decoding.yaml)")
    section = _mapping(path, "<section>", param_set.decoding, SECTION_KEYS)
    prefixes = _count_or_all(path, "prefixes", section.get("prefixes", 500))
    words = _int(path, "words", section.get("words", 10), 2)
    if words > MAX_WORDS:  # refused here, not after the training by a MemoryError in every job
        raise ParamsError(f"{path}: decoding.words: got {words}; expected at most {MAX_WORDS} (words generated per "
                          f"prefix: each cell holds prefixes x words of them)")
    workers = _int(path, "workers", section.get("workers", 1), 1)
    seeds = section.get("sampling_seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or len(set(map(repr, seeds))) != len(seeds):
        raise ParamsError(f"{path}: decoding.sampling_seeds: got {seeds!r}; expected a list of distinct integers")
    seeds = tuple(_int(path, "sampling_seeds", s, 0) for s in seeds)
    if len(seeds) < MIN_SAMPLING_SEEDS:  # one seed: no spread, so every gap between decoders would be "worse"
        raise ParamsError(f"{path}: decoding.sampling_seeds: got {list(seeds)!r}; expected at least "
                          f"{MIN_SAMPLING_SEEDS} distinct seeds, e.g. [0, 1]: the matched-diversity table calls a gap "
                          f"a tie by the standard error over sampling seeds, which one seed cannot give")
    models = _models(path, section.get("models"))
    hyperfit = _hyperfit(path, section.get("hyperfit"), models)
    references = section.get("references", [])
    if not isinstance(references, list) or any(r not in REFERENCES for r in references) \
            or len(set(references)) != len(references):
        raise ParamsError(f"{path}: decoding.references: got {references!r}; expected a list of "
                          f"{', '.join(REFERENCES)}, each once")
    return DecodingSpec(prefixes, words, seeds, workers, models, hyperfit, tuple(references),
                        _decoders(path, section.get("decoders")))


def _models(path: Path, entries: Any) -> tuple[ModelSpec, ...]:
    if not isinstance(entries, list) or not entries:
        raise ParamsError(f"{path}: decoding.models: got {entries!r}; expected a list of models, each "
                          f"{{name: ..., loss: ...}}")
    models = []
    for index, entry in enumerate(entries):
        key = f"models[{index}]"
        entry = _mapping(path, key, entry, MODEL_KEYS)
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise ParamsError(f"{path}: decoding.{key}.name: expected a name for the model (e.g. cross-entropy)")
        if entry.get("loss") not in OBJECTIVES:
            raise ParamsError(f"{path}: decoding.{key}.loss: got {entry.get('loss')!r}; expected one of "
                              f"{', '.join(OBJECTIVES)}")
        weight = entry.get("weight")
        if weight is not None:
            weight = _positive(path, f"{key}.weight", weight)
        if entry.get("dataset") not in (None, "nyt", "synthetic"):
            raise ParamsError(f"{path}: decoding.{key}.dataset: got {entry['dataset']!r}; expected nyt or synthetic")
        seed = _int(path, f"{key}.seed", entry.get("seed", 0), 0)
        models.append(ModelSpec(entry["name"], entry["loss"], weight, seed, entry.get("dataset")))
    for dataset in ("nyt", "synthetic"):
        names = [m.slug for m in models if m.dataset in (None, dataset)]
        if len(names) != len(set(names)):
            raise ParamsError(f"{path}: decoding.models: two models of one dataset share a name; rename one")
    return tuple(models)


def _hyperfit(path: Path, entry: Any, models: tuple[ModelSpec, ...]) -> HyperfitSpec | None:
    if entry is None:
        return None
    entry = _mapping(path, "hyperfit", entry, HYPERFIT_KEYS)
    if entry.get("model") not in {m.name for m in models}:
        raise ParamsError(f"{path}: decoding.hyperfit.model: got {entry.get('model')!r}; expected the name of one "
                          f"of decoding.models ({', '.join(m.name for m in models)})")
    values: dict[str, Any] = {"model": entry["model"]}
    if "headlines" in entry:
        values["headlines"] = _count_or_all(path, "hyperfit.headlines", entry["headlines"])
    for name in ("max_epochs", "batch_size"):
        if name in entry:
            values[name] = _int(path, f"hyperfit.{name}", entry[name], 1)
    for name in ("target_loss", "learning_rate"):
        if name in entry:
            values[name] = _positive(path, f"hyperfit.{name}", entry[name])
    if "seed" in entry:
        values["seed"] = _int(path, "hyperfit.seed", entry["seed"], 0)
    return HyperfitSpec(**values)


def _decoders(path: Path, entry: Any) -> dict[str, tuple[float, ...]]:
    if not isinstance(entry, dict) or not entry:
        raise ParamsError(f"{path}: decoding.decoders: got {entry!r}; expected a mapping of decoder: [values] with "
                          f"decoders among {', '.join(DECODERS)}")
    decoders: dict[str, tuple[float, ...]] = {}
    for name, values in entry.items():
        if name not in DECODERS:
            raise ParamsError(f"{path}: decoding.decoders.{name}: unknown decoder; expected one of "
                              f"{', '.join(DECODERS)}")
        control = DECODERS[name]
        values = values or []
        if not isinstance(values, list) or (control.parameter is None) != (not values):
            expected = "[] (it has no parameter)" if control.parameter is None else f"a list of {control.parameter}"
            raise ParamsError(f"{path}: decoding.decoders.{name}: got {values!r}; expected {expected}")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ParamsError(f"{path}: decoding.decoders.{name}: got {value!r}; expected a list of finite numbers "
                                  f"({control.parameter}, e.g. {control.default:g})")
            try:
                strategy, params = control.arguments(value)
                if control.integer and value != round(value):
                    raise ValueError(f"{control.parameter} must be an integer, got {value!r}")
                check_decoder(strategy, **params)
            except (TypeError, ValueError) as exc:
                raise ParamsError(f"{path}: decoding.decoders.{name}: {exc}") from None
        normalised = [control.arguments(v)[1][control.parameter] for v in values]
        if len(set(normalised)) != len(normalised):
            raise ParamsError(f"{path}: decoding.decoders.{name}: got {values!r}; each value once (a repeated value "
                              f"would count as another seed)")
        decoders[name] = tuple(values)
    return decoders
