"""The explorer's logic without widgets: the index of finished runs, which run a selection shows, words and Train.

Runs are told apart by objective, parameter and seed, and by their **sizes**: the model size ``E/U`` (embedding
dimension / LSTM units) and the data size (``max_sequences``, ``all`` for the whole corpus), so the runs of a scale
study (several model and data sizes of one objective) stay apart. A request may leave a size open (``None``): then
the preferred run of any size is shown (:attr:`FinishedRun.preference`).

Nothing here draws: :mod:`.render` turns a :class:`Selection` into PNG and HTML (it imports this module, not the
reverse)."""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import objectives, paths
from ..training import store
from ..training.config import DATASETS, SYNTHETIC_DATASETS

SYNTHETIC_SEED_TEXTS = 6
N_WORDS = 10  # words a continuation adds after the seed text
EXPLORER_EXPERIMENT = "explorer"


def canonical_weight(weight: float) -> float:
    """An objective's parameter rounded to 3 significant digits (0 stays 0); negative or non-finite is an error."""
    value = objectives.check_number(weight, "weight")
    return 0.0 if value == 0.0 else float(f"{value:.3g}")


def on_log_scale(loss: str) -> bool:
    """Whether an objective's parameter is compared (and chosen) on a log scale: weights and exponents are,
    a smoothing amount in ``[0, 1)`` is not."""
    return objectives.get(loss).parameter in ("weight", "exponent")


#: The sizes a run is told apart by beyond objective, parameter and seed (:class:`RunKey` fields).
SIZES = ("model", "data")
ALL_DATA = "all"  # the data size of a run on the whole corpus (max_sequences None)
_DEFAULT_MODEL = (10, 100)  # RunConfig's embedding_dim and lstm_units, for a config that lacks them


def model_size(config: dict[str, Any]) -> str:
    """A run's model size, ``E/U``: its embedding dimension and LSTM units (``8/16``)."""
    return f"{int(config.get('embedding_dim', _DEFAULT_MODEL[0]))}/{int(config.get('lstm_units', _DEFAULT_MODEL[1]))}"


def data_size(config: dict[str, Any]) -> str:
    """A run's data size: its ``max_sequences`` cap (``1200``), or :data:`ALL_DATA` for the whole corpus."""
    cap = config.get("max_sequences")
    return ALL_DATA if cap is None else str(int(cap))


def size_order(size: str) -> tuple:
    """Sort key of a model or data size: by number (``4/8`` before ``8/16`` before ``16/8``, ``300`` before
    ``1200``), :data:`ALL_DATA` last."""
    if size == ALL_DATA:
        return (1, ())
    try:
        return (0, tuple(int(part) for part in size.split("/")))
    except ValueError:
        raise ValueError(f"unknown size {size!r}; use 'E/U' (a model size), a number of sequences or "
                         f"{ALL_DATA!r}") from None


def size_fields(model: str | None, data: str | None) -> dict[str, Any]:
    """The config fields of a model size ``E/U`` and a data size (``None``: not given, left out)."""
    fields: dict[str, Any] = {}
    if model is not None:
        parts = model.split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"unknown model size {model!r}; use 'E/U' (embedding dimension / LSTM units, e.g. '8/16')")
        fields["embedding_dim"], fields["lstm_units"] = int(parts[0]), int(parts[1])
    if data is not None:
        if data != ALL_DATA and not data.strip().isdigit():
            raise ValueError(f"unknown data size {data!r}; use a number of sequences or {ALL_DATA!r}")
        fields["max_sequences"] = None if data == ALL_DATA else int(data)
    return fields


@dataclass(frozen=True)
class RunKey:
    """What a run is grouped by in the explorer; ``weight`` is the objective's parameter (0 without one),
    ``model`` the model size ``E/U`` and ``data`` the data size (a number of sequences or ``all``).

    A finished run's key has every field; a requested key may leave ``model`` or ``data`` as ``None`` (any size:
    :meth:`matches`)."""

    dataset: str
    loss: str
    weight: float
    seed: int
    model: str | None = None
    data: str | None = None

    @classmethod
    def of(cls, dataset: str, loss: str, weight: float, seed: int, model: str | None = None,
           data: str | None = None) -> RunKey:
        takes_parameter = objectives.get(loss).takes_parameter
        if model is not None or data is not None:
            size_fields(model, data)  # a malformed size is an error here, not an empty selection later
        return cls(str(dataset), str(loss), canonical_weight(weight) if takes_parameter else 0.0, int(seed),
                   None if model is None else str(model), None if data is None else str(data))

    def matches(self, request: RunKey) -> bool:
        """Whether this key is one ``request`` asks for: equal fields, a size ``None`` in the request matching any."""
        return ((self.dataset, self.loss, self.weight, self.seed) == (request.dataset, request.loss, request.weight,
                                                                      request.seed)
                and request.model in (None, self.model) and request.data in (None, self.data))

    def describe(self, sizes: tuple[str, ...] = SIZES) -> str:
        """``kl_regularized weight=10 seed 0 (nyt)``; with the sizes of ``sizes`` that are set,
        ``cross_entropy seed 1 (synthetic n=1200 8/16)`` (data size, then model size)."""
        where = [self.dataset]
        if "data" in sizes and self.data is not None:
            where.append(f"n={self.data}")
        if "model" in sizes and self.model is not None:
            where.append(self.model)
        return f"{objectives.describe(self.loss, self.weight)} seed {self.seed} ({' '.join(where)})"


