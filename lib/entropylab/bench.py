"""The benchmark: the naive Keras pipeline (the reference, :mod:`entropylab.naive`) against ours, side by side.

``python -m entropylab bench [--quick] [--epochs N] [--pipelines naive,ours,...]`` (``make bench``) trains the
paper's model (linear head, the paper's mean squared error, batch 32, the same data and split) once per
pipeline, each in its own child process so that its peak resident memory is its own, and reports per pipeline:

* ``seconds_per_epoch``: the median wall time of the epochs after the first (the first holds graph tracing and
  XLA compilation and is reported apart as ``first_epoch_seconds``); with one epoch, that epoch. An epoch runs
  from Keras' ``on_epoch_begin`` to the end of its validation pass (naive: ``val_loss``; ours: every metric);
* ``sequences_per_second = n_train / seconds_per_epoch``;
* ``peak_rss_mb``: the child's peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``), data and runtime
  included;
* ``time_vs_naive = seconds_per_epoch / naive's`` and ``memory_vs_naive = peak_rss_mb / naive's``;
* the loss curves (``loss``, ``val_loss`` per epoch), to show that the pipelines optimise the same objective.

It prints a table and writes ``<output-dir>/<date>_<time>[_quick].csv`` (one row per pipeline, with the machine,
versions and settings) and ``<same>_epochs.csv`` (one row per pipeline and epoch). ``docs/performance.md`` has the
results and where the time goes.

Developer tools (``python -m entropylab.bench --help``): ``ab`` runs pipelines alternately, several times,
and prints medians (how each speed-up was decided); ``profile`` times the parts of one training step.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

QUICK_SEQUENCES = 6000
QUICK_EPOCHS = 3
FULL_EPOCHS = 2
BATCH_SIZE = 32
CHILD_TIMEOUT_S = {"quick": 600, "full": 3 * 3600}
GOAL_TIME = 1 / 3  # ours' seconds per epoch at most this fraction of naive's (issue 4; the aim is 1/5)
AIM_TIME = 1 / 5
GOAL_MEMORY = 1 / 8  # ours' peak memory at most this fraction of naive's


@dataclass(frozen=True)
class Pipeline:
    """One way of training: ``kind`` "naive" (the reference) or "ours" (:func:`entropylab.train.run`)."""

    name: str
    kind: str
    backend: str = "tensorflow"
    jit: bool = True
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""


PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline("naive", "naive", jit=False,
             description="REFERENCE, the Kaggle guide's way: to_categorical float64 one-hot labels, "
                         "fit on NumPy arrays with validation_split=0.2, Keras MSE, no XLA"),
    Pipeline("ours", "ours", description="entropylab.train.run: integer labels, tf.data, XLA, metrics in one pass"),
    Pipeline("ours-noxla", "ours", jit=False, description="ours without XLA (TensorFlow op determinism on)"),
    Pipeline("ours-jax", "ours", backend="jax", description="ours on Keras' JAX backend (KERAS_BACKEND=jax, jit)"),
    # for `ab` only: thread settings (ENTROPYLAB_THREADS sets TensorFlow's intra- and inter-op pools)
    Pipeline("ours-threads1", "ours", env={"ENTROPYLAB_THREADS": "1"}, description="ours, 1 thread per pool"),
    Pipeline("ours-threads2", "ours", env={"ENTROPYLAB_THREADS": "2"}, description="ours, 2 threads per pool"),
)}
DEFAULT_PIPELINES = ("naive", "ours", "ours-noxla", "ours-jax")


@dataclass
class Settings:
    """What every pipeline of one benchmark shares."""

    dataset: str = "auto"
    data_dir: str | None = None
    max_sequences: int | None = None
    epochs: int = FULL_EPOCHS
    batch_size: int = BATCH_SIZE
    seed: int = 0
    quick: bool = False
    lstm_units: int = 100


def parse_pipelines(spec: str | None) -> list[Pipeline]:
    """``"naive,ours"`` -> the named pipelines (default: :data:`DEFAULT_PIPELINES`); unknown names are errors."""
    names = [n.strip() for n in spec.split(",") if n.strip()] if spec else list(DEFAULT_PIPELINES)
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        raise ValueError(f"unknown pipeline(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(PIPELINES)}")
    return [PIPELINES[n] for n in names]


def backend_available(backend: str) -> bool:
    """Whether Keras' ``backend`` can be used here (JAX is the optional extra ``.[jax]``)."""
    if backend == "tensorflow":
        return True
    try:
        metadata.version(backend)
    except metadata.PackageNotFoundError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# The child: one pipeline in its own process
