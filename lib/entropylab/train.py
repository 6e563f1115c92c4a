"""One experiment from a plain config: seed, load, build, fit, evaluate each epoch, save atomically."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import resource
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import losses as losses_module
from . import runs
from .data import SPLIT_MODES, Corpus, load_corpus
from .model import build_model, check_head

DEFAULT_OUTPUT_ROOT = Path("outputs") / "runs"


@dataclass
class RunConfig:
    """Everything that decides a run's numbers (and where its data comes from)."""

    dataset: str = "nyt"
    data_dir: str | None = None
    loss: str = "mse"
    weight: float = 0.0
    head: str | None = None  # None: the loss's own head
    epochs: int = 5
    batch_size: int = 32
    seed: int = 0
    split: str = "tail"
    val_fraction: float = 0.2
    embedding_dim: int = 10
    lstm_units: int = 100
    dropout: float = 0.1
    learning_rate: float = 1e-3
    max_sequences: int | None = None
    jit_compile: bool = True
    synthetic: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cls = losses_module.loss_class(self.loss)
        self.weight = losses_module.check_weight(self.weight)
        if not cls.takes_weight and self.weight != 0.0:
            raise ValueError(f"loss {self.loss!r} takes no weight (got {self.weight}); weighted losses: "
                             f"{', '.join(n for n, c in losses_module.LOSSES.items() if c.takes_weight)}")
        losses_module.get(self.loss, weight=self.weight if cls.takes_weight else None)  # checks its range
        self.head = check_head(self.head or cls.head)
        if self.head != cls.head:
            raise ValueError(f"loss {self.loss!r} works on the {cls.head!r} head, not {self.head!r}")
        if self.split not in SPLIT_MODES:
            raise ValueError(f"unknown split {self.split!r}; use one of {', '.join(SPLIT_MODES)}")
        for name in ("epochs", "batch_size", "embedding_dim", "lstm_units"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if self.max_sequences is not None and int(self.max_sequences) < 2:
            raise ValueError(f"max_sequences must be at least 2 (or None for all), got {self.max_sequences}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the numbers (where the data lives does not)."""
        values = self.to_dict()
        values.pop("data_dir")
        return values

    @property
    def slug(self) -> str:
        """A readable folder name, e.g. ``kl_regularized_w10_seed0``."""
        weight = f"_w{self.weight:g}" if losses_module.loss_class(self.loss).takes_weight else ""
        return f"{self.loss}{weight}_seed{self.seed}"


@dataclass
class RunResult:
    config: RunConfig
    history: pd.DataFrame
    metrics: dict[str, Any]
    status: str  # "complete" or "failed"
    run_dir: Path | None = None
    model: Any = None
    corpus: Corpus | None = None
    reused: bool = False


def configure_tensorflow(threads: int | None = None) -> None:
    """Quiet logs and set TensorFlow's thread pools (``threads`` per pool; before TF starts running ops)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    threads = threads or int(os.environ.get("ENTROPYLAB_THREADS", "0")) or None
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # the runtime already started; keep what it has
            pass


def seed_everything(seed: int, op_determinism: bool = True) -> None:
    """Python, NumPy and backend seeds and, with ``op_determinism``, TensorFlow's deterministic kernels.

    Keras turns XLA off once op determinism is on, so an XLA run (``jit_compile=True``) relies on XLA's CPU
    code being deterministic instead; ``tests/test_train.py`` checks both paths give identical histories.
    Op determinism is process-wide: without ``op_determinism`` it is switched off again, or an XLA run after a
    non-XLA one in the same process (a test session, a notebook kernel) would silently run without XLA.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if op_determinism:
            tf.config.experimental.enable_op_determinism()
        else:
            _disable_op_determinism()


def _disable_op_determinism() -> None:
    try:
        from tensorflow.python.framework import config as tf_config
    except ImportError:  # pragma: no cover - a TensorFlow without the private switch: nothing to undo
        return
    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1024 * 1024) if platform.system() == "Darwin" else usage / 1024


def training_dataset(x: Any, y: Any, batch_size: int, seed: int) -> tuple[Any, int]:
    """Shuffled (each epoch, seeded) batches that repeat; returns the dataset and the steps per epoch.

    Every epoch sees each training example once, in batches of ``batch_size`` and one smaller last batch,
    as ``fit(x, y, shuffle=True)`` does, without its per-epoch iterator start-up.
    """
    import tensorflow as tf

    steps = math.ceil(len(y) / batch_size)
    dataset = (tf.data.Dataset.from_tensor_slices((x, y))
               .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size)
               .repeat()
               .prefetch(tf.data.AUTOTUNE))
    return dataset, steps


