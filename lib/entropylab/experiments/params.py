"""Parameter files (``params/*.yaml``): loading, validation and expansion into grid points.

A file names an experiment, optional defaults and a list of runs; each run names a notebook and a grid
whose values are combined as a cartesian product (``params/README.md`` documents the format)::

    experiment: paper
    workers: 1
    threads: 2
    defaults: {epochs: 5, batch_size: 32, split: tail, seed: 0, dataset: auto}
    runs:
      - notebook: notebooks/03_kl_regularization.ipynb
        grid: {weight: [0.1, 1.0, 10.0, 100.0]}

A point's parameters are, by increasing priority: the notebook's own ``parameters`` cell, ``defaults``,
the grid values. Every mistake is a :class:`ValueError` that names the file, the key and what is expected.
Nothing here imports Keras or TensorFlow: validation goes through :mod:`entropylab.objectives` and
:class:`entropylab.training.config.RunConfig`.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import objectives, paths
from ..training.config import BACKENDS, SPLIT_SEED_FROM_SEED
from .addresses import scheduler_address_problem
from .notebooks import notebook_parameters, resolve_notebook
from .verdict_rule import VerdictRuleError, read_verdict_rule

#: The names of the training notebooks' ``parameters`` cell, with what each must be.
NOTEBOOK_PARAMETERS: dict[str, str] = {
    "experiment": "a folder name (letters, digits, '_', '-', '.')",
    "loss": "an objective name of entropylab.objectives",
    "weight": "a finite number >= 0 (the objective's weight, smoothing or exponent)",
    "seed": "an integer >= 0",
    "epochs": "an integer >= 1",
    "batch_size": "an integer >= 1",
    "split": "'tail' or 'headline'",
    "val_fraction": "a number strictly between 0 and 1",
    "split_seed": "an integer in [0, 2**32) (the headline split's seed), or 'seed' (the run's seed)",
    "learning_rate": "a positive number (Adam's learning rate)",
    "max_sequences": "null or an integer >= 2",
    "dataset": "'auto', 'nyt', 'synthetic' or 'hidden_state'",
    "data_dir": "null or a folder path",
    "output_root": "null or a folder path",
    "jit_compile": "true or false",
    "patience": "null (train every epoch) or an integer >= 1 (early stopping on validation cross-entropy)",
    "tuning": "true or false (train and validate on a carve of the training split)",
    "generation_prefixes": "an integer >= 0 (validation prefixes continued for the generation metrics)",
    "test_fraction": "a number >= 0 below 1 - val_fraction (the test side's share; 0: no test side)",
}
#: Parameters a training notebook may lack (added after the paper's notebooks); a file may set them only for
#: notebooks that have them.
OPTIONAL_PARAMETERS = ("patience", "tuning", "generation_prefixes", "test_fraction")
#: Set by the sweep itself (top-level ``experiment``, ``--output-root``), never in ``defaults`` or a grid.
SWEEP_OWNED = ("experiment", "output_root")
#: The losses each training notebook accepts (the paper's section it follows).
NOTEBOOK_LOSSES: dict[str, tuple[str, ...]] = {
    "01_control.ipynb": (objectives.CONTROL, objectives.CROSS_ENTROPY),
    "02_entropy_regularization.ipynb": (objectives.ENTROPY,),
    "03_kl_regularization.ipynb": (objectives.KL,),
}
#: How a sweep trains its runs: ``fused`` groups (one compiled program per group; JAX), ``pool`` (one process per
#: run) or ``auto`` (fused where JAX sees a GPU, else pool): :func:`entropylab.experiments.engines.resolve_engine`.
ENGINES = ("auto", "fused", "pool")
# decoding: the decoding study's section (entropylab.studies.decoding.spec)
TOP_LEVEL_KEYS = ("experiment", "description", "workers", "threads", "cluster", "engine", "backend", "defaults",
                  "settings", "runs", "decoding", "verdicts")
RUN_KEYS = ("notebook", "grid", "tune")
TUNE_KEYS = ("seeds", "neighbours")
DATASETS = ("auto", "nyt", "synthetic", "hidden_state")
_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ParamsError(ValueError):
    """A parameter file is malformed; the message names the file, the key and what is expected."""


# ---------------------------------------------------------------------------------------------------------
# One value
# ---------------------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float:
    """A YAML number as a float; strings such as ``"1e-7"`` (PyYAML reads them as text) are accepted."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise TypeError


