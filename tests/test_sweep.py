"""The sweep: collection, planning, a real SIGKILL and restart, a failing grid point with two workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from test_store import cut

from entropylab.experiments import execute, sweep
from entropylab.experiments.params import load_params
from entropylab.experiments.results import collect, load_results
from entropylab.paths import project_root
from entropylab.training import RunConfig
from entropylab.training import store as runs
from entropylab.training.config import IDENTITY_COLUMNS

ROOT = project_root(Path(__file__).parent)
QUICK = "dataset: synthetic, epochs: 1, max_sequences: 300, jit_compile: false"


def write_params(tmp_path: Path, runs_yaml: str, experiment: str = "t") -> Path:
    path = tmp_path / f"{experiment}.yaml"
    path.write_text(f"experiment: {experiment}\nthreads: 1\ndefaults: {{{QUICK}}}\nruns:\n{runs_yaml}")
    return path


def fake_run(run_dir: Path, config: RunConfig, epochs: int, complete: bool = True, notebook: bool = True) -> None:
    """A run folder as train.run and the sweep leave it, without training."""
    runs.write_json(run_dir / runs.CONFIG, config.to_dict())
    history = pd.DataFrame({"epoch": range(1, epochs + 1), "loss": [0.5] * epochs, "val_loss": [0.6] * epochs,
                            "paper_entropy": [1.0] * epochs, "paper_kl": [2.0] * epochs, "seconds": [1.0] * epochs})
    runs.write_csv(run_dir / runs.HISTORY, history, checked=True)
    runs.write_json(run_dir / runs.METRICS, {"epochs_run": epochs, "best_epoch": epochs})
    if complete:
        runs.mark_complete(run_dir)
    if notebook:
        (run_dir / execute.NOTEBOOK).write_text("{}")


def sweep_command(params_file: Path, output_root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "entropylab", "sweep", str(params_file), "--output-root", str(output_root),
            *extra]


def sweep_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}


def test_collect_writes_a_tidy_table_of_complete_runs_only(tmp_path):
    runs_dir = tmp_path / "runs" / "exp"
    a = RunConfig(dataset="synthetic", loss="kl_regularized", weight=10.0, epochs=3)
    b = RunConfig(dataset="synthetic", loss="mse", seed=1, epochs=2)
    c = RunConfig(dataset="synthetic", loss="cross_entropy", epochs=4)
    fake_run(runs_dir / a.run_name, a, 3)
    fake_run(runs_dir / b.run_name, b, 2)
    fake_run(runs_dir / c.run_name, c, 4, complete=False)  # unfinished: never collected
    table = collect("exp", tmp_path)
    csv = tmp_path / "results" / "exp.csv"
    assert csv.is_file() and not list(csv.parent.glob("*.tmp"))
    on_disk = pd.read_csv(csv)
    n_head = 2 + len(IDENTITY_COLUMNS)
    # history, then the 4 reference columns, the run's best epoch (its last one without early stopping) and the size
    # of its training side (NaN here: these fake runs record no split sizes)
    assert on_disk.shape == table.shape == (3 + 2, n_head + 6 + 4 + 1 + 1)
    assert on_disk.columns[-1] == "train_sequences"
    assert on_disk.groupby("run")["best_epoch"].first().to_dict() == {a.run_name: 3, b.run_name: 2}
    assert list(on_disk.columns[:n_head]) == ["experiment", "run", *IDENTITY_COLUMNS]
    assert list(on_disk.columns[n_head:n_head + 6]) == ["epoch", "loss", "val_loss", "paper_entropy", "paper_kl",
                                                          "seconds"]
    assert set(on_disk["run"]) == {a.run_name, b.run_name}
    assert on_disk.groupby("run")["epoch"].apply(list).to_dict() == {a.run_name: [1, 2, 3], b.run_name: [1, 2]}
    assert set(on_disk["objective"]) == {"kl_regularized", "mse"} and set(on_disk["experiment"]) == {"exp"}
    assert on_disk.set_index("run").loc[a.run_name, "parameter"].unique().tolist() == ["weight"]
    assert not on_disk.duplicated(["run", "epoch"]).any()


def test_plan_states_and_dry_run(tmp_path, capsys):
    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n"
                                         "    grid: {loss: [mse, cross_entropy], seed: [0, 1]}\n")
    plan = sweep.make_plan(params_file, output_root=tmp_path / "out")
    assert [t.name.rsplit("-", 1)[0] for t in plan.tasks] == ["mse_seed0", "mse_seed1", "cross_entropy_seed0",
                                                              "cross_entropy_seed1"]
    assert all(t.name == t.name.rsplit("-", 1)[0] + "-" + RunConfig.from_dict(
        {k: v for k, v in t.identity.items()}).identity_hash for t in plan.tasks)
    assert all(t.identity["threads"] == 1 for t in plan.tasks)  # the file's threads are part of each identity
    assert all(t.parameters["output_root"] == str((tmp_path / "out").resolve()) for t in plan.tasks)
    assert all(t.parameters["experiment"] == "t" and Path(t.run_dir).parent == plan.runs_dir for t in plan.tasks)
    first, second, third, _ = plan.tasks
    points = load_params(params_file).points
    fake_run(Path(first.run_dir), points[0].config(threads=1, backend=plan.backend), 1)
    fake_run(Path(second.run_dir), points[1].config(threads=1, backend=plan.backend), 1, notebook=False)
    other = RunConfig(dataset="synthetic", loss="cross_entropy", epochs=7)  # another config in that folder
    fake_run(Path(third.run_dir), other, 7)
    assert [sweep.task_state(t) for t in plan.tasks] == ["done", "todo", "conflict", "todo"]
    runs.mark_failed(Path(plan.tasks[3].run_dir), "boom")
    assert sweep.task_state(plan.tasks[3]) == "failed"
    capsys.readouterr()
    sweep.dry_run(params_file, output_root=tmp_path / "out")
    printed = capsys.readouterr().out
    assert "1 done" in printed and "1 conflict" in printed and "1 failed" in printed


def test_auto_without_nyt_data_uses_the_synthetic_experiment(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ENTROPYLAB_DATA", raising=False)
    monkeypatch.setattr("entropylab.data.nyt.candidate_data_dirs", lambda: [tmp_path / "none"])
    params_file = tmp_path / "a.yaml"
    params_file.write_text("experiment: paper\ndefaults: {dataset: auto}\n"
                           "runs:\n  - notebook: notebooks/01_control.ipynb\n")
    plan = sweep.make_plan(params_file, output_root=tmp_path)
    assert plan.experiment == "paper-synthetic"
    assert [t.parameters["dataset"] for t in plan.tasks] == ["synthetic"]
    assert plan.runs_dir == tmp_path / "runs" / "paper-synthetic"
    assert capsys.readouterr().out.count("SYNTHETIC") == 1  # said once, in one line


def test_resume_after_sigkill_redoes_only_unfinished_runs(tmp_path):
    out = tmp_path / "out"
    params_file = write_params(tmp_path, (
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n"
        # a longer run, so that the kill falls inside it
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: cross_entropy, max_sequences: 4000, epochs: 3}\n"
        "  - notebook: notebooks/03_kl_regularization.ipynb\n    grid: {weight: 10.0}\n"))
    first, second, third = (Path(t.run_dir) for t in sweep.make_plan(params_file, output_root=out).tasks)
    process = subprocess.Popen(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 150
        while not (second / runs.CONFIG).is_file():  # the second run has started training
            assert process.poll() is None and time.monotonic() < deadline, "the sweep did not reach run 2"
            time.sleep(0.05)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"processes outlived the killed sweep: {alive}"  # kernels and workers die with it

    assert runs.is_complete(first) and (first / execute.NOTEBOOK).is_file()
    assert not runs.is_complete(second) and not (second / execute.NOTEBOOK).is_file()
    marker = (first / runs.COMPLETE).stat().st_mtime_ns, (first / runs.COMPLETE).read_bytes()
    notebook_mtime = (first / execute.NOTEBOOK).stat().st_mtime_ns
    table = pd.read_csv(out / "results" / "t.csv")  # written after run 1 finished
    assert set(table["run"]) == {first.name}

    again = subprocess.run(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 already finished, 2 to run" in again.stdout
    assert ((first / runs.COMPLETE).stat().st_mtime_ns, (first / runs.COMPLETE).read_bytes()) == marker
    assert (first / execute.NOTEBOOK).stat().st_mtime_ns == notebook_mtime  # not re-executed
    for folder in (second, third):
        assert runs.is_complete(folder) and (folder / execute.NOTEBOOK).is_file()
        assert runs.read_json(folder / runs.METRICS)["threads"] == 1  # the file's threads reached the kernel
        assert runs.read_json(folder / runs.CONFIG)["threads"] == 1
        assert (folder / "notebook.kernel.log").is_file()  # the kernel's start-up lines, kept off the terminal
        assert not list(folder.glob(".*partial*")) and not (folder / runs.FAILED).exists()
    table = pd.read_csv(out / "results" / "t.csv")
    assert table.groupby("run")["epoch"].max().to_dict() == {first.name: 1, second.name: 3, third.name: 1}


def test_failing_point_is_isolated_counted_and_explained(tmp_path):
    out = tmp_path / "out"
    params_file = write_params(tmp_path, (
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: cross_entropy}\n"
        # an absurd learning rate makes the loss NaN in epoch 1: the run stops and its notebook raises
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse, learning_rate: 1.0e+30}\n"))
    result = subprocess.run(sweep_command(params_file, out, "--workers", "2"), cwd=ROOT, env=sweep_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr  # the number of failed runs
    assert "2 to run on 2 worker(s) of" in result.stdout
    good, bad = (Path(t.run_dir) for t in sweep.make_plan(params_file, output_root=out).tasks)
    assert runs.is_complete(good) and (good / execute.NOTEBOOK).is_file()
    assert runs.is_failed(bad) and not runs.is_complete(bad)
    reason = runs.failure_reason(bad)
    assert "01_control.ipynb failed" in reason and "NaN" in reason
    assert (bad / execute.FAILED_NOTEBOOK).is_file() and not (bad / execute.NOTEBOOK).exists()
    # the console says why, from what the run recorded, not only papermill's exception name
    assert f"FAILED {bad.name}: training loss became NaN or infinite in epoch 1" in result.stdout, result.stdout
    assert set(pd.read_csv(out / "results" / "t.csv")["run"]) == {good.name}


def test_cli_refuses_a_malformed_file_before_running(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: x\nruns:\n  - notebook: notebooks/03_kl_regularization.ipynb\n"
                   "    grid: {weight: [-1]}\n")
    result = subprocess.run(sweep_command(bad, tmp_path / "out"), cwd=ROOT, env=sweep_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert f"{bad}: runs[0].grid.weight[0]: got -1; expected a finite number >= 0" in result.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="--workers must be an integer >= 1, got 0"):
        sweep.run_sweep(bad, workers=0, output_root=tmp_path / "out")


@pytest.mark.parametrize("workers", [1, 2])
def test_kernel_environment_is_applied_then_restored(workers, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("ENTROPYLAB_THREADS", raising=False)
    env = sweep.kernel_environment(max(1, sweep.available_cores() // workers))
    with sweep.applied_environment(env):
        assert os.environ["ENTROPYLAB_THREADS"] == str(max(1, sweep.available_cores() // workers))
        assert "MPLBACKEND" not in os.environ  # the kernels draw inline
    assert os.environ["MPLBACKEND"] == "Agg" and "ENTROPYLAB_THREADS" not in os.environ


def test_reproduce_runs_the_sweep_then_the_reports_and_a_second_time_skips_both(tmp_path, capsys):
    import nbformat

    from entropylab.studies.reproduce import reproduce

    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n")
    report = tmp_path / "06_report.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('experiment = "x"\noutput_root = None', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import pandas as pd\nfrom pathlib import Path\n"
                                  "table = pd.read_csv(Path(output_root) / 'results' / f'{experiment}.csv')\n"
                                  "print(experiment, len(table))"),
    ]), report)
    out = tmp_path / "out"
    assert reproduce(params_file, [report, tmp_path / "absent.ipynb"], out) == 0
    executed = out / "notebooks" / "t" / report.name  # under the experiment's own name
    assert "t 1" in nbformat.read(executed, as_version=4).cells[-1].outputs[0]["text"]
    assert "absent.ipynb: not in" in capsys.readouterr().out
    mtime = executed.stat().st_mtime_ns
    assert reproduce(params_file, [report], out) == 0
    printed = capsys.readouterr().out
    assert "1 already finished, 0 to run" in printed and "inputs unchanged" in printed
    assert executed.stat().st_mtime_ns == mtime


def test_progress_counts_epochs_within_running_runs(tmp_path):
    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n"
                                         "    grid: {loss: [mse, cross_entropy], epochs: 4}\n")
    plan = sweep.make_plan(params_file, output_root=tmp_path / "out")
    progress = sweep.EpochProgress(plan, done=0, enabled=False)
    assert progress.bar.total == 8
    first = plan.tasks[0]
    progress.start(first)
    runs.write_json(Path(first.run_dir) / runs.PROGRESS, {"epoch": 3, "epochs": 4, "step": 5, "steps": 10})
    progress.refresh()
    assert progress.bar.n == pytest.approx(2.5)  # two epochs done and half of the third
    progress.finish(first)
    assert progress.bar.n == pytest.approx(4) and progress.runs_done == 1
    progress.close()


def test_reproduce_defaults_to_the_environments_outputs(tmp_path, monkeypatch):
    from entropylab.studies import reproduce

    seen = {}
    monkeypatch.setattr(reproduce, "reproduce", lambda params, notebooks, output_root=None, study=None: seen.update(
        output_root=output_root) or 0)
    monkeypatch.setenv("ENTROPYLAB_OUTPUTS", str(tmp_path / "mine"))
    assert reproduce.main() == 0
    from entropylab import paths

    assert paths.outputs_dir(seen["output_root"]) == tmp_path / "mine"


# --- faults: a dead worker, a crash after a run finished, folders that cannot be written, two sweeps at once --------

def _wait_for(condition, seconds: float, what: str, process=None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process is None or process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _worker_pid(run_dir: Path) -> int:
    """The pid of the process executing a run (written into its lock file by the run lock)."""
    return int((run_dir / execute.LOCK).read_text().split()[0])


def test_a_killed_worker_fails_only_its_own_run(tmp_path):
    out = tmp_path / "out"
    params_file = write_params(tmp_path, (
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n"
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: cross_entropy, max_sequences: 4000, epochs: 3}\n"
        "  - notebook: notebooks/03_kl_regularization.ipynb\n    grid: {weight: [10.0, 100.0]}\n"))
    tasks = sweep.make_plan(params_file, output_root=out).tasks
    victim = Path(tasks[1].run_dir)
    process = subprocess.Popen(sweep_command(params_file, out, "--workers", "2"), cwd=ROOT, env=sweep_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for(lambda: (victim / runs.PROGRESS).is_file(), 180, "the long run to train", process)
        os.kill(_worker_pid(victim), signal.SIGKILL)
        stdout, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stdout  # one failed run: the killed one
    assert "killed by SIGKILL" in runs.failure_reason(victim) and not runs.is_complete(victim)
    for task in (tasks[0], tasks[2], tasks[3]):  # the others, before, beside and after it, all finished
        assert runs.is_complete(Path(task.run_dir)) and (Path(task.run_dir) / execute.NOTEBOOK).is_file()
    again = subprocess.run(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and "3 already finished, 1 to run" in again.stdout, again.stdout
    assert runs.is_complete(victim)


def test_a_lost_worker_never_unmarks_a_finished_run(tmp_path):
    config = RunConfig(dataset="synthetic", loss="mse", epochs=1)
    run_dir = tmp_path / config.run_name
    fake_run(run_dir, config, 1, notebook=False)  # killed after COMPLETE, before its notebook was renamed
    task = execute.Task("nb.ipynb", {}, str(run_dir), config.run_name, config.identity(), 1)
    outcome = execute.record_lost_worker(task, "killed by SIGKILL")
    assert outcome.status == "failed" and runs.is_complete(run_dir)  # the training it finished stays finished
    assert "SIGKILL" in runs.failure_reason(run_dir)
    (run_dir / runs.FAILED).unlink()
    with execute.run_lock(run_dir):  # another process executes it now: nothing is written under its feet
        subprocess.run([sys.executable, "-c", "from entropylab.experiments import execute\n"
                        f"t = execute.Task('nb', {{}}, {str(run_dir)!r}, 'x', {{}}, 1)\n"
                        "execute.record_lost_worker(t, 'x')"], check=True, cwd=ROOT)
    assert not (run_dir / runs.FAILED).exists()


def test_folders_that_cannot_be_written_are_one_line_errors(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n")
    for argv in (sweep_command(params_file, blocker / "outputs"),
                 [sys.executable, "-m", "entropylab", "train", "--dataset", "synthetic", "--epochs", "1",
                  "--max-sequences", "200", "--output", str(blocker)]):
        result = subprocess.run(argv, cwd=ROOT, env=sweep_env(), capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and str(blocker) in lines[0] and "writable" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    task = execute.Task("nb.ipynb", {}, str(blocker / "run"), "run", {}, 1)
    outcome = execute.execute_task(task)
    assert outcome.status == "failed" and "cannot write" in outcome.error and str(blocker) in outcome.error


def test_two_sweeps_of_one_file_share_the_work_and_both_succeed(tmp_path):
    out = tmp_path / "out"
    params_file = write_params(tmp_path, (
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: cross_entropy, max_sequences: 3000, epochs: 2}\n"
        "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse}\n"))
    first_run = Path(sweep.make_plan(params_file, output_root=out).tasks[0].run_dir)
    one = subprocess.Popen(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for(lambda: (first_run / execute.LOCK).is_file() and (first_run / execute.LOCK).read_text(), 120,
                  "the first sweep to take its first run", one)
        two = subprocess.run(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(), capture_output=True,
                             text=True, timeout=300)
        one_out, _ = one.communicate(timeout=300)
    finally:
        if one.poll() is None:
            one.kill()
    assert two.returncode == 0 and one.returncode == 0, two.stdout + one_out
    assert "running elsewhere" in two.stdout and "FAILED" not in two.stdout
    assert all(runs.is_complete(Path(t.run_dir)) for t in sweep.make_plan(params_file, output_root=out).tasks)


def test_a_sequence_cap_too_small_to_split_is_refused_before_running(tmp_path):
    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n"
                                         "    grid: {loss: mse, max_sequences: 2, split: headline}\n")
    result = subprocess.run(sweep_command(params_file, tmp_path / "out"), cwd=ROOT, env=sweep_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "max_sequences 2 is too small" in result.stderr, result.stderr
    assert not (tmp_path / "out" / "runs").exists()


def test_a_damaged_finished_run_is_planned_again_and_never_collected(tmp_path, capsys):
    """A finished run whose history is cut to its header, mid-row or to 0 bytes, or whose metrics.json is cut, is
    "damaged": the sweep trains it again, and the collection refuses it (one line naming the file and the fix) or,
    in the sweep, leaves it out."""
    out = tmp_path / "out"
    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n"
                                         "    grid: {loss: mse, seed: [0, 1, 2, 3, 4]}\n")
    plan = sweep.make_plan(params_file, output_root=out)
    for task, point in zip(plan.tasks, load_params(params_file).points, strict=True):
        fake_run(Path(task.run_dir), point.config(threads=1, backend=plan.backend), 5)
    intact, *damaged = (Path(t.run_dir) for t in plan.tasks)
    files = [damaged[0] / runs.HISTORY, damaged[1] / runs.HISTORY, damaged[2] / runs.HISTORY,
             damaged[3] / runs.METRICS]
    for path, how in zip(files, ("one line", "mid-row", "0 bytes", "half"), strict=True):
        cut(path, how)
    assert [sweep.task_state(t) for t in plan.tasks] == ["done", "damaged", "damaged", "damaged", "damaged"]
    with pytest.raises(runs.DamagedFileError) as excinfo:
        collect("t", out)
    assert str(excinfo.value) == (f"{files[0]} is damaged (0 of 5 rows); run the sweep again, which trains a damaged "
                                  f"run again, or delete the run folder {damaged[0]}")
    left_out: list[runs.DamagedFileError] = []
    assert set(collect("t", out, on_damaged=left_out.append)["run"]) == {intact.name}
    assert [(d.path, d.what) for d in left_out] == [
        (files[0], "0 of 5 rows"), (files[1], "3 of 5 rows, cut mid-row"), (files[2], "0 bytes; it had 5 rows"),
        (files[3], left_out[3].what)]
    assert left_out[3].what.startswith("not valid JSON: ")
    capsys.readouterr()
    sweep.dry_run(params_file, output_root=out)
    assert "1 done, 4 damaged" in capsys.readouterr().out


def test_a_cut_results_table_is_one_line_naming_it_and_the_fix(tmp_path):
    a = RunConfig(dataset="synthetic", loss="mse", epochs=3)
    b = RunConfig(dataset="synthetic", loss="mse", seed=1, epochs=2)
    fake_run(tmp_path / "runs" / "exp" / a.run_name, a, 3)
    fake_run(tmp_path / "runs" / "exp" / b.run_name, b, 2)
    table = collect("exp", tmp_path)
    shutil.rmtree(tmp_path / "runs")  # the table alone, as a report made elsewhere reads it
    csv = tmp_path / "results" / "exp.csv"
    assert len(load_results("exp", tmp_path)) == len(table) == 5
    fix = ("run `python -m entropylab sweep FILE` again to collect it (FILE: the parameter file of experiment 'exp', "
           "e.g. params/<file>.yaml)")
    cut(csv, "80 %")
    with pytest.raises(runs.DamagedFileError) as excinfo:
        load_results("exp", tmp_path)
    assert str(excinfo.value) == f"{csv} is damaged (3 of 5 rows, cut mid-row); {fix}"
    (tmp_path / "results" / "exp.csv.sha256").unlink()  # a table written before the checksums: cut mid-row
    with pytest.raises(runs.DamagedFileError, match=r"exp.csv is damaged \(3 whole rows, cut mid-row\); run `"):
        load_results("exp", tmp_path, source="csv")


def test_the_sweep_trains_damaged_runs_again_and_collects_the_same_results(tmp_path):
    """Through the command line: a history cut mid-row, a metrics.json cut, a results table cut to 80 %: the rerun
    names each damaged run file in one line, trains those runs again and ends with the same table (the other cuts
    of a history: test_train.py and test_a_damaged_finished_run_is_planned_again_and_never_collected)."""
    out = tmp_path / "out"
    params_file = write_params(tmp_path, "  - notebook: notebooks/01_control.ipynb\n"
                                         "    grid: {loss: [mse, cross_entropy], epochs: 2}\n")
    first = subprocess.run(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(), capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    csv = out / "results" / "t.csv"
    before = pd.read_csv(csv).drop(columns="seconds")
    a, b = (Path(t.run_dir) for t in sweep.make_plan(params_file, output_root=out).tasks)
    history = (a / runs.HISTORY).read_bytes()  # 2 epochs: keep the header, row 1 and part of row 2
    (a / runs.HISTORY).write_bytes(history[: history.rindex(b"\n", 0, len(history) - 1) + 10])
    cut(b / runs.METRICS, "half")
    cut(csv, "80 %")
    again = subprocess.run(sweep_command(params_file, out), cwd=ROOT, env=sweep_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stdout + again.stderr
    assert "0 already finished, 2 to run" in again.stdout, again.stdout
    lines = [line for line in again.stdout.splitlines() if " is damaged (" in line]
    assert len(lines) == 2, again.stdout
    for path, what, line in zip((a / runs.HISTORY, b / runs.METRICS), ("1 of 2 rows, cut mid-row", "not valid JSON"),
                                lines, strict=True):
        assert line.startswith(f"{path} is damaged ({what}"), line
        assert line.endswith(f"; the sweep trains run {path.parent.name} again"), line
    for folder in (a, b):
        assert runs.run_damage(folder) is None and runs.is_complete(folder)
    after = load_results("t", out, source="csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(after, before.astype(after.dtypes.to_dict()), check_exact=True)