# ---------------------------------------------------------------------------------------------------------

def _epoch_clock() -> Any:
    """Each epoch's wall time up to the end of its validation pass (naive's ``val_loss``, ours' metrics)."""
    from .train import EpochTimer

    return EpochTimer(to_epoch_end=True)


def _load(settings: Settings) -> Any:
    from .data import load_corpus, resolve_dataset

    name = resolve_dataset(settings.dataset, settings.data_dir)
    return load_corpus(name, settings.data_dir).subset(settings.max_sequences)


def run_child(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    """Train ``pipeline`` in this process and return its measurements (called in the child process)."""
    from .train import configure_tensorflow

    configure_tensorflow()
    import keras

    if keras.backend.backend() != pipeline.backend:
        raise RuntimeError(f"pipeline {pipeline.name} needs KERAS_BACKEND={pipeline.backend}, "
                           f"this process runs {keras.backend.backend()}")
    started = time.perf_counter()
    corpus = _load(settings)
    load_seconds = time.perf_counter() - started
    clock = _epoch_clock()
    result: dict[str, Any] = {"dataset": corpus.name, "sequences": corpus.n_sequences,
                              "vocab_size": corpus.vocab_size, "load_seconds": load_seconds}
    started = time.perf_counter()
    if pipeline.kind == "naive":
        from .naive import train_naive

        naive = train_naive(corpus, epochs=settings.epochs, batch_size=settings.batch_size, seed=settings.seed,
                            lstm_units=settings.lstm_units, callbacks=[clock])
        result.update(n_train=naive.n_train, n_val=naive.n_val, loss=naive.history["loss"],
                      val_loss=naive.history["val_loss"], label_bytes=naive.label_bytes, train_seconds=[])
    else:
        from .train import RunConfig, run

        config = RunConfig(dataset=corpus.name, data_dir=settings.data_dir, loss="mse", epochs=settings.epochs,
                           batch_size=settings.batch_size, seed=settings.seed, split="tail", val_fraction=0.2,
                           lstm_units=settings.lstm_units, jit_compile=pipeline.jit)
        run_result = run(config, corpus=corpus, callbacks=[clock])
        if run_result.status != "complete":
            raise RuntimeError(f"ours stopped: {run_result.metrics.get('reason')}")
        history = run_result.history
        sizes = run_result.metrics["split_sizes"]
        result.update(n_train=sizes["train"], n_val=sizes["val"], loss=history["loss"].tolist(),
                      val_loss=history["val_loss"].tolist(), label_bytes=int(corpus.y.nbytes),
                      train_seconds=history["seconds"].tolist())
    result["total_seconds"] = time.perf_counter() - started
    result["epoch_seconds"] = clock.seconds
    from .train import peak_memory_mb

    result["peak_rss_mb"] = peak_memory_mb()
    result["threads"] = _thread_settings()
    return result


def _thread_settings() -> str:
    try:
        import tensorflow as tf

        intra = tf.config.threading.get_intra_op_parallelism_threads()
        inter = tf.config.threading.get_inter_op_parallelism_threads()
    except ImportError:  # pragma: no cover
        return "n/a"
    return f"intra={intra or 'auto'} inter={inter or 'auto'}"


def child_main(argv: list[str]) -> int:
    """``python -m entropylab.bench child NAME SETTINGS_JSON OUT_JSON``."""
    name, settings_json, out = argv
    settings = Settings(**json.loads(settings_json))
    try:
        result = {"status": "ok", "pid": os.getpid(), **run_child(PIPELINES[name], settings)}
    except Exception as exc:  # reported to the parent as a failed row, never as a number
        import traceback

        from .train import peak_memory_mb

        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                  "peak_rss_mb": peak_memory_mb()}
    Path(out).write_text(json.dumps(result), encoding="utf8")
    return 0 if result["status"] == "ok" else 1


