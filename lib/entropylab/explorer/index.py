"""The explorer's logic without widgets: the index of finished runs, which run a selection shows, words and Train.

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


@dataclass(frozen=True)
class RunKey:
    """What a run is grouped by in the explorer; ``weight`` is the objective's parameter (0 without one)."""

    dataset: str
    loss: str
    weight: float
    seed: int

    @classmethod
    def of(cls, dataset: str, loss: str, weight: float, seed: int) -> RunKey:
        takes_parameter = objectives.get(loss).takes_parameter
        return cls(str(dataset), str(loss), canonical_weight(weight) if takes_parameter else 0.0, int(seed))

    def describe(self) -> str:
        """``kl_regularized weight=10 seed 0 (nyt)``."""
        return f"{objectives.describe(self.loss, self.weight)} seed {self.seed} ({self.dataset})"


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
                         c.get("seed", 0))

    @property
    def profile(self) -> tuple:
        """Everything but loss, weight, seed (and where the data lives): runs with equal profiles compare."""
        return tuple(sorted((k, repr(v)) for k, v in self.config.items() if k not in _PROFILE_IGNORES))

    @property
    def preference(self) -> tuple:
        """Among runs of one key, the shown one: full data first, then more epochs, then the newest."""
        c = self.config
        return (c.get("max_sequences") is None, int(c.get("epochs", 0)), self.finished_at)

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
    """What the explorer shows for one choice of dataset, objective, parameter and seed.

    ``shown`` is the finished run of the requested key or, when there is none (``exact`` is False), the
    nearest one (same seed and nearest parameter in log scale, else the nearest seed); ``control`` is the MSE
    run with the same dataset, seed and profile as ``shown`` (else the closest there is).
    """

    requested: RunKey
    shown: FinishedRun | None
    control: FinishedRun | None
    exact: bool
    message: str


class Explorer:
    """The explorer's logic over ``<outputs>/runs`` (no widgets; :class:`entropylab.explorer.ExplorerWidget`
    shows it). It groups finished runs (``COMPLETE`` marker) by :class:`RunKey`, answers which run a selection
    shows (drawn by :mod:`.render`), continues seed texts with cached models, and plans and runs a Train press.

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

    def weights(self, dataset: str, loss: str) -> list[float]:
        """Finished parameter values of one dataset and objective, ascending."""
        return sorted({k.weight for k in self._by_key if k.dataset == dataset and k.loss == loss})

    def seeds(self, dataset: str, loss: str | None = None) -> list[int]:
        return sorted({k.seed for k in self._by_key if k.dataset == dataset and loss in (None, k.loss)})

    def get(self, key: RunKey) -> FinishedRun | None:
        """The preferred finished run of exactly ``key`` (full data, most epochs, newest), or None."""
        group = self._by_key.get(key)
        return group[0] if group else None

    def nearest(self, key: RunKey) -> FinishedRun | None:
        """The finished run closest to ``key`` within its dataset and objective: same seed if there is one
        (then the nearest parameter, in log scale where :func:`on_log_scale`), else the nearest seed."""
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
            return (k.seed != key.seed, dw, abs(k.seed - key.seed), k.seed, k.weight)

        return self.get(min(candidates, key=distance))

    def control_for(self, run: FinishedRun | None, dataset: str, seed: int) -> FinishedRun | None:
        """The control (MSE) run to draw against: same dataset and seed, the same profile if possible."""
        controls = [r for r in self.runs if r.key.dataset == dataset and r.key.loss == objectives.CONTROL]
        if not controls:
            return None
        profile = run.profile if run is not None else None

        def rank(r: FinishedRun) -> tuple:
            return (r.key.seed == seed, r.profile == profile, -abs(r.key.seed - seed), r.preference)

        return max(controls, key=rank)

    def select(self, dataset: str, loss: str, weight: float, seed: int) -> Selection:
        """The run shown for a choice of controls, its control, and the message that says which it is."""
        key = RunKey.of(dataset, loss, weight, seed)
        exact = self.get(key)
        shown = exact or self.nearest(key)
        control = self.control_for(shown, key.dataset, key.seed)
        if exact is not None:
            message = f"Showing {key.describe()}: {exact.label}"
        elif shown is not None:
            message = (f"No finished run for {key.describe()}; showing the nearest, "
                       f"{shown.key.describe()}: {shown.label}")
        else:
            message = f"No finished run for {objectives.get(key.loss).label} on {key.dataset} yet"
        return Selection(key, shown, control, exact is not None, message)

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
        """The corpus a run was trained on (cached; a stored data folder that no longer exists is looked up)."""
        from ..data import load_corpus

        dataset = config.get("dataset", "nyt")
        data_dir = config.get("data_dir")
        if data_dir is not None and not Path(data_dir).is_dir():
            data_dir = None
        options = (config.get("synthetic") or {}) if dataset in SYNTHETIC_DATASETS else {}
        cache_key = repr((dataset, data_dir, sorted(options.items())))
        with self._lock:
            if cache_key not in self._corpora:
                self._corpora[cache_key] = load_corpus(dataset, data_dir, **options)
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

        The config copies the profile of the shown run (else the control, else the defaults): data, split and
        split seed, sizes, schedule, threads; it sets the requested objective, parameter and seed, the
        objective's head, and this process's Keras backend (the only one it can train). The folder is
        ``<experiment>/<config.run_name>`` in the template's experiment, so the new run sits beside its
        neighbours (``<outputs>/runs/explorer`` when there is none, or when the folder holds another run).
        """
        from ..data import resolve_dataset
        from ..training import RunConfig

        key = selection.requested
        template = selection.shown or selection.control
        if template is not None:
            values = dict(template.config)
            values.update(loss=key.loss, weight=key.weight, seed=key.seed, head=None, backend=None)
            if values.get("data_dir") is not None and not Path(values["data_dir"]).is_dir():
                values["data_dir"] = None  # moved since: looked up again
            config = RunConfig.from_dict(values)
            experiment = template.experiment
        else:
            dataset = key.dataset if key.dataset in DATASETS else resolve_dataset("auto")
            config = RunConfig(dataset=dataset, loss=key.loss, weight=key.weight, seed=key.seed)
            experiment = EXPLORER_EXPERIMENT
        run_dir = self.runs_root / experiment / config.run_name
        if store.identity_state(run_dir, config.identity()) == "other":
            run_dir = self.runs_root / EXPLORER_EXPERIMENT / config.dataset / config.run_name
        return config, run_dir

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
