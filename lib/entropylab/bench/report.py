"""The benchmark's output: the machine and versions, the CSVs, the printed table and curves, and the verdict."""

from __future__ import annotations

import csv
import io
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

GOAL_TIME = 1 / 3  # ours' seconds per epoch at most this fraction of naive's (issue 4; the aim is 1/5)
AIM_TIME = 1 / 5
GOAL_MEMORY = 1 / 8  # ours' peak memory at most this fraction of naive's


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
    from ..training.store import atomic_write_text

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
