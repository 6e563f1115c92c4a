"""Warm kernels: a notebook in a used kernel gives a fresh kernel's numbers; the rules that replace a kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from entropylab.experiments import execute, kernels, sweep
from entropylab.training import store
from entropylab.training.train import load_trained

QUICK = "dataset: synthetic, epochs: 1, max_sequences: 300, jit_compile: false"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def plan_tasks(tmp_path: Path, output: Path, runs_yaml: str) -> list[execute.Task]:
    params = tmp_path / "k.yaml"
    params.write_text(f"experiment: k\nthreads: 1\ndefaults: {{{QUICK}}}\nruns:\n{runs_yaml}")
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
            "  - notebook: notebooks/07_objectives_train.ipynb\n    grid: {loss: entropy_regularized, weight: 0.1,"
            " generation_prefixes: 40}\n"
            # an absurd learning rate: NaN in epoch 1, the notebook raises
            "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse, learning_rate: 1.0e+30}\n")
    first, second, failing = plan_tasks(tmp_path, tmp_path / "warm", runs)
    fresh = plan_tasks(tmp_path, tmp_path / "fresh", runs)[1]
    kernel = kernels.WarmKernel(execute.KERNEL_ARGUMENTS, execute.die_with_parent, max_runs=10)
    try:
        assert execute.execute_task(first, kernel).status == "complete"
        first_pid = kernel_pid(kernel)
        outcome = execute.execute_task(second, kernel)  # after another run in the same kernel
        assert outcome.status == "complete", outcome.error
        assert kernel.runs == 2 and kernel_pid(kernel) == first_pid  # one kernel executed both
        failed = execute.execute_task(failing, kernel)
        assert failed.status == "failed" and "NaN" in failed.error
        assert kernel_pid(kernel) is None  # the kernel a notebook failed in is not reused
    finally:
        kernel.close()
    assert kernel.closed

    assert execute.execute_task(fresh).status == "complete"  # the same run in a kernel of its own
    (warm_history, warm_metrics), (fresh_history, fresh_metrics) = numbers(second.run_dir), numbers(fresh.run_dir)
    pd.testing.assert_frame_equal(warm_history, fresh_history, check_exact=True)
    # compared as JSON text: NaN (a word band without labels) equals itself there
    assert json.dumps(warm_metrics, sort_keys=True) == json.dumps(fresh_metrics, sort_keys=True)
    assert warm_metrics["generation"]
    assert (Path(second.run_dir) / "notebook.kernel.log").is_file()  # each run keeps its part of the kernel's log
    model, _, _ = load_trained(second.run_dir)  # its weights load into a fresh model (Keras' names were reset)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in load_trained(fresh.run_dir)[0].get_weights()]


def test_a_kernel_is_replaced_after_its_runs_for_another_environment_and_after_a_failure(tmp_path):
    kernel = kernels.WarmKernel(execute.KERNEL_ARGUMENTS, execute.die_with_parent, max_runs=2)
    env = {"ENTROPYLAB_THREADS": "1"}
    pids = []
    try:
        for ok, this_env in [(True, env), (True, env), (True, env), (False, {**env, "ENTROPYLAB_THREADS": "2"}),
                             (True, {**env, "ENTROPYLAB_THREADS": "2"})]:
            kernel.manager(NOTEBOOKS, this_env)
            pids.append(kernel_pid(kernel))
            kernel.finished(ok, tmp_path / f"run{len(pids)}.log")
    finally:
        kernel.close()
    # two runs each; then new threads; then a failure: a new kernel each time
    assert pids[0] == pids[1] and len({pids[1], pids[2], pids[3], pids[4]}) == 4, pids
    assert all((tmp_path / f"run{n}.log").is_file() for n in range(1, 6))
    assert kernel.closed


def in_kernel(kernel: kernels.WarmKernel, expression: str) -> str:
    """The repr of ``expression`` evaluated in the warm kernel."""
    reply = kernel._client.execute_interactive("", user_expressions={"value": expression}, timeout=60)
    return reply["content"]["user_expressions"]["value"]["data"]["text/plain"]


def test_a_reset_puts_back_the_environment_folder_and_path_and_clears_the_namespace(tmp_path):
    kernel = kernels.WarmKernel(execute.KERNEL_ARGUMENTS, execute.die_with_parent, max_runs=5)
    try:
        kernel.manager(NOTEBOOKS, {"ENTROPYLAB_THREADS": "1"})
        pid = kernel_pid(kernel)
        start = in_kernel(kernel, "__import__('os').getcwd()")
        kernel._client.execute_interactive(  # what a notebook might leave behind
            "import os, sys\nos.environ['ENTROPYLAB_LEFT'] = '1'\nos.chdir('/')\nsys.path.insert(0, '/nowhere')\n"
            "left = 1", timeout=60)
        kernel.finished(True)
        kernel.manager(NOTEBOOKS, {"ENTROPYLAB_THREADS": "1"})
        assert kernel_pid(kernel) == pid  # the same kernel, reset
        assert in_kernel(kernel, "__import__('os').getcwd()") == start == repr(str(NOTEBOOKS))
        assert in_kernel(kernel, "__import__('os').environ.get('ENTROPYLAB_LEFT')") == "None"
        assert in_kernel(kernel, "'/nowhere' in __import__('sys').path") == "False"
        assert in_kernel(kernel, "'left' in globals()") == "False"
        # the input history stays in memory: no ~/.ipython database written by every worker's kernel at once
        assert in_kernel(kernel, "get_ipython().history_manager.hist_file") == "':memory:'"
    finally:
        kernel.close()


@pytest.mark.parametrize("text", ["0", "-3", "many", "1.5"])
def test_runs_per_kernel_refuses_what_is_not_a_count(monkeypatch, text):
    monkeypatch.setenv(kernels.RUNS_VARIABLE, text)
    with pytest.raises(ValueError, match=r"ENTROPYLAB_KERNEL_RUNS must be an integer >= 1 \(1: a fresh kernel"):
        kernels.runs_per_kernel()
    monkeypatch.setenv(kernels.RUNS_VARIABLE, "7")
    assert kernels.runs_per_kernel() == 7
    monkeypatch.delenv(kernels.RUNS_VARIABLE)
    assert kernels.runs_per_kernel() == kernels.DEFAULT_RUNS


def test_a_kernel_that_cannot_start_fails_its_run_with_the_reason(tmp_path):
    runs = "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n"
    task = plan_tasks(tmp_path, tmp_path / "out", runs)[0]
    kernel = kernels.WarmKernel(["--no-such-flag"], execute.die_with_parent)  # the kernel exits at once
    try:
        outcome = execute.execute_task(task, kernel)  # returns: the worker that called it lives on
    finally:
        kernel.close()
    assert outcome.status == "failed" and "Kernel died before replying" in outcome.error
    assert store.is_failed(Path(task.run_dir)) and not store.is_complete(Path(task.run_dir))
    assert kernel_pid(kernel) is None


class _Quiet:
    """The progress interface of ``engines.run_local``, doing nothing."""

    def start(self, task: execute.Task) -> None: ...

    def refresh(self) -> None: ...


def test_shared_workers_serve_the_next_call_and_end_with_their_block(tmp_path, monkeypatch):
    import multiprocessing
    from dataclasses import replace

    from entropylab.experiments import engines

    # points whose notebook is missing: each fails in its worker (after a kernel start), all this test needs
    tasks = [replace(t, notebook=str(tmp_path / "missing.ipynb"))
             for t in plan_tasks(tmp_path, tmp_path / "out", "  - notebook: notebooks/01_control.ipynb\n"
                                 "    grid: {loss: mse, seed: [0, 1, 2, 3, 4, 5]}\n")]
    outcomes: list[execute.Outcome] = []

    def idle_processes() -> list:
        return [process for _, process in engines._shared_blocks()[-1].idle]

    with engines.shared_workers():
        engines.run_local(tasks[:2], 2, outcomes.append, _Quiet())
        first = idle_processes()
        assert len(first) == 2 and all(p.is_alive() for p in first)  # kept after the call
        with engines.shared_workers():  # an inner block changes nothing
            engines.run_local(tasks[2:4], 2, outcomes.append, _Quiet())
        assert {p.pid for p in idle_processes()} == {p.pid for p in first}  # the same workers ran the next call
        monkeypatch.setenv("ENTROPYLAB_SHARED_WORKERS_TEST", "1")  # a worker keeps its start's environment
        engines.run_local(tasks[4:], 2, outcomes.append, _Quiet())
        second = idle_processes()
        assert not {p.pid for p in second} & {p.pid for p in first} and not any(p.is_alive() for p in first)
    assert not engines._shared_blocks() and not any(p.is_alive() for p in second)  # the block's end shut them down
    assert [o.status for o in outcomes] == ["failed"] * 6 and all("missing.ipynb" in o.error for o in outcomes)

    before = set(multiprocessing.active_children())
    engines.run_local(tasks[:1], 1, outcomes.append, _Quiet())  # outside a block nothing is kept
    assert set(multiprocessing.active_children()) <= before


def test_a_dask_threads_kernel_serves_one_sweep_and_is_closed_at_its_end(tmp_path):
    from dataclasses import replace

    from entropylab.experiments import dask_kernels

    task = replace(plan_tasks(tmp_path, tmp_path / "out", "  - notebook: notebooks/01_control.ipynb\n"
                              "    grid: {loss: mse}\n")[0], notebook=str(tmp_path / "missing.ipynb"))
    try:
        assert dask_kernels.execute(task, "sweep-a", 7).status == "failed"
        (first,) = dask_kernels._KERNELS.values()  # this thread's, for sweep-a
        assert first.sweep == "sweep-a" and first.kernel.max_runs == 7  # the sweep's runs per kernel, not the worker's
        dask_kernels.execute(task, "sweep-a", 7)
        assert next(iter(dask_kernels._KERNELS.values())) is first  # the same sweep: the same kernel
        dask_kernels.execute(task, "sweep-b", 7)  # another sweep: another kernel, the old one shut down
        (second,) = dask_kernels._KERNELS.values()
        assert second is not first and second.sweep == "sweep-b" and first.kernel.closed
        assert dask_kernels.close("sweep-a") == 0 and not second.kernel.closed  # only the named sweep's
        assert dask_kernels.close("sweep-b") == 1 and second.kernel.closed and not dask_kernels._KERNELS
    finally:
        dask_kernels.close_all()
