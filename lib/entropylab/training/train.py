"""Train one run from its config: seed, load, build, fit, evaluate each epoch, save its folder atomically."""

from __future__ import annotations

import math
import os
import platform
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import Corpus, load_corpus
from . import store
from .config import SYNTHETIC_DATASETS, RunConfig, current_backend, current_threads
from .phases import PhaseClock

__all__ = ["RunConfig", "RunResult", "current_backend", "finish_run", "load_trained", "peak_memory_mb", "run"]


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
    """Quiet logs and set TensorFlow's thread pools (``threads`` per pool; before TF starts running ops).

    On any other Keras backend it does nothing, and TensorFlow is never imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if current_backend() != "tensorflow":
        return
    threads = threads or current_threads() or None
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
    On another backend it seeds what ``keras.utils.set_random_seed`` seeds except TensorFlow (which that function
    imports whenever it is installed): Python's and NumPy's generators and Keras' global seed.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        _seed_without_tensorflow(seed)
        return
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    if op_determinism:
        tf.config.experimental.enable_op_determinism()
    else:
        _disable_op_determinism()


def reseed_random_layers(model: Any, seed: int) -> int:
    """Set the state of every random-number generator inside ``model`` (the Keras ``SeedGenerator`` of each dropout
    layer and recurrent cell) from ``seed`` alone; returns how many there were.

    Keras gives each generator its starting seed when the layer is built, drawn from Python's global ``random``
    (seeded from the operating system at start-up, then moved by whatever ran before), and a weights file does not
    hold it. A model built before :func:`seed_everything` (:func:`load_trained`) would otherwise drop out other
    units in each process. Generator ``i``, in the order of ``model.variables``, starts at ``[s_i, 0]`` with
    ``s_i = 1 + (SeedSequence([seed, i]).generate_state(1)[0] mod 10^9)`` (Keras' own default seeds lie in
    ``[1, 10^9]``). The generators' states are the variables of ``model.variables`` that are not ``model.weights``.
    """
    import numpy as np

    weights = {id(v) for v in model.weights}
    states = [v for v in model.variables if id(v) not in weights]
    for index, state in enumerate(states):
        start = 1 + int(np.random.SeedSequence([seed, index]).generate_state(1)[0]) % 10**9
        state.assign(np.array([start, 0], dtype=str(state.dtype)))
    return len(states)


def nudge_initial_weights(model: Any, ulps: int, seed: int) -> None:
    """Move every non-zero float32 weight of ``model`` by ``ulps`` representable steps (ulps), up or down at random
    (seeded by ``[seed, ulps]``); zeros stay zero. ``ulps = 0`` leaves the model untouched.

    One ulp of ``w`` is about ``|w| * 2^-23``: a 100-ulp nudge is a relative change of ~1e-5, the size of the
    rounding differences that another CPU's kernels bring into a short training run. A float32's bit pattern read
    as an integer counts ulps along its magnitude, so the nudge is that integer plus or minus ``ulps``.
    """
    if not ulps:
        return
    import numpy as np

    rng = np.random.default_rng([seed, ulps])
    nudged = []
    for weights in model.get_weights():
        weights = np.asarray(weights, dtype=np.float32)
        up = rng.random(weights.shape) < 0.5
        bits = weights.view(np.int32)
        magnitude = bits & 0x7FFFFFFF
        step = np.where(up == (weights > 0), ulps, -ulps).astype(np.int32)  # away from zero adds to the magnitude
        movable = magnitude > ulps
        nudged.append(np.where(movable, bits + step, bits).astype(np.int32).view(np.float32))
    model.set_weights(nudged)


def _seed_without_tensorflow(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)`` less its ``tf.random.set_seed``: the same layer initializers and
    dropout seeds, without importing TensorFlow."""
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def _disable_op_determinism() -> None:
    try:
        from tensorflow.python.framework import config as tf_config
    except ImportError:  # pragma: no cover - a TensorFlow without the private switch: nothing to undo
        return
    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB): in a sweep's warm kernel
    (:mod:`entropylab.experiments.kernels`) the peak since that kernel started, which may be an earlier run's."""
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1024 * 1024) if platform.system() == "Darwin" else usage / 1024