# The config fields that make two runs comparable (same data, sizes, schedule, backend and threads).
_PROFILE_IGNORES = ("loss", "weight", "seed", "head", "data_dir")


@dataclass
class FinishedRun(store.RunRecord):
    """A finished run folder read back (:class:`store.RunRecord`), with its experiment and finishing time."""

    experiment: str = "."
    finished_at: float = 0.0

    @property
    def key(self) -> RunKey:
        c = self.config
        return RunKey.of(c.get("dataset", "nyt"), c.get("loss", objectives.CONTROL), c.get("weight", 0.0),
                         c.get("seed", 0), model_size(c), data_size(c))

    @property
    def profile(self) -> tuple:
        """Everything but loss, weight, seed (and where the data lives): runs with equal profiles compare."""
        return tuple(sorted((k, repr(v)) for k, v in self.config.items() if k not in _PROFILE_IGNORES))

    @property
    def preference(self) -> tuple:
        """Among the runs a request matches, the shown one: full data first, then more data, more epochs, the
        larger model (LSTM units, then embedding dimension), then the newest."""
        c = self.config
        cap = c.get("max_sequences")
        return (cap is None, int(cap or 0), int(c.get("epochs", 0)), int(c.get("lstm_units", _DEFAULT_MODEL[1])),
                int(c.get("embedding_dim", _DEFAULT_MODEL[0])), self.finished_at)

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run_dir.name}"


def read_finished_runs(runs_root: str | os.PathLike) -> list[FinishedRun]:
    """Every finished run under ``runs_root`` (any depth) that has a history and a known objective; tuning runs
    (trained and validated on a carve of the training split, :mod:`entropylab.experiments.tuning`) are left out,
    since their numbers are not on the validation split the other runs report, and so is a run whose files are
    damaged, with a warning naming the file and the fix."""
    runs_root = Path(runs_root)
    found = []

    def left_out(damage: store.DamagedFileError) -> None:  # one damaged run never hides the others
        warnings.warn(f"the explorer leaves out {damage.path.parent.name}: {damage}", stacklevel=3)

    for record in store.completed_runs(runs_root, on_damaged=left_out):
        if record.history.empty or not record.config or record.config.get("loss") not in objectives.OBJECTIVES \
                or record.config.get("tuning"):
            continue
        parent = record.run_dir.parent
        experiment = parent.relative_to(runs_root).as_posix() if parent != runs_root else "."
        finished = (record.run_dir / store.COMPLETE).stat().st_mtime
        found.append(FinishedRun(record.run_dir, record.config, record.history, record.metrics, record.status,
                                 experiment, finished))
    return found


@dataclass
class Selection:
    """What the explorer shows for one choice of dataset, objective, parameter, seed and sizes.

    ``shown`` is the finished run of the requested key or, when there is none (``exact`` is False), the
    nearest one (same sizes if there is one, then the same seed and nearest parameter in log scale, else the
    nearest seed); ``control`` is the MSE run with the same dataset, seed and profile as ``shown`` (else the
    closest there is, of the same sizes first). ``sizes`` are the sizes (of :data:`SIZES`) in which the
    dataset's runs differ: runs are named with those only (:meth:`name`).
    """

    requested: RunKey
    shown: FinishedRun | None
    control: FinishedRun | None
    exact: bool
    message: str
    sizes: tuple[str, ...] = ()

    def name(self, run: FinishedRun) -> str:
        """A run as the explorer names it: its key with the sizes that vary in its dataset."""
        return run.key.describe(self.sizes)