def current_backend() -> str:
    """The Keras backend this process uses (``KERAS_BACKEND``, default TensorFlow), without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _stored_backend(run_dir: Path) -> str | None:
    path = run_dir / runs.METRICS
    return runs.read_json(path).get("versions", {}).get("backend") if path.is_file() else None


def _prepare_run_dir(run_dir: Path, config: RunConfig, force: bool) -> bool:
    """True when ``run_dir`` already holds this finished run (reuse it)."""
    config_path = run_dir / runs.CONFIG
    if config_path.is_file():
        stored = runs.read_json(config_path)
        stored_identity = {k: v for k, v in stored.items() if k != "data_dir"}
        if stored_identity != config.identity() and runs.is_complete(run_dir) and not force:
            raise FileExistsError(
                f"{run_dir} holds a finished run of another config; use another experiment folder "
                f"or force=True to overwrite it")
        if stored_identity == config.identity() and runs.is_complete(run_dir) and not force:
            stored_backend = _stored_backend(run_dir)
            if stored_backend not in (None, current_backend()):
                raise FileExistsError(
                    f"{run_dir} was trained with the Keras backend {stored_backend!r}, this process runs "
                    f"{current_backend()!r} (the same seed gives other numbers): use another experiment folder")
            return True
    runs.clear_markers(run_dir)
    return False


def run(config: RunConfig | dict[str, Any], run_dir: str | os.PathLike | None = None, *,
        corpus: Corpus | None = None, force: bool = False, verbose: int = 0,
        callbacks: list[Any] | None = None) -> RunResult:
    """Train one run and, when ``run_dir`` is given, save it there (reusing it if already finished).

    A NaN or infinite training loss stops the run; it is saved with a ``FAILED`` marker and its reason, and
    the result has ``status == "failed"``.
    """
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None and _prepare_run_dir(run_path, config, force):
        record = runs.load_run(run_path)
        return RunResult(config, record.history, record.metrics, "complete", run_path, reused=True)

    configure_tensorflow()
    import keras

    from .metrics import EpochMetrics, ValidationEvaluator, ngram_references

    started = time.perf_counter()
    if corpus is None:
        corpus = load_corpus(config.dataset, config.data_dir,
                             **(config.synthetic if config.dataset == "synthetic" else {}))
    data = corpus.subset(config.max_sequences).split(config.split, config.val_fraction, config.seed)
    seed_everything(config.seed, op_determinism=not config.jit_compile)
    model = build_model(corpus.vocab_size, corpus.max_len - 1, embedding_dim=config.embedding_dim,
                        lstm_units=config.lstm_units, dropout=config.dropout, head=config.head)
    loss = losses_module.get(config.loss, weight=config.weight if
                             losses_module.loss_class(config.loss).takes_weight else None)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss,
                  jit_compile=config.jit_compile)
    evaluator = ValidationEvaluator(data.x_val, data.y_val, loss, config.head, corpus.true_next)
    epoch_metrics = EpochMetrics(evaluator)
    timer = EpochTimer()
    dataset, steps = training_dataset(data.x_train, data.y_train, config.batch_size, config.seed)
    if run_path is not None:
        run_path.mkdir(parents=True, exist_ok=True)
        runs.write_json(run_path / runs.CONFIG, config.to_dict())
    status, reason = "complete", None
    try:
        model.fit(dataset, epochs=config.epochs, steps_per_epoch=steps, verbose=verbose, shuffle=False,
                  callbacks=[_StopOnNonFinite(), timer, epoch_metrics, *(callbacks or [])])
    except Exception as exc:  # recorded, then re-raised: a crash never looks like a finished run
        if run_path is not None:
            runs.mark_failed(run_path, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise
    history = pd.DataFrame(epoch_metrics.rows)
    if len(history):
        history["seconds"] = timer.seconds[: len(history)]
    if any(not math.isfinite(r["loss"]) for r in epoch_metrics.rows) or len(history) < config.epochs:
        status = "failed"
        reason = f"training loss became NaN or infinite in epoch {len(history)}; the run was stopped"
    metrics: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "corpus": corpus.summary(),
        "split_sizes": {"train": len(data.y_train), "val": len(data.y_val)},
        "references": ngram_references(data.y_train, data.x_train, data.y_val, data.x_val, corpus.vocab_size),
        "final": history.iloc[-1].to_dict() if len(history) else {},
        "seconds_total": time.perf_counter() - started,
        "seconds_per_epoch": float(pd.Series(timer.seconds).median()) if timer.seconds else None,
        "peak_memory_mb": peak_memory_mb(),
        "threads": os.environ.get("ENTROPYLAB_THREADS") or "default",  # the numbers depend on it
        "versions": _versions(),
    }
    if run_path is not None:
        runs.write_csv(run_path / runs.HISTORY, history)
        runs.write_json(run_path / runs.METRICS, metrics)
        if status == "complete":
            partial = run_path / ".partial-model.weights.h5"
            model.save_weights(partial)
            os.replace(partial, run_path / runs.WEIGHTS)
            runs.mark_complete(run_path, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        else:
            runs.mark_failed(run_path, reason or "unknown")
    return RunResult(config, history, metrics, status, run_path, model, corpus)


def load_trained(run_dir: str | os.PathLike, corpus: Corpus | None = None) -> tuple[Any, Corpus, RunConfig]:
    """The model of a finished run with its corpus (rebuilt from the run's config unless given)."""
    run_dir = Path(run_dir)
    if not runs.is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no finished run (no {runs.COMPLETE} marker); train it first")
    config = RunConfig.from_dict(runs.read_json(run_dir / runs.CONFIG))
    configure_tensorflow()
    if corpus is None:
        corpus = load_corpus(config.dataset, config.data_dir,
                             **(config.synthetic if config.dataset == "synthetic" else {}))
    model = build_model(corpus.vocab_size, corpus.max_len - 1, embedding_dim=config.embedding_dim,
                        lstm_units=config.lstm_units, dropout=config.dropout, head=config.head)
    model.load_weights(run_dir / runs.WEIGHTS)
    return model, corpus, config


def _versions() -> dict[str, str]:
    import keras
    import numpy

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__,
                "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    except ImportError:  # pragma: no cover - the JAX backend without TensorFlow
        pass
    return versions


def _callback_base() -> type:
    import keras

    return keras.callbacks.Callback


class _StopOnNonFinite(_callback_base()):
    """Stops training at the first batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get("loss")
        if value is not None and not math.isfinite(float(value)):
            self.model.stop_training = True


class EpochTimer(_callback_base()):
    """Wall seconds of each epoch, from ``on_epoch_begin`` to the end of its last training step or, with
    ``to_epoch_end=True`` (put it last in the callbacks), to the end of the epoch's validation work."""

    def __init__(self, to_epoch_end: bool = False) -> None:
        super().__init__()
        self.to_epoch_end = to_epoch_end
        self.seconds: list[float] = []
        self._start = self._end = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = self._end = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        end = time.perf_counter() if self.to_epoch_end else self._end
        self.seconds.append(end - self._start)