def check_value(name: str, value: Any) -> Any:
    """``value`` checked (and normalised) for the notebook parameter ``name``; raises ``ValueError``."""
    if name not in NOTEBOOK_PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}; expected one of {', '.join(NOTEBOOK_PARAMETERS)}")
    expected = NOTEBOOK_PARAMETERS[name]
    bad = ValueError(f"got {value!r}; expected {expected}")
    if name == "experiment":
        if not (isinstance(value, str) and _EXPERIMENT_NAME.match(value)):
            raise bad
        return value
    if name == "loss":
        if not isinstance(value, str) or value not in objectives.OBJECTIVES:
            raise ValueError(f"got {value!r}; expected one of {', '.join(objectives.names())}")
        return value
    if name in ("weight", "val_fraction", "learning_rate"):
        try:
            number = _number(value)
        except (TypeError, ValueError):
            raise bad from None
        valid = math.isfinite(number) and (number >= 0 if name == "weight" else 0 < number < 1 if
                                           name == "val_fraction" else number > 0)
        if not valid:
            raise bad
        return number
    if name == "split_seed" and value == SPLIT_SEED_FROM_SEED:
        return value
    if name == "test_fraction":
        try:
            number = _number(value)
        except (TypeError, ValueError):
            raise bad from None
        if not (math.isfinite(number) and 0 <= number < 1):
            raise bad
        return number
    if name in ("seed", "split_seed"):
        if not _is_int(value) or not 0 <= value < 2**32:
            raise bad
        return value
    if name in ("epochs", "batch_size"):
        if not _is_int(value) or value < 1:
            raise bad
        return value
    if name == "max_sequences":
        if value is not None and (not _is_int(value) or value < 2):
            raise bad
        return value
    if name == "split":
        from ..training.config import SPLIT_MODES

        if value not in SPLIT_MODES:
            raise bad
        return value
    if name == "dataset":
        if value not in DATASETS:
            raise bad
        return value
    if name in ("data_dir", "output_root"):
        if value is not None and not (isinstance(value, str) and value):
            raise bad
        return value
    if name in ("jit_compile", "tuning"):
        if not isinstance(value, bool):
            raise bad
        return value
    if name == "patience":
        if value is not None and (not _is_int(value) or value < 1):
            raise bad
        return value
    if name == "generation_prefixes":
        if not _is_int(value) or value < 0:
            raise bad
        return value
    raise AssertionError(name)  # pragma: no cover - every name above is handled


def check_notebook_loss(notebook: str | os.PathLike, loss: str) -> None:
    """Refuse a loss that the training notebook ``notebook`` (a file name) does not follow."""
    allowed = NOTEBOOK_LOSSES.get(Path(notebook).name)
    if allowed is not None and loss not in allowed:
        raise ValueError(f"{Path(notebook).name} trains the loss {' or '.join(map(repr, allowed))}, "
                         f"not {loss!r}; use the notebook of that loss")


def resolve_experiment(experiment: str, dataset: str, data_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(dataset, experiment)`` with ``"auto"`` resolved: without the NYT data it becomes ``"synthetic"``
    (said in one line) and the experiment gets a ``-synthetic`` suffix, so the runs never mix."""
    if dataset != "auto":
        return dataset, experiment
    from ..data import resolve_dataset

    resolved = resolve_dataset("auto", data_dir)
    return resolved, experiment if resolved == "nyt" else f"{experiment}-synthetic"


# ---------------------------------------------------------------------------------------------------------
# Parameter sets
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tune:
    """How a run entry's ``weight`` is tuned: each grid value trained once (``tuning: true``, the file's seed) on
    a carve of the training split; the value of lowest best-epoch validation cross-entropy there and its
    ``neighbours`` grid values on each side are then trained with every seed of ``seeds`` on the real split."""

    seeds: tuple[int, ...]
    neighbours: int = 1


@dataclass(frozen=True)
class Point:
    """One grid point: a notebook and every one of its parameters except ``experiment``/``output_root``.

    A tuning point (``tune`` set) belongs to the group ``(entry, setting)``: the grid values of one objective in
    one data setting, among which :mod:`entropylab.experiments.tuning` chooses.
    """

    notebook: Path
    parameters: dict[str, Any]
    entry: int  # index in ``runs`` of the file
    setting: int = 0  # index in ``settings`` of the file (0 without settings)
    tune: Tune | None = None
    final: tuple[tuple[str, Any], ...] = ()  # a tuning point: the values its chosen runs take instead

    def chosen(self, **values: Any) -> Point:
        """The run of a tuning point's group trained on the real split with ``values`` (its weight, its seed)."""
        parameters = {**self.parameters, **dict(self.final), **values}
        return Point(self.notebook, parameters, self.entry, self.setting)

    def config(self, **overrides: Any) -> Any:
        """The :class:`~entropylab.training.config.RunConfig` the notebook will build for this point."""
        from ..training.config import RunConfig

        values = {k: v for k, v in {**self.parameters, **overrides}.items() if k not in SWEEP_OWNED}
        return RunConfig.from_dict(values)

    @property
    def run_name(self) -> str:
        return self.config().run_name