def training_dataset(x: Any, y: Any, batch_size: int, seed: int, input_pipeline: str = "tf.data") -> tuple[Any, int]:
    """Shuffled (each epoch, seeded) batches that repeat; returns the dataset and the steps per epoch.

    Every epoch sees each training example once, in batches of ``batch_size`` and one smaller last batch,
    as ``fit(x, y, shuffle=True)`` does, without its per-epoch iterator start-up. ``input_pipeline="numpy"`` gives
    the seeded NumPy batcher of :mod:`entropylab.data.batches` (the same batches on every backend; no TensorFlow).
    """
    if input_pipeline == "numpy":
        from ..data.batches import ShuffledBatches

        batches = ShuffledBatches(x, y, batch_size, seed)
        return iter(batches), len(batches)
    import tensorflow as tf

    steps = math.ceil(len(y) / batch_size)
    dataset = (tf.data.Dataset.from_tensor_slices((x, y))
               .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size)
               .repeat()
               .prefetch(tf.data.AUTOTUNE))
    return dataset, steps


def prepare_run_dir(run_dir: Path, config: RunConfig, force: bool) -> bool:
    """True when ``run_dir`` already holds this finished run (reuse it); refuses another config's run. A finished
    run whose files are damaged (:func:`entropylab.training.store.run_damage`) is unfinished: it is trained again
    (a cut ``config.json`` only in the folder named for this config, :attr:`RunConfig.run_name`: another folder
    could hold another config's run, which is never overwritten silently)."""
    state = store.identity_state(run_dir, config.identity())
    damage = store.run_damage(run_dir) if not force else None
    if damage is not None and damage.path.name == store.CONFIG and Path(run_dir).name != config.run_name:
        raise damage
    if damage is not None and (state == "same" or damage.path.name == store.CONFIG):
        print(f"{damage.path} is damaged ({damage.what}); training the run again", flush=True)
        store.clear_markers(run_dir)
    if state == "other" and store.is_complete(run_dir) and not force:
        raise FileExistsError(f"{run_dir} holds a finished run of another config; use another folder (the "
                              f"default, <experiment>/{config.run_name}, is unique to this config) or force=True")
    if state == "same" and store.is_complete(run_dir) and not force:
        return True
    store.clear_markers(run_dir)
    return False


def load_run_corpus(config: RunConfig) -> Corpus:
    """The whole corpus a config trains on (its ``max_sequences`` cap is applied by :func:`run`)."""
    options = config.synthetic if config.dataset in SYNTHETIC_DATASETS else {}
    try:
        return load_corpus(config.dataset, config.data_dir, **options)
    except TypeError as exc:  # an option the source does not have
        raise ValueError(f"synthetic: {exc}; use the options of the {config.dataset!r} source "
                         f"(entropylab.data.{config.dataset})") from None


