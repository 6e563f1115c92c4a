"""``python -m entropylab.bench gpu``: the device check of the fused engine (``make gpu-check``; KERAS_BACKEND=jax).

It prints and writes to ``<outputs>/benchmarks/gpu_<time>.csv`` (with the accelerator's name):

* ``one run``: a run trained alone with ``fit`` (the pool's path), KL w = 10, seconds per epoch (its second epoch,
  after compilation; training steps only, as every ``seconds`` column);
* ``fused R``: groups of ``R`` = 1, 15 and 45 KL runs (weights and seeds), seconds per epoch of the whole group
  (second epoch), and the throughput against ``one run``: ``R x one-run seconds / group seconds``;
* ``paper protocol`` and ``seeds grid``: ``params/paper.yaml`` (15 runs) and ``params/seeds.yaml`` (45 runs) x 5
  epochs with every per-epoch metric, trained by the fused engine into run folders (a temporary outputs folder),
  wall time from the start to the last run's ``COMPLETE``: corpus, compilation, training, metrics and saving, without
  the notebooks that a sweep executes afterwards.

The data are the paper's NYT headlines (``--data-dir``, else found as the sweep finds them); without them the check
stops with one line naming the fix. ``--quick`` (for a CPU, minutes) takes the NYT data or else the synthetic corpus
of the parameter files, 2,000 sequences of it for every row, groups of 3 and 6, and the protocols' first 6 runs for 2
epochs. Each row names its corpus and its training sequences.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import paths

COLUMNS = ("measure", "runs", "epochs", "seconds_per_epoch", "wall_seconds", "throughput_vs_one_run", "dataset",
           "train_sequences", "platform", "device")
KL_WEIGHTS = (0.1, 1.0, 10.0, 100.0, 0.3, 3.0, 30.0, 0.03, 0.01, 300.0, 0.5, 5.0, 50.0, 2.0, 20.0)


def accelerator() -> tuple[str, str]:
    """``(platform, device name)`` of JAX's first device, e.g. ``("gpu", "NVIDIA H200")``."""
    import jax

    return jax.default_backend(), jax.devices()[0].device_kind


def kl_configs(runs: int, base: dict[str, Any]) -> list[Any]:
    """``runs`` KL configs: the 15 weights of :data:`KL_WEIGHTS` for seed 0, then again for seeds 1, 2, …"""
    from ..training.config import RunConfig

    return [RunConfig(**base, loss="kl_regularized", weight=KL_WEIGHTS[i % len(KL_WEIGHTS)], seed=i // len(KL_WEIGHTS))
            for i in range(runs)]


def protocol_wall_time(params_file: Path, data_dir: str | None, output_root: Path, limit: int | None = None,
                       **changes: Any) -> tuple[float, int, int, int]:
    """Train a parameter file's runs (its first ``limit``; ``changes`` to their configs) by fused groups into run
    folders under ``output_root``; ``(wall seconds, runs, runs complete, training sequences of the first run)``."""
    from ..experiments.engines import task_config
    from ..experiments.sweep import make_plan
    from ..training.fused import plan_groups, train_group

    started = time.perf_counter()
    plan = make_plan(params_file, data_dir=data_dir, output_root=output_root)
    tasks = plan.tasks[:limit] if limit else plan.tasks
    configs = [task_config(t).replace(**changes) for t in tasks]
    complete, sequences = 0, 0
    for members in plan_groups(configs):
        results = train_group([configs[i] for i in members],
                              [Path(tasks[i].run_dir).with_name(configs[i].run_name) for i in members])
        complete += sum(r.status == "complete" for r in results)
        sequences = sequences or results[0].metrics["split_sizes"]["train"]
    return time.perf_counter() - started, len(configs), complete, sequences


def measure(data_dir: str | None = None, quick: bool = False, group_sizes: tuple[int, ...] | None = None,
            protocols: bool = True) -> list[dict[str, Any]]:
    """Every row of the check (see the module docstring)."""
    from ..data import DataError, find_nyt_dir, missing_data_message, resolve_dataset
    from ..training import run
    from ..training.fused import train_group

    platform, device = accelerator()
    if not quick and find_nyt_dir(data_dir) is None:
        raise DataError(f"the GPU check measures the paper's NYT data: {missing_data_message()}")
    dataset = resolve_dataset("auto", data_dir)
    sequences = 2000 if quick else None
    base = {"dataset": dataset, "data_dir": data_dir, "epochs": 2, "max_sequences": sequences}
    common = {"dataset": dataset, "platform": platform, "device": device}
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append({**common, **row})
        shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        print(shown, flush=True)

    alone = run(kl_configs(1, base)[0].replace(weight=10.0))
    one = float(alone.history["seconds"].iloc[-1])
    train_sequences = alone.metrics["split_sizes"]["train"]
    report({"measure": "one run (fit)", "runs": 1, "epochs": 2, "seconds_per_epoch": one,
            "throughput_vs_one_run": 1.0, "train_sequences": train_sequences})
    for size in group_sizes or ((1, 3, 6) if quick else (1, 15, 45)):
        started = time.perf_counter()
        results = train_group(kl_configs(size, base))
        seconds = float(results[0].history["seconds"].iloc[-1])
        report({"measure": f"fused {size}", "runs": size, "epochs": 2, "seconds_per_epoch": seconds,
                "wall_seconds": time.perf_counter() - started, "throughput_vs_one_run": size * one / seconds,
                "train_sequences": results[0].metrics["split_sizes"]["train"]})
    if protocols:
        project = paths.project_root()
        for name, file in (("paper protocol", "paper.yaml"), ("seeds grid", "seeds.yaml")):
            with tempfile.TemporaryDirectory(prefix="entropylab-gpu-check-") as root:
                quick_changes = {"epochs": 2, "max_sequences": sequences} if quick else {}
                wall, runs, complete, used = protocol_wall_time(project / "params" / file, data_dir, Path(root),
                                                                limit=6 if quick else None, **quick_changes)
            report({"measure": f"{name} ({complete}/{runs} complete)", "runs": runs, "epochs": 2 if quick else 5,
                    "wall_seconds": wall, "train_sequences": used})
    return rows


def main(argv: list[str] | None = None) -> int:
    from .report import to_csv

    parser = argparse.ArgumentParser(prog="python -m entropylab.bench gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="the NYT Articles*.csv folder (default: search)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a CPU")
    parser.add_argument("--no-protocols", action="store_true", help="leave out the paper protocol and seeds grid")
    parser.add_argument("--output-dir", default=None, help="default: <outputs>/benchmarks")
    args = parser.parse_args(argv)
    if os.environ.get("KERAS_BACKEND") != "jax":
        print("error: the GPU check trains on JAX; run it with KERAS_BACKEND=jax (make gpu-check does)")
        return 2
    from ..data import DataError

    try:
        rows = measure(args.data_dir, quick=args.quick, protocols=not args.no_protocols)
    except DataError as exc:
        print(f"error: {exc}")
        return 2
    folder = Path(args.output_dir) if args.output_dir else paths.outputs_dir() / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    device = rows[0]["device"].replace(" ", "-") if rows else "unknown"
    path = folder / f"gpu_{device}_{time.strftime('%Y-%m-%d_%H%M%S')}.csv"
    path.write_text(to_csv(rows, COLUMNS), encoding="utf8")
    print(f"written: {path}")
    return 0