@dataclass
class ParamSet:
    """A validated parameter file."""

    path: Path
    experiment: str
    description: str = ""
    workers: int | None = None
    threads: int | None = None  # TensorFlow threads per run: the numbers depend on it, so a file can fix it
    defaults: dict[str, Any] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    cluster: str | None = None  # "local" (a Dask LocalCluster) or a Dask scheduler address; None: local processes
    settings: list[dict[str, Any]] = field(default_factory=list)
    tuning_points: list[Point] = field(default_factory=list)  # trained first; the chosen values join ``points``
    decoding: dict[str, Any] | None = None  # the decoding study's section, checked by its own reader
    engine: str | None = None  # "auto", "fused" or "pool" (entropylab.experiments.engines.ENGINES); None: auto
    backend: str | None = None  # the Keras backend its runs train on; None: training.config.sweep_backend's default
    verdicts: dict[str, Any] | None = None  # the rule fixed before the run (.verdict_rule); None: the default


#: The protocols of a Dask scheduler address the sweep connects to (``tls`` needs the cluster's certificates).
def _fail(path: Path, key: str, message: str) -> ParamsError:
    return ParamsError(f"{path}: {key}: {message}")


def _checked(path: Path, key: str, name: str, value: Any) -> Any:
    try:
        return check_value(name, value)
    except ValueError as exc:
        raise _fail(path, key, str(exc)) from None


def _mapping(path: Path, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, key, f"got {type(value).__name__} {value!r}; expected a mapping of parameter: value")
    return value


def _check_names(path: Path, key: str, names: Any, allowed: Callable[[str], bool], allowed_text: str) -> None:
    for name in names:
        if name in SWEEP_OWNED:
            where = "the top-level 'experiment' key" if name == "experiment" else "the --output-root option"
            raise _fail(path, f"{key}.{name}", f"is set by the sweep; use {where}")
        if not isinstance(name, str) or not allowed(name):
            raise _fail(path, f"{key}.{name}", f"unknown parameter; expected one of {allowed_text}")


