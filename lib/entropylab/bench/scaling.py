"""Dask's cost per task: one parameter file's grid on a loopback Dask cluster and on the local pool, back to back.

``python -m entropylab.bench scaling params/smoke.yaml [--workers 2]`` starts ``dask scheduler`` and ``--workers``
``dask worker`` processes of one thread on 127.0.0.1, runs the grid through them (``--scheduler``), then the
same grid with the local pool of ``--workers`` processes, each into its own empty outputs folder, and prints the
wall times, the difference per run (Dask's overhead per task) and whether both gave the same numbers. It writes
``<outputs>/benchmarks/scaling_<date>.csv``. Everything it starts is stopped when it ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = ["loss", "val_loss", "paper_entropy", "paper_kl", "val_cross_entropy", "val_perplexity"]


@contextlib.contextmanager
def loopback_cluster(workers: int, folder: Path):
    """A Dask scheduler and ``workers`` one-thread workers on 127.0.0.1; yields the scheduler address."""
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "dask.log", "w")  # noqa: SIM115 - closed below
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                                   ":0", "--scheduler-file", str(scheduler_file)], stdout=log, stderr=log)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Dask scheduler did not start; see {folder / 'dask.log'}")
            time.sleep(0.1)
        processes += [subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                        "--no-dashboard", "--host", "127.0.0.1"], stdout=log, stderr=log)
                      for _ in range(workers)]
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
            address = client.scheduler.address
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def timed_sweep(params: str, output_root: Path, *extra: str) -> float:
    """Wall seconds of ``python -m entropylab sweep params --output-root output_root *extra`` (must succeed)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "entropylab", "sweep", params, "--output-root", str(output_root),
                             *extra], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if result.returncode != 0:
        raise RuntimeError(f"the sweep failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - started


def measure(params: str, workers: int = 2, output_dir: str | os.PathLike | None = None) -> dict:
    """Run the grid of ``params`` on a loopback Dask cluster, then on the local pool; the row of measurements."""
    import pandas as pd

    from .. import paths
    from ..experiments.params import load_params
    from ..training.store import write_csv
    from .report import machine_info

    runs = len(load_params(params).points)
    with tempfile.TemporaryDirectory(prefix="entropylab-scaling-") as tmp:
        tmp = Path(tmp)
        with loopback_cluster(workers, tmp) as address:
            dask_seconds = timed_sweep(params, tmp / "dask", "--scheduler", address)
        local_seconds = timed_sweep(params, tmp / "local", "--workers", str(workers))
        experiment = next((tmp / "dask" / "results").glob("*.csv"))
        a = pd.read_csv(experiment).sort_values(["run", "epoch"]).reset_index(drop=True)
        b = pd.read_csv(tmp / "local" / "results" / experiment.name).sort_values(["run", "epoch"]).reset_index(
            drop=True)
        same = list(a["run"]) == list(b["run"]) and a[METRICS].equals(b[METRICS])
    info = machine_info()
    row = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "params": Path(params).name, "runs": runs,
           "workers": workers, "dask_seconds": round(dask_seconds, 1), "local_seconds": round(local_seconds, 1),
           "overhead_per_run_seconds": round((dask_seconds - local_seconds) / runs, 2), "same_numbers": same,
           "cores": info.get("cores"), "cpu_model": info.get("cpu_model")}
    folder = Path(output_dir) if output_dir else paths.outputs_dir() / "benchmarks"
    write_csv(folder / f"scaling_{time.strftime('%Y-%m-%d_%H%M%S')}_{Path(params).stem}.csv", pd.DataFrame([row]))
    return row
