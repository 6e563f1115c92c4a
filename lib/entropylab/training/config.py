"""A run's configuration (:class:`RunConfig`): validation, its identity, the identity's hash and its folder name.

A run is its whole resolved config: objective and its parameter, head, dataset, split, validation fraction,
split seed, seed, epochs, batch size, learning rate, model sizes, Keras backend, XLA, TensorFlow threads and
sequence cap (everything but where the data lives). Two configs with the same identity give the same numbers
on one machine; any difference gives another folder name, ``<readable slug>-<8 hex digits of the identity's
SHA-256>``, so runs that differ in head, learning rate or split live side by side in one experiment.
Nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .. import objectives

SPLIT_MODES = ("tail", "headline")
#: The corpora a run trains on (:data:`entropylab.data.load.CORPORA`): the NYT headlines, the bigram world
#: (``synthetic``, a first-order Markov source) and the hidden-state (topic) source (``hidden_state``).
DATASETS = ("nyt", "synthetic", "hidden_state")
#: The datasets whose corpus takes options; they come from :attr:`RunConfig.synthetic` (the field keeps the name
#: it had when the bigram world was the only synthetic corpus, so stored runs keep their identity).
SYNTHETIC_DATASETS = ("synthetic", "hidden_state")
BACKENDS = ("tensorflow", "jax")
#: Where a run's training batches come from: TensorFlow's ``tf.data`` (the TensorFlow backend's default, which
#: every stored TensorFlow run used) or the seeded NumPy batcher (:mod:`entropylab.data.batches`; the only one on
#: JAX, so that nothing imports TensorFlow there).
INPUT_PIPELINES = ("tf.data", "numpy")
THREADS_ENV_VAR = "ENTROPYLAB_THREADS"
#: The default of :attr:`RunConfig.init_nudge_ulps` (``make nbval-refresh`` sets it for its robustness pass).
NUDGE_ENV_VAR = "ENTROPYLAB_INIT_NUDGE_ULPS"
#: The largest nudge: 2^20 ulps is a relative change of 1/8, far past any rounding, and never crosses zero.
MAX_NUDGE_ULPS = 2**20
HASH_LENGTH = 8
#: Fields added after runs were first stored, with the default under which a run's identity omits them:
#: ``patience`` (early stopping on validation cross-entropy; ``None``: train every epoch), ``tuning`` (train
#: and validate on a carve of the training split, never touching the validation split) and
#: ``generation_prefixes`` (how many validation prefixes the generation metrics continue; 0: none) and
#: ``input_pipeline`` (``tf.data``, as before, or ``numpy``) and ``init_nudge_ulps`` (0: the initial weights as
#: built) and ``test_fraction`` (the share of a test side read once after training; 0: none, the validation side
#: is reported).
LATER_FIELDS: dict[str, Any] = {"patience": None, "tuning": False, "generation_prefixes": 0,
                                "input_pipeline": "tf.data", "init_nudge_ulps": 0, "test_fraction": 0.0}
#: ``split_seed`` given as this word takes the run's ``seed``: each seed of a study then holds out its own
#: headlines, so the seeds' spread covers which headlines were held out, not only the initialisation.
SPLIT_SEED_FROM_SEED = "seed"


def current_backend() -> str:
    """The Keras backend of this process (``$KERAS_BACKEND``, default TensorFlow), without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


#: The backend a sweep trains on when neither ``$KERAS_BACKEND`` nor its file names one: Keras on JAX, measured
#: faster on this project's CPU shapes (``docs/performance.md``, "Which backend the sweeps train on").
SWEEP_BACKEND = "jax"


def sweep_backend(file_backend: str | None = None) -> str:
    """The Keras backend a sweep's runs train on: ``$KERAS_BACKEND`` when set, else the parameter file's
    ``backend``, else :data:`SWEEP_BACKEND` where JAX is installed and TensorFlow where it is not."""
    import importlib.util

    chosen = os.environ.get("KERAS_BACKEND") or file_backend
    if chosen is None:
        chosen = SWEEP_BACKEND if importlib.util.find_spec(SWEEP_BACKEND) is not None else "tensorflow"
    if chosen not in BACKENDS:
        raise ValueError(f"unknown Keras backend {chosen!r} (from $KERAS_BACKEND); use one of {', '.join(BACKENDS)}")
    return chosen


def _count_from_environment(name: str) -> int:
    """The integer ``>= 0`` in ``$name`` (unset or empty: 0); anything else is a ``ValueError`` naming the variable."""
    value = os.environ.get(name, "") or "0"
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"${name} must be an integer >= 0, got {value!r}")
    return count