def load_params(path: str | os.PathLike) -> ParamSet:
    """Read and validate a parameter file; its :attr:`ParamSet.points` are the expanded grid.

    Raises :class:`ParamsError` (a ``ValueError``) naming the file, the key and the expectation, and
    ``FileNotFoundError`` for a missing file.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        known = sorted(p.name for p in (paths.project_root() / "params").glob("*.yaml"))
        raise FileNotFoundError(f"parameter file {path} not found; the project's are {', '.join(known) or 'none'} "
                                f"in params/")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(exc).split())}); expected a mapping with "
                          f"'experiment' and 'runs' (see params/README.md)") from exc
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the file as UTF-8") from None
    if not isinstance(document, dict):
        raise _fail(path, "<top level>", f"got {type(document).__name__}; expected a mapping with 'experiment' "
                                         f"and 'runs' (see params/README.md)")
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            raise _fail(path, str(key), f"unknown key; expected one of {', '.join(TOP_LEVEL_KEYS)}")
    for key in ("experiment", "runs"):
        if key not in document:
            raise _fail(path, key, "missing; expected "
                        + ("an experiment name (the runs go to outputs/runs/<experiment>)" if key == "experiment"
                           else "a list of runs, each with 'notebook' and 'grid'"))
    experiment = _checked(path, "experiment", "experiment", document["experiment"])
    description = document.get("description") or ""
    if not isinstance(description, str):
        raise _fail(path, "description", f"got {description!r}; expected text")
    workers = document.get("workers")
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise _fail(path, "workers", f"got {workers!r}; expected an integer >= 1 (parallel runs)")
    threads = document.get("threads")
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise _fail(path, "threads", f"got {threads!r}; expected an integer >= 1 (TensorFlow threads per run)")

    cluster = document.get("cluster")
    if cluster is not None and cluster != "local":
        problem = scheduler_address_problem(cluster)
        if problem:
            raise _fail(path, "cluster", f"got {cluster!r}; expected 'local' (a Dask LocalCluster) or a Dask scheduler "
                                         f"address tcp://HOST:PORT such as tcp://10.0.0.5:8786 (here: {problem})")

    engine = document.get("engine")
    if engine is not None and engine not in ENGINES:
        raise _fail(path, "engine", f"got {engine!r}; expected one of {', '.join(ENGINES)} (auto: fused groups on a "
                                    f"GPU, one process per run otherwise)")

    backend = document.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise _fail(path, "backend", f"got {backend!r}; expected one of {', '.join(BACKENDS)} (the Keras backend the "
                                     f"runs train on; $KERAS_BACKEND overrides it)")

    try:
        verdicts = read_verdict_rule(document.get("verdicts"))
    except VerdictRuleError as exc:
        raise _fail(path, exc.key, str(exc)) from None
    defaults = _mapping(path, "defaults", document.get("defaults"))
    _check_names(path, "defaults", defaults, lambda n: n in NOTEBOOK_PARAMETERS,
                 ", ".join(n for n in NOTEBOOK_PARAMETERS if n not in SWEEP_OWNED))
    defaults = {name: _checked(path, f"defaults.{name}", name, value) for name, value in defaults.items()}
    settings = _settings(path, document.get("settings"))

    entries = document["runs"]
    if not isinstance(entries, list) or not entries:
        raise _fail(path, "runs", f"got {entries!r}; expected a non-empty list of runs, each with 'notebook' "
                                  f"and 'grid'")
    points: list[Point] = []
    for index, entry in enumerate(entries):
        for number, setting in enumerate(settings or [{}]):
            points.extend(_expand_entry(path, index, entry, {**defaults, **setting}, number))
    static = [p for p in points if p.tune is None]
    tuning = [p for p in points if p.tune is not None]
    for group in (static, tuning):
        check_points(path, group)
    return ParamSet(path, experiment, description, workers, threads, defaults, static, cluster, settings, tuning,
                    document.get("decoding"), engine, backend, verdicts)


def check_points(path: Path, points: list[Point]) -> None:
    """Every point a valid config of its notebook's objective, and no two the same run (a :class:`ParamsError`)."""
    seen: dict[str, Point] = {}
    for point in points:
        where = f"runs[{point.entry}]"
        try:  # "auto" is resolved by the sweep; any concrete dataset validates the rest
            config = point.config(**({"dataset": "synthetic"} if point.parameters.get("dataset") == "auto" else {}))
            check_notebook_loss(point.notebook, config.loss)
        except ValueError as exc:
            raise _fail(path, where, f"{exc} (point {_describe(point)})") from None
        if config.run_name in seen:
            raise _fail(path, where, f"two grid points are the same run {config.run_name!r} "
                                     f"({_describe(seen[config.run_name])} and {_describe(point)}); remove one")
        seen[config.run_name] = point


def _settings(path: Path, value: Any) -> list[dict[str, Any]]:
    """The file's data settings: a list of parameter mappings, each applied over ``defaults`` to every run."""
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise _fail(path, "settings", f"got {value!r}; expected a non-empty list of mappings of parameter: value "
                                      f"(one per data setting, e.g. {{dataset: nyt, split: headline}})")
    settings = []
    for number, setting in enumerate(value):
        key = f"settings[{number}]"
        setting = _mapping(path, key, setting)
        _check_names(path, key, setting, lambda n: n in NOTEBOOK_PARAMETERS,
                     ", ".join(n for n in NOTEBOOK_PARAMETERS if n not in SWEEP_OWNED))
        settings.append({name: _checked(path, f"{key}.{name}", name, v) for name, v in setting.items()})
    return settings