def run(config: RunConfig | dict[str, Any], run_dir: str | os.PathLike | None = None, *,
        corpus: Corpus | None = None, force: bool = False, verbose: int = 0,
        callbacks: list[Any] | None = None) -> RunResult:
    """Train one run and, when ``run_dir`` is given, save it there (reusing it if already finished).

    A NaN or infinite training loss stops the run; it is saved with a ``FAILED`` marker and its reason, and
    the result has ``status == "failed"``. A run that a callback of the caller stops early (early stopping) is
    complete, with ``metrics["stopped_early"]`` and the epochs it ran.
    """
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    clock = PhaseClock.from_environment()  # opt-in (ENTROPYLAB_PHASE_TIMES=1): phases.json, no change of numbers
    if config.backend != current_backend():
        raise ValueError(f"the config asks for the Keras backend {config.backend!r} but this process runs "
                         f"{current_backend()!r}; set KERAS_BACKEND={config.backend} before starting Python")
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None and prepare_run_dir(run_path, config, force):
        record = store.load_run(run_path)
        return RunResult(config, record.history, record.metrics, "complete", run_path, reused=True)

    clock.lap("run_other")
    configure_tensorflow(config.threads)
    import keras

    from ..metrics import EpochMetrics, ValidationEvaluator, word_bands
    from ..model import build_model, head_kernel
    from ..objectives import keras_loss
    from .callbacks import BestEpoch, EpochPhases, EpochTimer, RetracedEpochMetrics, StopOnNonFinite, progress_file

    clock.lap("run_imports")
    started = time.perf_counter()
    if corpus is None:
        corpus = load_run_corpus(config)
    data = run_split(corpus, config)
    clock.lap("data")
    seed_everything(config.seed, op_determinism=not config.jit_compile)
    model = build_model(corpus.vocab_size, corpus.max_len - 1, embedding_dim=config.embedding_dim,
                        lstm_units=config.lstm_units, dropout=config.dropout, head=config.head)
    nudge_initial_weights(model, config.init_nudge_ulps, config.seed)
    loss = keras_loss(config.loss, config.weight, kernel=head_kernel(model))  # the kernel: for needs_kernel only
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss,
                  jit_compile=config.jit_compile)

    bands = word_bands(data.y_train, corpus.vocab_size)  # fixed from training

    def evaluator() -> ValidationEvaluator:
        return ValidationEvaluator(data.x_val, data.y_val, loss, config.head, corpus.true_next, bands=bands)

    retrace = loss.needs_kernel and current_backend() == "jax"  # the JAX evaluator would freeze the kernel
    epoch_metrics = RetracedEpochMetrics(evaluator) if retrace else EpochMetrics(evaluator())
    timer = EpochTimer()
    non_finite = StopOnNonFinite()
    best = BestEpoch(patience=config.patience)
    dataset, steps = training_dataset(data.x_train, data.y_train, config.batch_size, config.seed,
                                      config.input_pipeline)
    own_callbacks = [non_finite, timer, epoch_metrics, best]
    clock.lap("build")
    if run_path is not None:
        run_path.mkdir(parents=True, exist_ok=True)
        store.write_json(run_path / store.CONFIG, config.to_dict())
        own_callbacks.append(progress_file(run_path))
        clock.lap("write_run_folder")
    if clock.enabled:
        own_callbacks.append(EpochPhases(clock, timer))
    try:
        model.fit(dataset, epochs=config.epochs, steps_per_epoch=steps, verbose=verbose, shuffle=False,
                  callbacks=[*own_callbacks, *(callbacks or [])])
    except Exception as exc:  # recorded, then re-raised: a crash never looks like a finished run
        if run_path is not None:
            store.mark_failed(run_path, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise
    clock.lap("run_other")
    return finish_run(config, run_path, model, corpus, data, epoch_metrics.rows, epoch_metrics.bins, timer.seconds,
                      non_finite.stopped, best.best_epoch, started, clock=clock)


def finish_run(config: RunConfig, run_path: Path | None, model: Any, corpus: Corpus, data: Any,
               rows: list[dict[str, float]], bins: list[dict[str, list[float]]], seconds: list[float],
               stopped_non_finite: bool, best_epoch: int, started: float,
               extra: dict[str, Any] | None = None, clock: PhaseClock | None = None) -> RunResult:
    """A trained run's history, status and metrics, saved to ``run_path`` (``COMPLETE`` written last) when given.

    ``rows`` and ``bins`` are each epoch's validation metrics and calibration bins, ``seconds`` each epoch's
    training time, ``best_epoch`` the 1-based epoch of the lowest validation cross-entropy (0: none); ``model``
    holds the weights the run keeps. With a test side (``config.test_fraction > 0``) the kept model is evaluated
    on it once, here (``metrics["test"]``: the validation metrics' names with ``test_`` for ``val_``, and
    ``test_`` before the others; ``metrics["test_reliability"]``: its calibration bins), the count-model references
    are scored on it with the Kneser-Ney order chosen on dev, and the generation metrics continue test prefixes;
    without one the references (Kneser-Ney included) are scored on validation, the order chosen on a carve of the
    training split (:func:`entropylab.metrics.kneser_ney.tuning_carve`).
    ``metrics["word_bands"]``: each word-frequency band's words and share of the training tokens
    (:mod:`entropylab.metrics.bands`; the per-band validation and test metrics use these bands).
    ``extra`` joins the metrics (the fused engine names itself there). The one-run
    path (:func:`run`) and the fused engine (:mod:`entropylab.training.fused`) both end here. ``clock`` (enabled by
    ``$ENTROPYLAB_PHASE_TIMES``) laps the references, the generation metrics and the writing, and goes to
    ``phases.json`` after ``COMPLETE`` (:mod:`entropylab.training.phases`).
    """
    from ..metrics import band_summary, word_bands
    from ..metrics.references import ngram_references

    history = pd.DataFrame(rows)
    if len(history):
        history["seconds"] = seconds[: len(history)]
    non_finite_loss = stopped_non_finite or any(not math.isfinite(r["loss"]) for r in rows)
    status = "failed" if non_finite_loss or history.empty else "complete"
    reason = (f"training loss became NaN or infinite in epoch {max(len(history), 1)}; the run was stopped"
              if non_finite_loss else "no epoch finished" if history.empty else None)
    best_epoch = best_epoch if config.patience is not None and best_epoch else len(history)
    clock = clock or PhaseClock(enabled=False)
    clock.lap("run_other")
    if data.has_test:  # the reported side is test; the Kneser-Ney order is chosen on dev
        references = ngram_references(data.y_train, data.x_train, data.y_test, data.x_test, corpus.vocab_size,
                                      kneser_ney=True, heldout=(data.y_val, data.x_val))
    else:
        references = ngram_references(data.y_train, data.x_train, data.y_val, data.x_val, corpus.vocab_size,
                                      kneser_ney=True, carve=config.split)  # order chosen on a carve of training
    clock.lap("references")
    test, test_bins = _test_metrics(model, data, corpus, config) if status == "complete" else ({}, {})
    generation = _generation(model, data, corpus, config) if status == "complete" else {}
    clock.lap("generation")
    metrics: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "stopped_early": status == "complete" and len(history) < config.epochs,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best": history.iloc[best_epoch - 1].to_dict() if best_epoch else {},
        "reliability": bins[best_epoch - 1] if best_epoch else {},
        "corpus": corpus.summary(),
        "word_bands": band_summary(word_bands(data.y_train, corpus.vocab_size), data.y_train),
        "split_sizes": {"train": len(data.y_train), "val": len(data.y_val),
                        **({"test": len(data.y_test)} if data.has_test else {})},
        **({"test": test, "test_reliability": test_bins} if test else {}),
        "references": references,
        "final": history.iloc[-1].to_dict() if len(history) else {},
        "generation": generation,
        "seconds_total": time.perf_counter() - started,
        "seconds_per_epoch": float(pd.Series(seconds).median()) if seconds else None,
        "peak_memory_mb": peak_memory_mb(),
        "threads": config.threads,  # the numbers depend on it
        "versions": _versions(),
        **(extra or {}),
    }
    clock.lap("run_other")
    if run_path is not None:
        store.write_csv(run_path / store.HISTORY, history, checked=True)
        store.write_json(run_path / store.METRICS, metrics)
        if status == "complete":
            store.atomic_save_weights(model, run_path / store.WEIGHTS)
            store.mark_complete(run_path, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        else:
            store.mark_failed(run_path, reason or "unknown")
        clock.lap("write_run_folder")
        clock.write(run_path)
    return RunResult(config, history, metrics, status, run_path, model, corpus)


def run_split(corpus: Corpus, config: RunConfig) -> Any:
    """The training, validation (dev) and, with ``test_fraction > 0``, test sides a config trains and is judged on.

    The corpus is capped at ``max_sequences`` and split by ``split``/``val_fraction``/``test_fraction``/
    ``split_seed``. With a test side, a tuning run (``config.tuning``) uses the same sides: its value is chosen on
    dev, and the test side that the study reports is never read for it. Without one (two sides), a tuning run
    carves its own validation side out of the *training* side by the same rule (the last ``val_fraction`` of it
    for ``tail``, whole headlines for ``headline``), so a parameter chosen on it has never seen the validation side
    that the study then reports.
    """
    data = corpus.subset(config.max_sequences).split(config.split, config.val_fraction, config.split_seed,
                                                     config.test_fraction)
    if config.tuning and not data.has_test:
        data = corpus.select(data.train_index).split(config.split, config.val_fraction, config.split_seed)
    return data


def metric_on_test(name: str) -> str:
    """The name of a validation metric measured on the test side: ``val_x`` -> ``test_x``, ``x`` -> ``test_x``."""
    return "test_" + (name[4:] if name.startswith("val_") else name)


def _test_metrics(model: Any, data: Any, corpus: Corpus, config: RunConfig) -> tuple[dict[str, float], dict]:
    """The kept model's metrics on the test side, read once (none without one), and its calibration bins."""
    if not data.has_test:
        return {}, {}
    from ..metrics import ValidationEvaluator, word_bands
    from ..model import head_kernel
    from ..objectives import keras_loss

    loss = keras_loss(config.loss, config.weight, kernel=head_kernel(model))
    evaluator = ValidationEvaluator(data.x_test, data.y_test, loss, config.head, corpus.true_next,
                                    bands=word_bands(data.y_train, corpus.vocab_size))
    means = evaluator.evaluate(model)
    bins = {key: value.tolist() for key, value in evaluator.bins.items()}
    return {metric_on_test(key): value for key, value in means.items()}, bins


def _generation(model: Any, data: Any, corpus: Corpus, config: RunConfig) -> dict[str, float]:
    """Generation metrics of the (best-epoch) model on ``generation_prefixes`` prefixes of the reported side (test
    when there is one, else validation; none at 0)."""
    if not config.generation_prefixes:
        return {}
    from ..metrics.generation import choose_prefixes, generation_metrics

    x_reported = data.x_test if data.has_test else data.x_val
    rows = choose_prefixes(len(x_reported), config.generation_prefixes, config.split_seed)
    return generation_metrics(model, x_reported[rows], head=config.head, seed=config.seed,
                              true_next=corpus.true_next)


def load_trained(run_dir: str | os.PathLike, corpus: Corpus | None = None) -> tuple[Any, Corpus, RunConfig]:
    """The model of a finished run with its corpus (rebuilt from the run's config unless given)."""
    from ..model import build_model

    run_dir = Path(run_dir)
    if not store.is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no finished run (no {store.COMPLETE} marker); train it first")
    config = RunConfig.from_dict(store.read_json(run_dir / store.CONFIG))
    configure_tensorflow(config.threads)
    if corpus is None:
        corpus = load_run_corpus(config)
    model = build_model(corpus.vocab_size, corpus.max_len - 1, embedding_dim=config.embedding_dim,
                        lstm_units=config.lstm_units, dropout=config.dropout, head=config.head)
    model.load_weights(run_dir / store.WEIGHTS)
    return model, corpus, config


def _versions() -> dict[str, str]:
    import keras
    import numpy

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__,
                "backend": keras.backend.backend()}
    if versions["backend"] == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif versions["backend"] == "jax":
        import jax

        versions["jax"] = jax.__version__
        versions["device"] = jax.devices()[0].device_kind
    return versions