def current_threads() -> int:
    """TensorFlow threads per pool for runs of this process (``$ENTROPYLAB_THREADS``; 0: TensorFlow's default)."""
    return _count_from_environment(THREADS_ENV_VAR)


def current_nudge() -> int:
    """Ulps by which runs of this process nudge their initial weights (``$ENTROPYLAB_INIT_NUDGE_ULPS``; 0: none)."""
    return _count_from_environment(NUDGE_ENV_VAR)


@dataclass
class RunConfig:
    """Everything that decides a run's numbers, and where its data comes from (``data_dir``, not identity).

    ``weight`` is the objective's one parameter, whatever it is (a penalty weight, a smoothing amount or an
    exponent: :func:`entropylab.objectives.parameter_name`). ``head=None`` takes the objective's head;
    ``backend=None`` and ``threads=None`` take this process's (``$KERAS_BACKEND``, ``$ENTROPYLAB_THREADS``), and
    ``input_pipeline=None`` the backend's (``tf.data`` on TensorFlow, the seeded NumPy batcher on JAX), so a config
    always holds the values its run used.

    ``init_nudge_ulps = k > 0`` moves every non-zero initial weight ``k`` float32 steps (ulps) up or down, each
    direction drawn from the run's seed (:func:`entropylab.training.train.nudge_initial_weights`): a stand-in
    for another CPU's rounding, with which ``make nbval-refresh`` checks that no checked notebook cell depends on
    the last digits. ``None`` takes ``$ENTROPYLAB_INIT_NUDGE_ULPS`` (default 0: no nudge).

    ``synthetic`` holds the options of a synthetic corpus, for either of :data:`SYNTHETIC_DATASETS`: the keyword
    arguments of :func:`entropylab.data.synthetic.make_synthetic_corpus` (``dataset="synthetic"``) or of
    :func:`entropylab.data.hidden_state.make_hidden_state_corpus` (``dataset="hidden_state"``); the NYT corpus
    takes none.

    ``test_fraction > 0`` holds out a third side (:meth:`entropylab.data.Corpus.split`): the validation side is then
    the dev side, on which early stopping, the best epoch and every study's choices are made, and the test side is
    read once, after training, as the run's reported numbers (``metrics["test"]``). ``split_seed="seed"`` takes
    the run's ``seed`` as the split seed.
    """

    dataset: str = "nyt"
    data_dir: str | None = None
    loss: str = objectives.CONTROL
    weight: float = 0.0
    head: str | None = None
    epochs: int = 5
    batch_size: int = 32
    seed: int = 0
    split: str = "tail"
    val_fraction: float = 0.2
    split_seed: int = 0
    embedding_dim: int = 10
    lstm_units: int = 100
    dropout: float = 0.1
    learning_rate: float = 1e-3
    max_sequences: int | None = None
    jit_compile: bool = True
    backend: str | None = None
    threads: int | None = None
    synthetic: dict[str, Any] = field(default_factory=dict)
    patience: int | None = None
    tuning: bool = False
    generation_prefixes: int = 0
    input_pipeline: str | None = None
    init_nudge_ulps: int | None = None
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        self.synthetic = dict(self.synthetic or {})  # a file's or notebook's null: the source's defaults
        if not all(isinstance(k, str) for k in self.synthetic):
            raise ValueError(f"synthetic must map option names to values, got {self.synthetic!r}")
        if self.split_seed == SPLIT_SEED_FROM_SEED:
            self.split_seed = self.seed
        objective = objectives.get(self.loss)
        self.weight = objective.check(self.weight)
        self.head = self.head or objective.head
        if self.head not in ("linear", "softmax"):
            raise ValueError(f"unknown head {self.head!r}; use 'linear' or 'softmax'")
        if self.head != objective.head:
            raise ValueError(f"loss {self.loss!r} works on the {objective.head!r} head, not {self.head!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; use one of {', '.join(DATASETS)}")
        if self.split not in SPLIT_MODES:
            raise ValueError(f"unknown split {self.split!r}; use one of {', '.join(SPLIT_MODES)}")
        for name in ("epochs", "batch_size", "embedding_dim", "lstm_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "split_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
                raise ValueError(f"{name} must be an integer in [0, 2**32), got {value!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be strictly between 0 and 1, got {self.val_fraction}")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) \
                or not 0.0 <= float(self.test_fraction) < 1.0 - float(self.val_fraction):
            raise ValueError(f"test_fraction must be >= 0 (0: no test side) and leave a training side "
                             f"(val_fraction + test_fraction < 1), got {self.test_fraction!r}")
        self.test_fraction = float(self.test_fraction)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if self.max_sequences is not None and (not isinstance(self.max_sequences, int) or self.max_sequences < 2):
            raise ValueError(f"max_sequences must be at least 2 (or None for all), got {self.max_sequences!r}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be null (no early stopping) or an integer >= 1, got {self.patience!r}")
        if not isinstance(self.tuning, bool):
            raise ValueError(f"tuning must be true or false, got {self.tuning!r}")
        if isinstance(self.generation_prefixes, bool) or not isinstance(self.generation_prefixes, int) \
                or self.generation_prefixes < 0:
            raise ValueError(f"generation_prefixes must be an integer >= 0 (0: no generation metrics), "
                             f"got {self.generation_prefixes!r}")
        self.backend = self.backend or current_backend()
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown Keras backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        self.input_pipeline = self.input_pipeline or ("tf.data" if self.backend == "tensorflow" else "numpy")
        if self.input_pipeline not in INPUT_PIPELINES:
            raise ValueError(f"unknown input_pipeline {self.input_pipeline!r}; use one of {', '.join(INPUT_PIPELINES)}")
        if self.input_pipeline == "tf.data" and self.backend != "tensorflow":
            raise ValueError(f"input_pipeline 'tf.data' needs the tensorflow backend; on {self.backend!r} use 'numpy' "
                             f"(the default there), which imports no TensorFlow")
        self.threads = current_threads() if self.threads is None else self.threads
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0: TensorFlow's default), got {self.threads!r}")
        self.init_nudge_ulps = current_nudge() if self.init_nudge_ulps is None else self.init_nudge_ulps
        if isinstance(self.init_nudge_ulps, bool) or not isinstance(self.init_nudge_ulps, int) \
                or not 0 <= self.init_nudge_ulps <= MAX_NUDGE_ULPS:
            raise ValueError(f"init_nudge_ulps must be an integer in [0, {MAX_NUDGE_ULPS}] (0: no nudge), "
                             f"got {self.init_nudge_ulps!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """A config from a mapping (a stored ``config.json``, a notebook's parameters); unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **values: Any) -> RunConfig:
        """A copy with ``values`` changed (validated again)."""
        return RunConfig.from_dict({**self.to_dict(), **values})

    def identity(self) -> dict[str, Any]:
        """Every field that decides the numbers (all but ``data_dir``), as stored in ``config.json``.

        The fields added after the first studies (:data:`LATER_FIELDS`) are left out while at their default,
        so a run trained before they existed keeps its name (its numbers are those of the default)."""
        values = self.to_dict()
        values.pop("data_dir")
        for name, default in LATER_FIELDS.items():
            if values.get(name) == default:
                values.pop(name)
        return values

    @property
    def identity_hash(self) -> str:
        """The first 8 hex digits of the SHA-256 of the identity (sorted-key JSON): a short, stable name."""
        return identity_hash(self.identity())

    @property
    def parameter(self) -> str:
        """What ``weight`` is for this objective: ``weight``, ``smoothing``, ``exponent`` or ``none``."""
        return objectives.parameter_name(self.loss)

    @property
    def slug(self) -> str:
        """The readable part of the folder name, e.g. ``kl_regularized_w10_seed0``."""
        weight = f"_w{self.weight:g}" if objectives.get(self.loss).takes_parameter else ""
        return f"{self.loss}{weight}_seed{self.seed}{'_tuning' if self.tuning else ''}"

    @property
    def run_name(self) -> str:
        """The run folder's name: ``<slug>-<identity hash>``, e.g. ``kl_regularized_w10_seed0-3f9c2a1b``."""
        return f"{self.slug}-{self.identity_hash}"


def identity_hash(identity: dict[str, Any]) -> str:
    """:attr:`RunConfig.identity_hash` of an identity mapping."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf8")).hexdigest()[:HASH_LENGTH]


#: Identity fields that become columns of the results table, in this order (``loss`` as ``objective``).
IDENTITY_COLUMNS = ("dataset", "objective", "parameter", "weight", "head", "seed", "split", "val_fraction",
                    "split_seed", "epochs", "batch_size", "learning_rate", "embedding_dim", "lstm_units", "dropout",
                    "max_sequences", "backend", "jit_compile", "threads", "patience", "tuning",
                    "generation_prefixes", "test_fraction")


def identity_columns(config: dict[str, Any]) -> dict[str, Any]:
    """The :data:`IDENTITY_COLUMNS` of a stored config (``config.json``): ``objective`` is its ``loss`` and
    ``parameter`` names what ``weight`` is."""
    values = {**config, "objective": config.get("loss")}
    values["parameter"] = objectives.parameter_name(values["objective"]) if values["objective"] in \
        objectives.OBJECTIVES else ""
    for name, default in LATER_FIELDS.items():
        values.setdefault(name, default)
    return {column: values.get(column) for column in IDENTITY_COLUMNS}
