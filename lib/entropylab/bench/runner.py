"""Runs the benchmark: each pipeline in its own child process, its measurements, and the comparison."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import paths
from .pipelines import (
    FULL_EPOCHS,
    PIPELINES,
    QUICK_EPOCHS,
    QUICK_SEQUENCES,
    Pipeline,
    Settings,
    backend_available,
    parse_pipelines,
)
from .report import format_curves, format_table, machine_info, verdict, versions, write_results

CHILD_TIMEOUT_S = {"quick": 600, "full": 3 * 3600}


# ---------------------------------------------------------------------------------------------------------
# The child: one pipeline in its own process
# ---------------------------------------------------------------------------------------------------------

def _epoch_clock() -> Any:
    """Each epoch's wall time up to the end of its validation pass (naive's ``val_loss``, ours' metrics)."""
    from ..training.callbacks import EpochTimer

    return EpochTimer(to_epoch_end=True)


def _load(settings: Settings) -> Any:
    from ..data import load_corpus, resolve_dataset

    name = resolve_dataset(settings.dataset, settings.data_dir)
    return load_corpus(name, settings.data_dir).subset(settings.max_sequences)


def run_child(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    """Train ``pipeline`` in this process and return its measurements (called in the child process)."""
    from ..training.train import configure_tensorflow

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
        from ..training.config import RunConfig
        from ..training.train import run

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
    from ..training.train import peak_memory_mb

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

        from ..training.train import peak_memory_mb

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
    """``python -m entropylab bench`` (see :mod:`entropylab.cli`); no ``--output-dir``: ``<outputs>/benchmarks``."""
    settings = settings_from_args(args)
    pipelines = parse_pipelines(args.pipelines)
    output_dir = args.output_dir if args.output_dir is not None else paths.outputs_dir() / "benchmarks"
    rows, _ = run_benchmark(pipelines, settings, output_dir)
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
