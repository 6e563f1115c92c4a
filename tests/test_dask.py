"""The sweep on a real Dask cluster on loopback: a scheduler and two worker processes started by the test.

The cluster's numbers equal the local pool's; a worker killed while it trains loses no run; a client killed
mid-sweep leaves finished runs that a rerun does not redo. Everything the tests start is stopped, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from entropylab.experiments import execute, sweep
from entropylab.paths import project_root
from entropylab.training import store

ROOT = project_root(Path(__file__).parent)
QUICK = "dataset: synthetic, epochs: 1, max_sequences: 300, jit_compile: false"
METRICS = ["loss", "val_loss", "paper_entropy", "paper_kl", "val_cross_entropy", "val_perplexity"]
DASK = Path(sys.executable).with_name("dask")


def write_params(tmp_path: Path, runs_yaml: str) -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(f"experiment: d\nthreads: 1\ndefaults: {{{QUICK}}}\nruns:\n{runs_yaml}")
    return path


GRID = ("  - notebook: notebooks/01_control.ipynb\n    grid: {loss: [mse, cross_entropy]}\n"
        "  - notebook: notebooks/03_kl_regularization.ipynb\n    grid: {weight: [10.0, 100.0]}\n")
LONG = "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: cross_entropy, max_sequences: 4000, epochs: 3}\n"


def env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}


def sweep_command(params_file: Path, output_root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "entropylab", "sweep", str(params_file), "--output-root", str(output_root), *extra]


def _stop(processes: list[subprocess.Popen]) -> None:
    """Stop processes and everything they started (workers' kernels included)."""
    family = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            family += [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for process in processes:
        process.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path) -> Iterator[dict]:
    """``dask scheduler --host 127.0.0.1`` and two ``dask worker`` processes of one thread each (no nanny, so a
    killed worker stays dead and its task must move to the other one)."""
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 - closed below
    processes = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env())]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file():
            assert time.monotonic() < deadline, (tmp_path / "dask.log").read_text()
            time.sleep(0.1)
        workers = [subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                     "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                    stdout=log, stderr=subprocess.STDOUT, env=env()) for _ in range(2)]
        processes += workers
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield {"address": address, "workers": workers}
    finally:
        _stop(processes)
        log.close()


pytestmark = pytest.mark.skipif(shutil.which(str(DASK)) is None, reason="the dask command is not installed")


@pytest.fixture(scope="module")
def local_pool_results(tmp_path_factory) -> pd.DataFrame:
    """The LONG + GRID results of the local pool of two worker processes (the undisturbed reference)."""
    tmp = tmp_path_factory.mktemp("local")
    params_file = write_params(tmp, LONG + GRID)
    local = subprocess.run(sweep_command(params_file, tmp / "out", "--workers", "2"), cwd=ROOT, env=env(),
                           capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stdout + local.stderr
    return sorted_results(tmp / "out")


def sorted_results(output_root: Path) -> pd.DataFrame:
    table = pd.read_csv(output_root / "results" / "d.csv")
    return table.sort_values(["run", "epoch"]).reset_index(drop=True)


def test_the_cluster_gives_the_local_pools_numbers(tmp_path, cluster, local_pool_results):
    params_file = write_params(tmp_path, LONG + GRID)
    on_dask = subprocess.run(sweep_command(params_file, tmp_path / "dask", "--scheduler", cluster["address"]),
                             cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert on_dask.returncode == 0, on_dask.stdout + on_dask.stderr
    assert "2 Dask worker(s) at tcp://127.0.0.1" in on_dask.stdout and "dashboard" in on_dask.stdout
    for worker in cluster["workers"]:  # the sweep's end shut its warm kernels down: the idle workers hold none
        assert not psutil.Process(worker.pid).children(recursive=True)
    a = sorted_results(tmp_path / "dask")
    assert a["run"].nunique() == 5 and list(a["run"]) == list(local_pool_results["run"])
    pd.testing.assert_frame_equal(a[METRICS], local_pool_results[METRICS])  # same identity, same numbers


def test_a_killed_dask_worker_loses_no_run(tmp_path, cluster, local_pool_results):
    params_file = write_params(tmp_path, LONG + GRID)
    out = tmp_path / "out"
    tasks = sweep.make_plan(params_file, output_root=out).tasks
    long_run = Path(tasks[0].run_dir)
    process = subprocess.Popen(sweep_command(params_file, out, "--scheduler", cluster["address"]), cwd=ROOT,
                               env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (long_run / store.PROGRESS).is_file():
            assert process.poll() is None and time.monotonic() < deadline, "the long run did not start"
            time.sleep(0.05)
        pid = int((long_run / execute.LOCK).read_text().split()[0])
        assert pid in {w.pid for w in cluster["workers"]}  # a Dask worker process executes it
        os.kill(pid, signal.SIGKILL)
        stdout, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout  # Dask moved the lost task to the other worker: nothing failed
    assert all(store.is_complete(Path(t.run_dir)) and (Path(t.run_dir) / execute.NOTEBOOK).is_file() for t in tasks)
    table = sorted_results(out)
    assert sorted(table["run"].unique()) == sorted(t.name for t in tasks)  # every run, exactly once
    assert not table.duplicated(["run", "epoch"]).any()
    assert list(table["run"]) == list(local_pool_results["run"])
    pd.testing.assert_frame_equal(table[METRICS], local_pool_results[METRICS])  # as if nothing had happened


def test_a_killed_client_leaves_finished_runs_that_a_rerun_keeps(tmp_path, cluster):
    params_file = write_params(tmp_path, GRID + LONG)
    out = tmp_path / "out"
    tasks = sweep.make_plan(params_file, output_root=out).tasks
    process = subprocess.Popen(sweep_command(params_file, out, "--scheduler", cluster["address"]), cwd=ROOT,
                               env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not any((Path(t.run_dir) / execute.NOTEBOOK).is_file() for t in tasks):
            assert process.poll() is None and time.monotonic() < deadline, "no run finished"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    finished = {t.run_dir: (Path(t.run_dir) / store.COMPLETE).stat().st_mtime_ns for t in tasks
                if (Path(t.run_dir) / execute.NOTEBOOK).is_file()}
    assert finished
    time.sleep(2)  # tasks of the dead client still running on the workers are left to finish or be cancelled
    again = subprocess.run(sweep_command(params_file, out, "--scheduler", cluster["address"]), cwd=ROOT, env=env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(finished)} already finished" in again.stdout or "already finished" in again.stdout
    for run_dir, stamp in finished.items():  # not redone
        assert (Path(run_dir) / store.COMPLETE).stat().st_mtime_ns == stamp
    # a run the dead client's task was still executing is reported as running elsewhere; that task finishes it
    deadline = time.monotonic() + 180
    while not all(store.is_complete(Path(t.run_dir)) for t in tasks):
        assert time.monotonic() < deadline, "a run was lost"
        time.sleep(0.5)


def test_a_params_file_can_name_a_local_cluster(tmp_path):
    """``cluster: local`` in the file starts a Dask LocalCluster for the sweep (and stops it afterwards)."""
    params_file = tmp_path / "c.yaml"
    params_file.write_text(f"experiment: c\nthreads: 1\ncluster: local\nworkers: 1\ndefaults: {{{QUICK}}}\n"
                           "runs:\n  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n")
    result = subprocess.run(sweep_command(params_file, tmp_path / "out"), cwd=ROOT, env=env(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 to run on 1 Dask worker(s) at tcp://127.0.0.1" in result.stdout
    (run_dir,) = (tmp_path / "out" / "runs" / "c").iterdir()
    assert store.is_complete(run_dir) and (run_dir / execute.NOTEBOOK).is_file()
