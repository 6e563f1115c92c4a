"""Warm kernels: several notebooks in one kernel give the numbers of a fresh kernel each; a failure replaces it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from entropylab.experiments import execute, kernels, sweep
from entropylab.training import store
from entropylab.training.train import load_trained

QUICK = "dataset: synthetic, epochs: 1, max_sequences: 300, jit_compile: false"


def plan_tasks(tmp_path: Path, output: Path, runs_yaml: str, threads: int = 1) -> list[execute.Task]:
    params = tmp_path / "k.yaml"
    params.write_text(f"experiment: k\nthreads: {threads}\ndefaults: {{{QUICK}}}\nruns:\n{runs_yaml}")
    return sweep.make_plan(params, output_root=output).tasks


def kernel_pid(kernel: kernels.WarmKernel) -> int | None:
    manager = kernel._manager  # which process runs the notebooks: what this tests
    return None if manager is None else manager.provisioner.process.pid


def numbers(run_dir: str) -> tuple[pd.DataFrame, dict]:
    history = pd.read_csv(Path(run_dir) / store.HISTORY).drop(columns=["seconds"])
    metrics = store.read_json(Path(run_dir) / store.METRICS)
    best = {k: v for k, v in metrics["best"].items() if k != "seconds"}
    return history, {"generation": metrics["generation"], "references": metrics["references"], "best": best}


def test_a_warm_kernel_gives_a_fresh_kernels_numbers_and_is_replaced_after_a_failure(tmp_path):
    runs = ("  - notebook: notebooks/03_kl_regularization.ipynb\n    grid: {weight: 10.0}\n"
            "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n"
            "  - notebook: notebooks/07_objectives_train.ipynb\n    grid: {loss: entropy_regularized, weight: 0.1,"
            " generation_prefixes: 40}\n"
            # an absurd learning rate: NaN in epoch 1, the notebook raises
            "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse, learning_rate: 1.0e+30}\n")
    warm_tasks = plan_tasks(tmp_path, tmp_path / "warm", runs)
    fresh_tasks = plan_tasks(tmp_path, tmp_path / "fresh", runs)
    kernel = kernels.WarmKernel(execute.KERNEL_ARGUMENTS, execute.die_with_parent, max_runs=10)
    try:
        outcomes = [execute.execute_task(warm_tasks[0], kernel)]
        first_pid = kernel_pid(kernel)
        outcomes.append(execute.execute_task(warm_tasks[1], kernel))
        outcomes.append(execute.execute_task(warm_tasks[2], kernel))
        assert [o.status for o in outcomes] == ["complete"] * 3, [o.error for o in outcomes]
        assert kernel.runs == 3 and kernel_pid(kernel) == first_pid  # one kernel executed all three
        failed = execute.execute_task(warm_tasks[3], kernel)
        assert failed.status == "failed" and "NaN" in failed.error
        assert kernel_pid(kernel) is None  # the kernel a notebook failed in is not reused
    finally:
        kernel.close()
    assert kernel_pid(kernel) is None and kernel.closed

    for task in fresh_tasks[1:3]:  # the runs that came second and third in the warm kernel, each in its own kernel
        assert execute.execute_task(task).status == "complete"
    for warm, fresh in zip(warm_tasks[1:3], fresh_tasks[1:3], strict=True):
        (warm_history, warm_metrics), (fresh_history, fresh_metrics) = numbers(warm.run_dir), numbers(fresh.run_dir)
        pd.testing.assert_frame_equal(warm_history, fresh_history, check_exact=True)
        assert warm_metrics == fresh_metrics
        assert (Path(warm.run_dir) / "notebook.kernel.log").is_file()  # each run keeps its part of the log
        model, _, _ = load_trained(warm.run_dir)  # saved weights load into a fresh model (same layer names)
        assert [w.shape for w in model.get_weights()] == [w.shape for w in load_trained(fresh.run_dir)[0].get_weights()]


def test_a_kernel_is_replaced_after_its_runs_and_for_another_environment(tmp_path):
    runs = "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse, seed: [0, 1, 2]}\n"
    tasks = plan_tasks(tmp_path, tmp_path / "out", runs)
    two_threads = plan_tasks(tmp_path, tmp_path / "other", runs, threads=2)[2]
    kernel = kernels.WarmKernel(execute.KERNEL_ARGUMENTS, execute.die_with_parent, max_runs=2)
    pids = []
    try:
        for task in [*tasks, two_threads]:
            assert execute.execute_task(task, kernel).status == "complete"
            pids.append(kernel_pid(kernel))
    finally:
        kernel.close()
    assert pids[0] == pids[1] and len({pids[1], pids[2], pids[3]}) == 3  # two runs each; new threads, new kernel
    assert store.read_json(Path(two_threads.run_dir) / store.METRICS)["threads"] == 2


@pytest.mark.parametrize("text", ["0", "-3", "many", "1.5"])
def test_runs_per_kernel_refuses_what_is_not_a_count(monkeypatch, text):
    monkeypatch.setenv(kernels.RUNS_VARIABLE, text)
    with pytest.raises(ValueError, match=r"ENTROPYLAB_KERNEL_RUNS must be an integer >= 1 \(1: a fresh kernel"):
        kernels.runs_per_kernel()
    monkeypatch.setenv(kernels.RUNS_VARIABLE, "7")
    assert kernels.runs_per_kernel() == 7
    monkeypatch.delenv(kernels.RUNS_VARIABLE)
    assert kernels.runs_per_kernel() == kernels.DEFAULT_RUNS