# ---------------------------------------------------------------------------------------------------------
# The parent: spawn, collect, compare
# ---------------------------------------------------------------------------------------------------------

def child_env(pipeline: Pipeline) -> dict[str, str]:
    """The child's environment: Keras' backend chosen before Keras is imported, quiet TensorFlow logs."""
    env = dict(os.environ)
    env.update({"KERAS_BACKEND": pipeline.backend, "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                "PYTHONHASHSEED": env.get("PYTHONHASHSEED", "0")})
    if pipeline.backend == "jax":
        env.setdefault("JAX_PLATFORMS", "cpu")
    env.update(pipeline.env)
    return env


def measure(pipeline: Pipeline, settings: Settings, timeout: float | None = None) -> dict[str, Any]:
    """Run one pipeline in a child process and return its row (``status`` "ok", "failed" or "skipped")."""
    row: dict[str, Any] = {"pipeline": pipeline.name, "backend": pipeline.backend,
                           "xla": pipeline.jit, "description": pipeline.description}
    if not backend_available(pipeline.backend):
        return {**row, "status": "skipped",
                "error": f"Keras backend {pipeline.backend!r} not installed; pip install -e '.[{pipeline.backend}]'"}
    timeout = timeout or CHILD_TIMEOUT_S["quick" if settings.quick else "full"]
    with tempfile.TemporaryDirectory(prefix="entropylab-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "entropylab.bench", "child", pipeline.name,
                   json.dumps(asdict(settings)), str(out)]
        started = time.perf_counter()
        try:
            proc = subprocess.run(command, env=child_env(pipeline), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {**row, "status": "failed", "error": f"timed out after {timeout:.0f} s"}
        row["process_seconds"] = time.perf_counter() - started
        if not out.is_file():
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            killed = " (killed: out of memory?)" if proc.returncode in (-9, 137) else ""
            return {**row, "status": "failed",
                    "error": f"child exited {proc.returncode}{killed}: {' | '.join(tail)}"}
        row.update(json.loads(out.read_text(encoding="utf8")))
    row.pop("traceback", None)
    if row["status"] == "ok":
        row.update(summarize_epochs(row["epoch_seconds"], row["n_train"]))
    return row


def summarize_epochs(epoch_seconds: list[float], n_train: int) -> dict[str, float]:
    """``seconds_per_epoch`` (median of the epochs after the first; the first alone if only one),
    ``first_epoch_seconds`` and ``sequences_per_second = n_train / seconds_per_epoch``."""
    if not epoch_seconds:
        raise ValueError("no epoch was timed")
    steady = epoch_seconds[1:] or epoch_seconds
    per_epoch = float(statistics.median(steady))
    return {"seconds_per_epoch": per_epoch, "first_epoch_seconds": float(epoch_seconds[0]),
            "sequences_per_second": n_train / per_epoch if per_epoch > 0 else math.nan}


def add_ratios(rows: list[dict[str, Any]], reference: str = "naive") -> None:
    """``time_vs_naive`` and ``memory_vs_naive`` (this / naive's; below 1 is better) on every finished row."""
    ref = next((r for r in rows if r["pipeline"] == reference and r.get("status") == "ok"), None)
    for row in rows:
        ok = ref is not None and row.get("status") == "ok"
        row["time_vs_naive"] = row["seconds_per_epoch"] / ref["seconds_per_epoch"] if ok else math.nan
        row["memory_vs_naive"] = row["peak_rss_mb"] / ref["peak_rss_mb"] if ok else math.nan


def curve_agreement(rows: list[dict[str, Any]], reference: str = "naive") -> list[dict[str, Any]]:
    """Per pipeline, the largest relative difference of its per-epoch ``loss`` and ``val_loss`` from naive's.

    Besides the raw values (the MSE is ``(sum_j o_j^2 - 2 o_t + 1) / V``, dominated by its ``1/V`` term), the
    learned part ``V * mse - 1 = sum_j o_j^2 - 2 o_t`` is compared too: its relative difference is the
    demanding one. Runs differ in their shuffles and dropout masks, so agreement is statistical, not exact.
    """
    ref = next((r for r in rows if r["pipeline"] == reference and r.get("status") == "ok"), None)
    out = []
    if ref is None:
        return out
    vocab = ref["vocab_size"]
    for row in rows:
        if row is ref or row.get("status") != "ok":
            continue
        entry: dict[str, Any] = {"pipeline": row["pipeline"]}
        for key in ("loss", "val_loss"):
            a, b = ref[key], row[key]
            n = min(len(a), len(b))
            entry[f"{key}_rel_diff"] = max(abs(b[i] - a[i]) / abs(a[i]) for i in range(n))
            entry[f"{key}_learned_rel_diff"] = max(
                abs((vocab * b[i] - 1) - (vocab * a[i] - 1)) / max(abs(vocab * a[i] - 1), 1e-12) for i in range(n))
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------------------
# The machine, versions, output
# ---------------------------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """Cores, CPU model and its vector extensions, memory and OS of this machine."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "cpu_model": platform.processor() or platform.machine(),
                            "os": platform.platform()}
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        pass
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(errors="ignore")
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu_model"] = fields.get("model name", info["cpu_model"])
        info["cpu_mhz"] = fields.get("cpu MHz", "")
        flags = set(fields.get("flags", "").split())
        info["cpu_vector"] = " ".join(f for f in ("avx2", "fma", "avx512f") if f in flags)
    return info


def versions() -> dict[str, str]:
    """Installed versions (read from package metadata; nothing heavy is imported)."""
    out = {"python": platform.python_version()}
    for label, dists in (("tensorflow", ("tensorflow-cpu", "tensorflow")), ("keras", ("keras",)),
                         ("numpy", ("numpy",)), ("jax", ("jax",)), ("jaxlib", ("jaxlib",))):
        for dist in dists:
            try:
                out[label] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            out[label] = ""
    return out


CSV_COLUMNS = (
    "date", "pipeline", "status", "backend", "xla", "seconds_per_epoch", "first_epoch_seconds",
    "sequences_per_second", "peak_rss_mb", "time_vs_naive", "memory_vs_naive", "epochs", "batch_size",
    "dataset", "sequences", "n_train", "n_val", "vocab_size", "quick", "epoch_seconds", "train_seconds",
    "loss", "val_loss", "label_bytes", "load_seconds", "total_seconds", "process_seconds", "threads",
    "cores", "physical_cores", "cpu_model", "cpu_mhz", "cpu_vector", "memory_gb", "os", "python",
    "tensorflow", "keras", "numpy", "jax", "jaxlib", "description", "error",
)
EPOCH_COLUMNS = ("date", "pipeline", "backend", "xla", "epoch", "loss", "val_loss", "epoch_seconds",
                 "train_seconds")


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ";".join(f"{v:.9g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.9g}"
    return "" if value is None else value


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buffer.getvalue()


def epoch_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per pipeline and epoch (the loss curves and the epoch times)."""
    out = []
    for row in rows:
        if row.get("status") != "ok":
            continue
        for i, seconds in enumerate(row["epoch_seconds"]):
            train = row.get("train_seconds") or []
            out.append({"date": row["date"], "pipeline": row["pipeline"], "backend": row["backend"],
                        "xla": row["xla"], "epoch": i + 1, "loss": row["loss"][i], "val_loss": row["val_loss"][i],
                        "epoch_seconds": seconds, "train_seconds": train[i] if i < len(train) else None})
    return out


def write_results(rows: list[dict[str, Any]], output_dir: str | os.PathLike, stamp: str) -> tuple[Path, Path]:
    """``<output_dir>/<stamp>.csv`` and ``<stamp>_epochs.csv``, written atomically."""
    from .runs import atomic_write_text

    folder = Path(output_dir)
    summary, epochs = folder / f"{stamp}.csv", folder / f"{stamp}_epochs.csv"
    atomic_write_text(summary, to_csv(rows, CSV_COLUMNS))
    atomic_write_text(epochs, to_csv(epoch_rows(rows), EPOCH_COLUMNS))
    return summary, epochs


def format_table(rows: list[dict[str, Any]]) -> str:
    """The printed summary: one line per pipeline."""
    header = (f"{'pipeline':<12} {'backend':<10} {'XLA':<4} {'s/epoch':>8} {'1st ep':>7} {'total s':>8} "
              f"{'seq/s':>7} {'peak MB':>8} {'time/naive':>10} {'mem/naive':>9} {'loss':>10} {'val_loss':>10}")
    lines = [header, "-" * len(header)]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"{r['pipeline']:<12} {r['backend']:<10} {('yes' if r['xla'] else 'no'):<4} "
                         f"{r.get('status', '?').upper()}: {r.get('error', '')}")
            continue
        lines.append(
            f"{r['pipeline']:<12} {r['backend']:<10} {('yes' if r['xla'] else 'no'):<4} "
            f"{r['seconds_per_epoch']:>8.2f} {r['first_epoch_seconds']:>7.2f} {r['total_seconds']:>8.1f} "
            f"{r['sequences_per_second']:>7.0f} "
            f"{r['peak_rss_mb']:>8.0f} {_ratio(r['time_vs_naive']):>10} {_ratio(r['memory_vs_naive']):>9} "
            f"{r['loss'][-1]:>10.4e} {r['val_loss'][-1]:>10.4e}")
    return "\n".join(lines)


def _ratio(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}" if value >= 0.995 or value == 0 else f"1/{1 / value:.1f}"


def format_curves(rows: list[dict[str, Any]]) -> str:
    """Loss and validation loss per epoch, one column pair per pipeline."""
    done = [r for r in rows if r.get("status") == "ok"]
    if not done:
        return ""
    epochs = max(len(r["loss"]) for r in done)
    header = "epoch " + " ".join(f"{r['pipeline'] + ' loss':>18} {r['pipeline'] + ' val':>18}" for r in done)
    lines = [header]
    for i in range(epochs):
        cells = []
        for r in done:
            cells += [f"{r['loss'][i]:>18.6e}" if i < len(r["loss"]) else " " * 18,
                      f"{r['val_loss'][i]:>18.6e}" if i < len(r["val_loss"]) else " " * 18]
        lines.append(f"{i + 1:>5} " + " ".join(cells))
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]], quick: bool = False) -> list[str]:
    """The issue's goals, checked on the measured numbers of ``ours`` against ``naive``.

    The goals are for the full data: on a small cap the one-hot matrix that burdens the naive pipeline is small.
    """
    ours = next((r for r in rows if r["pipeline"] == "ours" and r.get("status") == "ok"), None)
    if ours is None or math.isnan(ours.get("time_vs_naive", math.nan)):
        return ["goals: not checked (needs both naive and ours)"]
    naive = next(r for r in rows if r["pipeline"] == "naive")
    t, m = ours["time_vs_naive"], ours["memory_vs_naive"]
    lines = [f"ours/naive seconds per epoch = {t:.3f} (goal <= 1/3, aim 1/5): "
             f"{'met' if t <= GOAL_TIME else 'NOT met'}{', aim met' if t <= AIM_TIME else ''}",
             f"ours/naive peak memory = {m:.3f} (goal <= 1/8): {'met' if m <= GOAL_MEMORY else 'NOT met'}",
             f"ours/naive whole training call (labels, compilation, every epoch, teardown) = "
             f"{ours['total_seconds'] / naive['total_seconds']:.3f}"]
    if quick:
        lines.append("(--quick: a small cap; the goals are judged on the full data, `make bench`)")
    return lines


# ---------------------------------------------------------------------------------------------------------
# Where the time goes: arithmetic counts and a per-part timing of one training step
# ---------------------------------------------------------------------------------------------------------

def model_flops(vocab_size: int, context: int = 23, embedding_dim: int = 10, lstm_units: int = 100) -> dict:
    """Floating-point operations per example (a multiply-add counts 2) of the paper's model.

    * LSTM forward: ``T * 2 * (E + H) * 4H`` (four gates over input and state, ``T`` steps); the gate
      nonlinearities and the embedding lookup are negligible;
    * output layer forward: ``2 * H * V``;
    * training (forward + backward): about 3x forward (the backward pass computes two products per matmul:
      the gradient of the weights and of the input);
    * Adam: about 12 operations per parameter per step (not per example), memory-bound.
    """
    lstm = context * 2 * (embedding_dim + lstm_units) * 4 * lstm_units
    dense = 2 * lstm_units * vocab_size
    params = vocab_size * embedding_dim + 4 * lstm_units * (embedding_dim + lstm_units + 1) + (
        lstm_units + 1) * vocab_size
    return {"lstm_forward": lstm, "dense_forward": dense, "forward": lstm + dense,
            "train": 3 * (lstm + dense), "params": params, "adam_per_step": 12 * params}


def epoch_flops(n_train: int, n_val: int, vocab_size: int, batch_size: int = BATCH_SIZE, **sizes: int) -> float:
    """Operations of one epoch: training on ``n_train``, Adam each step, one forward pass over ``n_val``."""
    f = model_flops(vocab_size, **sizes)
    steps = math.ceil(n_train / batch_size)
    return n_train * f["train"] + steps * f["adam_per_step"] + n_val * f["forward"]


def peak_flops(cores: int, mhz: float, flops_per_cycle: int) -> float:
    """Arithmetic limit ``cores * clock * flops_per_cycle`` (float32 FMA: AVX2 2 x 8 x 2 = 32 per cycle and core,
    AVX-512 with two full-width FMA units 64)."""
    return cores * mhz * 1e6 * flops_per_cycle


def _median_seconds(function: Any, steps: int, repeats: int) -> float:
    function()  # trace and compile
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            out = function()
        import tensorflow as tf

        _ = [v.numpy() for v in tf.nest.flatten(out, expand_composites=True)[:1]]  # wait for the last step
        times.append((time.perf_counter() - started) / steps)
    return float(statistics.median(times))


def step_breakdown(vocab_size: int = 11265, context: int = 23, batch_size: int = BATCH_SIZE, lstm_units: int = 100,
                   embedding_dim: int = 10, steps: int = 200, repeats: int = 5, jit: bool = True,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Median milliseconds per step of each part of a training step (TensorFlow; XLA when ``jit``).

    Parts: the LSTM (embedding + LSTM + dropout) forward and backward; the output layer and the loss forward and
    backward; Adam's update alone; the whole step as one function; the whole step through ``model.fit`` on the
    ``tf.data`` pipeline (what :func:`entropylab.train.run` does, with Keras' per-step overhead); the input
    pipeline alone; an empty function call (the dispatch overhead).
    """
    from .train import configure_tensorflow, training_dataset

    configure_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from . import losses
    from .model import build_model

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(vocab_size, context, embedding_dim=embedding_dim, lstm_units=lstm_units)
    loss = losses.get("mse")
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    x = tf.constant(rng.integers(1, vocab_size, (batch_size, context)), tf.int32)
    y = tf.constant(rng.integers(1, vocab_size, batch_size), tf.int32)
    h = tf.constant(rng.normal(size=(batch_size, lstm_units)), tf.float32)
    encoder = keras.Model(model.inputs, model.get_layer("dropout").output)
    dense = model.layers[-1]
    fixed_grads = [tf.constant(rng.normal(0, 1e-3, v.shape), tf.float32) for v in model.trainable_variables]

    def compiled(fn: Any) -> Any:
        return tf.function(fn, jit_compile=jit)

    @compiled
    def lstm_part() -> Any:
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(encoder(x, training=True))
        return tape.gradient(value, encoder.trainable_variables)

    @compiled
    def dense_part() -> Any:
        with tf.GradientTape() as tape:
            tape.watch(h)
            value = loss(y, dense(h))
        return tape.gradient(value, [*dense.trainable_variables, h])

    @compiled
    def forward() -> Any:
        return loss(y, model(x, training=True))

    @compiled
    def adam_only() -> Any:
        optimizer.apply(fixed_grads, model.trainable_variables)
        return [optimizer.iterations]

    @compiled
    def full_step() -> Any:
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return [value]

    @tf.function
    def empty() -> Any:
        return tf.constant(0.0)

    n = batch_size * steps
    data_x = rng.integers(1, vocab_size, (n, context)).astype("int32")
    data_y = rng.integers(1, vocab_size, n).astype("int32")
    dataset, _ = training_dataset(data_x, data_y, batch_size, seed)
    iterator = iter(dataset)

    def input_only() -> Any:
        return next(iterator)[1]

    fit_model = build_model(vocab_size, context, embedding_dim=embedding_dim, lstm_units=lstm_units)
    fit_model.compile(optimizer=keras.optimizers.Adam(), loss=loss, jit_compile=jit)

    def keras_fit_seconds() -> float:
        fit_model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)  # compile
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fit_model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times.append((time.perf_counter() - started) / steps)
        return float(statistics.median(times))

    f = model_flops(vocab_size, context, embedding_dim, lstm_units)
    parts = [
        ("LSTM fwd+bwd (23 sequential steps)", lstm_part, 3 * f["lstm_forward"] * batch_size),
        (f"output layer {lstm_units}x{vocab_size} + loss fwd+bwd", dense_part, 3 * f["dense_forward"] * batch_size),
        ("Adam update (all parameters)", adam_only, f["adam_per_step"]),
        ("forward only (whole model + loss)", forward, f["forward"] * batch_size),
        ("whole step, one function", full_step, f["train"] * batch_size + f["adam_per_step"]),
        ("input pipeline (tf.data next batch)", input_only, 0),
        ("empty tf.function call", empty, 0),
    ]
    rows = []
    for name, fn, flops in parts:
        seconds = _median_seconds(fn, steps, repeats)
        rows.append({"part": name, "ms_per_step": seconds * 1e3, "gflop_per_step": flops / 1e9,
                     "gflops": flops / seconds / 1e9 if flops else math.nan})
    seconds = keras_fit_seconds()
    flops = f["train"] * batch_size + f["adam_per_step"]
    rows.append({"part": "whole step through model.fit + tf.data", "ms_per_step": seconds * 1e3,
                 "gflop_per_step": flops / 1e9, "gflops": flops / seconds / 1e9})
    return rows


def format_breakdown(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'part':<48} {'ms/step':>8} {'GFLOP':>7} {'GFLOP/s':>8}"]
    for r in rows:
        gflops = "" if math.isnan(r["gflops"]) else f"{r['gflops']:.1f}"
        lines.append(f"{r['part']:<48} {r['ms_per_step']:>8.3f} {r['gflop_per_step']:>7.4f} {gflops:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------

def settings_from_args(args: argparse.Namespace) -> Settings:
    epochs = args.epochs if getattr(args, "epochs", None) else (QUICK_EPOCHS if args.quick else FULL_EPOCHS)
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    max_sequences = getattr(args, "max_sequences", None) or (QUICK_SEQUENCES if args.quick else None)
    return Settings(dataset="auto", data_dir=args.data_dir, max_sequences=max_sequences, epochs=epochs,
                    quick=bool(args.quick))


def run_benchmark(pipelines: list[Pipeline], settings: Settings, output_dir: str | os.PathLike,
                  echo: Any = print) -> tuple[list[dict[str, Any]], Path]:
    """Measure each pipeline in its own process, print the table, write the CSVs; returns rows and CSV path."""
    stamp = time.strftime("%Y-%m-%d_%H%M%S") + ("_quick" if settings.quick else "")
    common = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "epochs": settings.epochs,
              "batch_size": settings.batch_size, "quick": settings.quick, **machine_info(), **versions()}
    rows = []
    for pipeline in pipelines:
        echo(f"[bench] {pipeline.name}: {pipeline.description} ...", flush=True)
        row = {**common, **measure(pipeline, settings)}
        if row["status"] == "ok":
            echo(f"[bench] {pipeline.name}: {row['seconds_per_epoch']:.2f} s/epoch, "
                 f"{row['peak_rss_mb']:.0f} MB peak", flush=True)
        else:
            echo(f"[bench] {pipeline.name}: {row['status']}: {row.get('error')}", flush=True)
        rows.append(row)
    add_ratios(rows)
    summary, _ = write_results(rows, output_dir, stamp)
    first = next((r for r in rows if r.get("status") == "ok"), {})
    echo(f"\n{first.get('dataset', '?')} corpus, {first.get('sequences', '?')} sequences "
         f"({first.get('n_train', '?')} train / {first.get('n_val', '?')} val), batch {settings.batch_size}, "
         f"{settings.epochs} epoch(s); {common['cores']} cores, {common.get('cpu_model', '')}\n")
    echo(format_table(rows))
    echo("\nloss curves (the paper's MSE; training loss is Keras' running mean over the epoch):")
    echo(format_curves(rows))
    for entry in curve_agreement(rows):
        echo(f"  {entry['pipeline']} vs naive: max relative difference loss {entry['loss_rel_diff']:.2e}, "
             f"val_loss {entry['val_loss_rel_diff']:.2e}; learned part (V*mse - 1) "
             f"{entry['loss_learned_rel_diff']:.2e} / {entry['val_loss_learned_rel_diff']:.2e}")
    echo("")
    for line in verdict(rows, settings.quick):
        echo(line)
    echo(f"\nwritten: {summary} and {summary.with_name(summary.stem + '_epochs.csv')}")
    return rows, summary


def main(args: argparse.Namespace) -> int:
    """``python -m entropylab bench`` (see :mod:`entropylab.cli`)."""
    settings = settings_from_args(args)
    pipelines = parse_pipelines(args.pipelines)
    rows, _ = run_benchmark(pipelines, settings, args.output_dir)
    return 0 if all(r.get("status") in ("ok", "skipped") for r in rows) else 1


def alternate(pipelines: list[Pipeline], settings: Settings, repeats: int, echo: Any = print) -> dict[str, list]:
    """Run the pipelines in turn (A B A B ...) ``repeats`` times; returns each one's seconds per epoch."""
    times: dict[str, list[float]] = {p.name: [] for p in pipelines}
    for i in range(repeats):
        for pipeline in pipelines:
            row = measure(pipeline, settings)
            if row["status"] != "ok":
                raise RuntimeError(f"{pipeline.name} failed: {row.get('error')}")
            times[pipeline.name].append(row["seconds_per_epoch"])
            echo(f"[ab] round {i + 1} {pipeline.name}: {row['seconds_per_epoch']:.3f} s/epoch "
                 f"(first {row['first_epoch_seconds']:.2f} s)", flush=True)
    base = statistics.median(times[pipelines[0].name])
    for name, values in times.items():
        med = statistics.median(values)
        echo(f"[ab] {name:<14} median {med:.3f} s/epoch  ({med / base:.3f} of {pipelines[0].name}) "
             f"runs: {', '.join(f'{v:.2f}' for v in values)}")
    return times


def module_main(argv: list[str] | None = None) -> int:
    """``python -m entropylab.bench {child,ab,profile}``: the child process and the developer tools."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "child":
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m entropylab.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ab = sub.add_parser("ab", help="run pipelines alternately and print median seconds per epoch")
    ab.add_argument("pipelines", help=f"comma-separated, the first is the base; from {', '.join(PIPELINES)}")
    ab.add_argument("--repeats", type=int, default=3)
    ab.add_argument("--epochs", type=int, default=QUICK_EPOCHS)
    ab.add_argument("--max-sequences", type=int, default=12000)
    ab.add_argument("--data-dir", default=None)
    prof = sub.add_parser("profile", help="time the parts of one training step (TensorFlow, this process)")
    prof.add_argument("--steps", type=int, default=200, help="steps per timing")
    prof.add_argument("--repeats", type=int, default=5)
    prof.add_argument("--vocab-size", type=int, default=11265)
    args = parser.parse_args(argv)
    if args.command == "ab":
        settings = Settings(data_dir=args.data_dir, max_sequences=args.max_sequences, epochs=args.epochs,
                            quick=True)
        alternate(parse_pipelines(args.pipelines), settings, args.repeats)
        return 0
    print(format_breakdown(step_breakdown(vocab_size=args.vocab_size, steps=args.steps, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(module_main())