def _tune(path: Path, key: str, value: Any, grid: dict[str, list[Any]], base: dict[str, Any]) -> Tune:
    """A run entry's ``tune`` mapping, checked against its grid (which must vary ``weight`` and not ``seed``)."""
    value = _mapping(path, key, value)
    for name in value:
        if name not in TUNE_KEYS:
            raise _fail(path, f"{key}.{name}", f"unknown key; expected one of {', '.join(TUNE_KEYS)}")
    seeds = value.get("seeds", [base.get("seed", 0)])
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if not seeds or any(not _is_int(s) or not 0 <= s < 2**32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise _fail(path, f"{key}.seeds", f"got {seeds!r}; expected a list of distinct integers >= 0")
    neighbours = value.get("neighbours", 1)
    if not _is_int(neighbours) or neighbours < 0:
        raise _fail(path, f"{key}.neighbours", f"got {neighbours!r}; expected an integer >= 0 (grid values on each "
                                               f"side of the chosen one)")
    weights = grid.get("weight", [])
    if len(weights) < 2 or len(set(weights)) != len(weights):
        raise _fail(path, f"{key}", "tuning needs a grid of at least two distinct 'weight' values to choose from")
    if "seed" in grid or "tuning" in grid:
        raise _fail(path, f"{key}", "a tuned run's grid must not vary 'seed' or 'tuning'; give the seeds of the "
                                    "chosen values in tune.seeds")
    varying = [name for name, values in grid.items() if name != "weight" and len(values) > 1]
    if varying:
        raise _fail(path, f"{key}", f"a tuned run's grid varies only 'weight' (it varies {', '.join(varying)}); "
                                    f"give the other values one run entry each, or put them in settings")
    if base.get("patience") is None:
        raise _fail(path, f"{key}", "tuning needs early stopping to judge each value at its best epoch; set "
                                    "patience (e.g. 1) in defaults, settings or the grid")
    return Tune(tuple(seeds), neighbours)


def _describe(point: Point) -> str:
    return f"{point.notebook.name} {point.parameters}"


def _expand_entry(path: Path, index: int, entry: Any, defaults: dict[str, Any], setting: int = 0) -> list[Point]:
    key = f"runs[{index}]"
    if not isinstance(entry, dict):
        raise _fail(path, key, f"got {entry!r}; expected a mapping with 'notebook' and 'grid'")
    for name in entry:
        if name not in RUN_KEYS:
            raise _fail(path, f"{key}.{name}", f"unknown key; expected one of {', '.join(RUN_KEYS)}")
    name = entry.get("notebook")
    if not isinstance(name, str) or not name:
        raise _fail(path, f"{key}.notebook", f"got {name!r}; expected a notebook path such as "
                                             f"notebooks/01_control.ipynb")
    notebook = resolve_notebook(name, path)
    if notebook is None:
        raise _fail(path, f"{key}.notebook", f"{name} does not exist; expected a path relative to the project "
                                             f"root ({paths.project_root(path.parent)}) or to the file")
    try:
        own = notebook_parameters(notebook)
    except ValueError as exc:
        raise _fail(path, f"{key}.notebook", str(exc)) from None
    expected = [n for n in NOTEBOOK_PARAMETERS if n not in own and n not in OPTIONAL_PARAMETERS]
    lacking = [n for n in defaults if n in OPTIONAL_PARAMETERS and n not in own]
    if lacking:
        raise _fail(path, f"{key}.notebook", f"{name} lacks the parameter(s) {', '.join(lacking)} that defaults or "
                                             f"settings give; use a notebook that has them (e.g. "
                                             f"notebooks/07_objectives_train.ipynb) or remove them")
    if expected:
        raise _fail(path, f"{key}.notebook", f"{name} lacks the parameter(s) {', '.join(expected)}; expected a "
                                             f"training notebook whose 'parameters' cell has all of "
                                             f"{', '.join(NOTEBOOK_PARAMETERS)}")
    grid = _mapping(path, f"{key}.grid", entry.get("grid"))
    _check_names(path, f"{key}.grid", grid, lambda n: n in own, ", ".join(n for n in own if n not in SWEEP_OWNED))
    axes: dict[str, list[Any]] = {}
    for param, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise _fail(path, f"{key}.grid.{param}", f"empty list; expected one or more values "
                                                     f"({NOTEBOOK_PARAMETERS[param]})")
        axes[param] = [_checked(path, f"{key}.grid.{param}[{i}]", param, v) for i, v in enumerate(values)]
    base = {**own, **defaults}
    tune = None
    if entry.get("tune") is not None:
        if "tuning" not in own:
            raise _fail(path, f"{key}.tune", f"{name} has no 'tuning' parameter; tune with a notebook that has it "
                                             f"(e.g. notebooks/07_objectives_train.ipynb)")
        tune = _tune(path, f"{key}.tune", entry["tune"], axes, {**base, **{k: v[0] for k, v in axes.items()}})
        final = (("tuning", False), ("generation_prefixes", base.get("generation_prefixes", 0)))
        base = {**base, "tuning": True, "generation_prefixes": 0}
    points = []
    for combination in itertools.product(*axes.values()):
        parameters = {**base, **dict(zip(axes, combination, strict=True))}
        for param in SWEEP_OWNED:
            parameters.pop(param, None)
        points.append(Point(notebook, parameters, index, setting, tune, final if tune else ()))
    return points