class Explorer:
    """The explorer's logic over ``<outputs>/runs`` (no widgets; :class:`entropylab.explorer.ExplorerWidget`
    shows it). It groups finished runs (``COMPLETE`` marker) by :class:`RunKey` (sizes included), answers which
    run a selection shows (drawn by :mod:`.render`), continues seed texts with cached models, and plans and runs a
    Train press.

    ``output_root``: the outputs folder (default ``$ENTROPYLAB_OUTPUTS`` or ``<project>/outputs``).
    """

    def __init__(self, output_root: str | os.PathLike | None = None, *, max_models: int = 16) -> None:
        self.outputs = paths.outputs_dir(output_root)
        self.runs_root = self.outputs / "runs"
        self.max_models = max_models
        self._models: OrderedDict[str, tuple[Any, Any, Any]] = OrderedDict()
        self._corpora: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.runs: list[FinishedRun] = []
        self.refresh()

    # -- the index ---------------------------------------------------------------------------------------

    def refresh(self) -> list[FinishedRun]:
        """Rescan the runs folder (after a sweep or a Train press added runs)."""
        found = read_finished_runs(self.runs_root)
        by_key: dict[RunKey, list[FinishedRun]] = {}
        for r in found:
            by_key.setdefault(r.key, []).append(r)
        for group in by_key.values():
            group.sort(key=lambda r: r.preference, reverse=True)
        with self._lock:  # readers see the old index or the new one, never half of one
            self.runs, self._by_key = found, by_key
        return found

    def datasets(self) -> list[str]:
        """Datasets with finished runs, ``nyt`` first."""
        return sorted({k.dataset for k in self._by_key}, key=lambda d: (d != "nyt", d))

    @staticmethod
    def objectives() -> list[str]:
        """Every objective of :data:`entropylab.objectives.OBJECTIVES`, the paper's first."""
        return list(objectives.OBJECTIVES)

    def sizes(self, dataset: str, size: str, loss: str | None = None) -> list[str]:
        """The model sizes (``size="model"``: ``E/U``) or data sizes (``"data"``: sequences, ``all``) of one
        dataset's finished runs (of ``loss`` only, when given), smallest first."""
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; use one of {', '.join(SIZES)}")
        found = {getattr(k, size) for k in self._by_key if k.dataset == dataset and loss in (None, k.loss)}
        return sorted(found, key=size_order)

    def varying_sizes(self, dataset: str) -> tuple[str, ...]:
        """The sizes (of :data:`SIZES`) in which ``dataset``'s finished runs differ: those the explorer offers a
        control for, and names runs by."""
        return tuple(size for size in SIZES if len(self.sizes(dataset, size)) > 1)

    def _keys(self, dataset: str, loss: str | None, model: str | None, data: str | None) -> list[RunKey]:
        return [k for k in self._by_key if k.dataset == dataset and loss in (None, k.loss)
                and model in (None, k.model) and data in (None, k.data)]

    def weights(self, dataset: str, loss: str, model: str | None = None, data: str | None = None) -> list[float]:
        """Finished parameter values of one dataset and objective (of one model and data size, when given),
        ascending."""
        return sorted({k.weight for k in self._keys(dataset, loss, model, data)})

    def seeds(self, dataset: str, loss: str | None = None, model: str | None = None,
              data: str | None = None) -> list[int]:
        """Finished seeds of one dataset (of one objective, model size and data size, when given), ascending."""
        return sorted({k.seed for k in self._keys(dataset, loss, model, data)})

    def get(self, key: RunKey) -> FinishedRun | None:
        """The preferred finished run that ``key`` asks for (:meth:`RunKey.matches`: a size left ``None`` matches
        any), by :attr:`FinishedRun.preference` (full data, more data, most epochs, larger model, newest), or None."""
        if key.model is not None and key.data is not None:
            group = self._by_key.get(key)
            return group[0] if group else None
        candidates = [group[0] for k, group in self._by_key.items() if k.matches(key)]
        return max(candidates, key=lambda r: r.preference) if candidates else None

    def nearest(self, key: RunKey) -> FinishedRun | None:
        """The finished run closest to ``key`` within its dataset and objective: of the requested sizes if there
        is one (model size first), then the same seed if there is one (then the nearest parameter, in log scale
        where :func:`on_log_scale`), else the nearest seed."""
        candidates = [k for k in self._by_key if k.dataset == key.dataset and k.loss == key.loss]
        if not candidates:
            return None

        log = on_log_scale(key.loss)

        def distance(k: RunKey) -> tuple:
            if not log:
                dw = abs(k.weight - key.weight)
            elif key.weight > 0 and k.weight > 0:
                dw = abs(math.log10(k.weight) - math.log10(key.weight))
            else:
                dw = 0.0 if k.weight == key.weight else math.inf
            other_model = key.model is not None and k.model != key.model
            other_data = key.data is not None and k.data != key.data
            return (other_model, other_data, k.seed != key.seed, dw, abs(k.seed - key.seed), k.seed, k.weight)

        closest = min(candidates, key=distance)
        # a size the request leaves open stays open: the preferred run of that seed and parameter, of any size
        return self.get(RunKey(closest.dataset, closest.loss, closest.weight, closest.seed,
                               closest.model if key.model is not None else None,
                               closest.data if key.data is not None else None))

    def control_for(self, run: FinishedRun | None, dataset: str, seed: int,
                    request: RunKey | None = None) -> FinishedRun | None:
        """The control (MSE) run to draw against: of the same dataset and sizes as ``run`` (as ``request`` without
        a run) if there is one, then the same seed, then the same profile if possible."""
        controls = [r for r in self.runs if r.key.dataset == dataset and r.key.loss == objectives.CONTROL]
        if not controls:
            return None
        profile = run.profile if run is not None else None
        model, data = (run.key.model, run.key.data) if run is not None else \
            ((request.model, request.data) if request is not None else (None, None))

        def rank(r: FinishedRun) -> tuple:
            same_sizes = model in (None, r.key.model) and data in (None, r.key.data)
            return (same_sizes, r.key.seed == seed, r.profile == profile, -abs(r.key.seed - seed), r.preference)

        return max(controls, key=rank)

    def select(self, dataset: str, loss: str, weight: float, seed: int, model: str | None = None,
               data: str | None = None) -> Selection:
        """The run shown for a choice of controls (``model``, ``data``: the model size ``E/U`` and the data size;
        ``None``: any), its control, and the message that says which it is."""
        key = RunKey.of(dataset, loss, weight, seed, model, data)
        sizes = self.varying_sizes(key.dataset)
        exact = self.get(key)
        shown = exact or self.nearest(key)
        control = self.control_for(shown, key.dataset, key.seed, key)
        if exact is not None:
            message = f"Showing {key.describe(sizes)}: {exact.label}"
        elif shown is not None:
            message = (f"No finished run for {key.describe(sizes)}; showing the nearest, "
                       f"{shown.key.describe(sizes)}: {shown.label}")
        else:
            message = f"No finished run for {objectives.get(key.loss).label} on {key.dataset} yet"
        return Selection(key, shown, control, exact is not None, message, sizes)

    # -- seed texts --------------------------------------------------------------------------------------

    def seed_texts(self, dataset: str) -> list[str]:
        """Seed texts to offer: the paper's six for NYT, the first words of a few headlines otherwise."""
        from ..studies.paper.reported import PAPER_SEED_TEXTS

        runs_of_dataset = [r for r in self.runs if r.key.dataset == dataset]
        if dataset == "nyt" or not runs_of_dataset:
            return list(PAPER_SEED_TEXTS)
        corpus = self.corpus_for(runs_of_dataset[0].config)
        texts: list[str] = []
        for headline in corpus.headlines:
            text = " ".join(headline.split()[:2])
            if text not in texts:
                texts.append(text)
            if len(texts) >= SYNTHETIC_SEED_TEXTS:
                break
        return texts

    # -- models and words --------------------------------------------------------------------------------

    def corpus_for(self, config: dict[str, Any]) -> Any:
        """The corpus a run was trained on (cached; a stored data folder that no longer exists is looked up): the
        NYT headlines, or a synthetic source (``synthetic``, ``hidden_state``) made with the config's ``synthetic``
        options. The whole corpus: a run's ``max_sequences`` cap only limits what it trained on."""
        from ..data import load_corpus

        dataset = config.get("dataset", "nyt")
        data_dir = config.get("data_dir")
        if data_dir is not None and not Path(data_dir).is_dir():
            data_dir = None
        options = (config.get("synthetic") or {}) if dataset in SYNTHETIC_DATASETS else {}
        cache_key = repr((dataset, data_dir, sorted(options.items())))
        with self._lock:
            if cache_key not in self._corpora:
                try:
                    self._corpora[cache_key] = load_corpus(dataset, data_dir, **options)
                except TypeError as exc:  # an option the source does not have
                    raise ValueError(f"synthetic: {exc}; the run's config names an option the {dataset!r} source "
                                     f"does not have (entropylab.data)") from None
            return self._corpora[cache_key]

    def model_for(self, run: FinishedRun) -> tuple[Any, Any, Any]:
        """``(model, corpus, config)`` of a finished run, loaded once and cached (least recently used dropped)."""
        from ..training import load_trained

        cache_key = str(run.run_dir)
        with self._lock:
            if cache_key in self._models:
                self._models.move_to_end(cache_key)
                return self._models[cache_key]
            loaded = load_trained(run.run_dir, corpus=self.corpus_for(run.config))
            self._models[cache_key] = loaded
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return loaded

    def continuation(self, run: FinishedRun, seed_text: str, n_words: int = N_WORDS,
                     decoder: str = "greedy", value: float | None = None,
                     sampling_seed: int = 0) -> tuple[list[str], str]:
        """The next ``n_words`` words of ``run`` after ``seed_text`` by ``decoder`` (a name of
        :data:`entropylab.decoding.DECODERS`, its slider at ``value``, sampling with ``sampling_seed``), and a
        note on skipped seed words: :func:`entropylab.decoding.continue_text`."""
        from ..data import UnknownWordsWarning
        from ..decoding import continue_text, get_decoder

        strategy, params = get_decoder(decoder).arguments(value)
        model, corpus, config = self.model_for(run)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownWordsWarning)
            words = continue_text(model, corpus, seed_text, n_words, head=config.head, strategy=strategy,
                                  seed=sampling_seed, **params).words
        notes = [str(w.message) for w in caught if issubclass(w.category, UnknownWordsWarning)]
        return words, "; ".join(notes)

    # -- training what is missing ------------------------------------------------------------------------

    def train_plan(self, selection: Selection) -> tuple[Any, Path]:
        """The config and run folder a Train press would create for ``selection.requested``.

        The config copies the profile of a template run (:meth:`template_for`: the shown run, else the control,
        else a run of the requested sizes, else the defaults): data, split and split seed, sizes, dropout,
        schedule, threads; it sets the requested objective, parameter, seed and sizes (those given), the
        objective's head, and this process's Keras backend (the only one it can train). The folder is
        ``<experiment>/<config.run_name>`` in the template's experiment, so the new run sits beside its
        neighbours (``<outputs>/runs/explorer`` when there is none, or when the folder holds another run).
        """
        from ..data import resolve_dataset
        from ..training import RunConfig

        key = selection.requested
        sizes = size_fields(key.model, key.data)
        template = self.template_for(selection)
        if template is not None:
            values = dict(template.config)
            values.update(loss=key.loss, weight=key.weight, seed=key.seed, head=None, backend=None, **sizes)
            if values.get("data_dir") is not None and not Path(values["data_dir"]).is_dir():
                values["data_dir"] = None  # moved since: looked up again
            config = RunConfig.from_dict(values)
            experiment = template.experiment
        else:
            dataset = key.dataset if key.dataset in DATASETS else resolve_dataset("auto")
            config = RunConfig(dataset=dataset, loss=key.loss, weight=key.weight, seed=key.seed, **sizes)
            experiment = EXPLORER_EXPERIMENT
        run_dir = self.runs_root / experiment / config.run_name
        if store.identity_state(run_dir, config.identity()) == "other":
            run_dir = self.runs_root / EXPLORER_EXPERIMENT / config.dataset / config.run_name
        return config, run_dir

    def template_for(self, selection: Selection) -> FinishedRun | None:
        """The run whose settings a Train press copies: the shown run, else the control, when it has the
        requested sizes; else the dataset's run of those sizes (same objective, then same seed, then
        :attr:`FinishedRun.preference`), so a new run of a scale study's cell takes that cell's settings (its
        dropout, say); else the shown run or the control (its sizes then replaced), else None."""
        key = selection.requested

        def fits(r: FinishedRun) -> bool:
            return r.key.dataset == key.dataset and key.model in (None, r.key.model) and key.data in (None, r.key.data)

        for candidate in (selection.shown, selection.control):
            if candidate is not None and fits(candidate):
                return candidate
        of_sizes = [r for r in self.runs if fits(r)]
        if of_sizes:
            return max(of_sizes, key=lambda r: (r.key.loss == key.loss, r.key.seed == key.seed, r.preference))
        return selection.shown or selection.control

    def train(self, config: Any, run_dir: str | os.PathLike,
              progress: Callable[[int, int, int, int], None] | None = None) -> Any:
        """Train (or reuse) one run with :func:`entropylab.training.run`, reporting ``progress(epoch, epochs,
        step, steps)``; the new run is cached and the index refreshed."""
        from ..training import run
        from ..training.callbacks import Progress

        callbacks = [Progress(progress)] if progress is not None else []
        result = run(config, run_dir, callbacks=callbacks, verbose=0)
        if result.status != "complete":
            raise RuntimeError(f"training {config.run_name} failed: {result.metrics.get('reason')}")
        if result.model is not None and result.corpus is not None:
            with self._lock:
                self._models[str(Path(run_dir))] = (result.model, result.corpus, result.config)
        self.refresh()
        return result
