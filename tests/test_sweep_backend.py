"""Which Keras backend a sweep trains on: ``$KERAS_BACKEND``, else the file's ``backend``, else JAX where installed
(``training.config.sweep_backend``); the plan's backend names every run and reaches its kernel, the report
notebooks and the decoding study's jobs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from entropylab.experiments import sweep
from entropylab.experiments.params import ParamsError, load_params
from entropylab.training import RunConfig
from entropylab.training import store as runs
from entropylab.training.config import SWEEP_BACKEND, sweep_backend

RUNS = "  - notebook: notebooks/01_control.ipynb\n    grid: {loss: mse, seed: [0, 1]}\n"


def write_params(tmp_path: Path, backend: str | None) -> Path:
    path = tmp_path / "b.yaml"
    line = f"backend: {backend}\n" if backend is not None else ""
    path.write_text(f"experiment: b\nthreads: 1\n{line}defaults: {{dataset: synthetic, epochs: 1}}\nruns:\n{RUNS}")
    return path


def test_the_environment_wins_then_the_file_then_jax(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    jax_here = importlib.util.find_spec("jax") is not None
    assert sweep_backend(None) == (SWEEP_BACKEND if jax_here else "tensorflow")
    assert SWEEP_BACKEND == "jax"
    assert sweep_backend("tensorflow") == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert sweep_backend("jax") == "tensorflow"  # the variable, set for this invocation, wins over the file
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(ValueError, match=r"unknown Keras backend 'torch' \(from \$KERAS_BACKEND\)"):
        sweep_backend(None)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_plan_names_its_runs_and_starts_its_kernels_on_the_files_backend(tmp_path, monkeypatch, backend):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    plan = sweep.make_plan(write_params(tmp_path, backend), output_root=tmp_path / "out")
    assert plan.backend == backend
    assert [t.identity["backend"] for t in plan.tasks] == [backend, backend]
    assert all(t.env["KERAS_BACKEND"] == backend for t in plan.tasks)
    # on JAX every process the sweep starts (kernel, fused process, step) asks XLA for deterministic GPU kernels
    assert all(("xla_gpu_deterministic_ops=true" in t.env.get("XLA_FLAGS", "")) == (backend == "jax")
               for t in plan.tasks)
    expected = [RunConfig.from_dict(t.identity).run_name for t in plan.tasks]
    assert [t.name for t in plan.tasks] == expected
    other = "jax" if backend == "tensorflow" else "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", other)
    moved = sweep.make_plan(write_params(tmp_path, backend), output_root=tmp_path / "out")
    assert moved.backend == other  # and so every run is another run: nothing of the first backend is reused
    assert not {t.name for t in moved.tasks} & {t.name for t in plan.tasks}


def test_a_bad_backend_in_the_file_is_one_line(tmp_path):
    with pytest.raises(ParamsError, match=r"b\.yaml: backend: got 'pytorch'; expected one of tensorflow, jax"):
        load_params(write_params(tmp_path, "pytorch"))


def test_a_decoding_job_runs_on_the_backend_its_model_was_trained_on(tmp_path):
    from entropylab.studies.decoding.grid import Job, job_step

    run_dir = tmp_path / "run"
    runs.write_json(run_dir / runs.CONFIG, RunConfig(dataset="synthetic", loss="mse", backend="jax").to_dict())
    job = Job("s", "m", "run", str(run_dir), str(tmp_path / "cells"), spec=None)  # job_step reads no spec
    assert job_step(job).env == {"KERAS_BACKEND": "jax"}
    (run_dir / runs.CONFIG).write_text("{cut")
    assert job_step(job).env == {}  # a damaged config: the job itself fails on it, naming the file


def test_a_sweep_with_no_backend_named_trains_on_jax_end_to_end(tmp_path):
    """The default path as a user meets it: ``python -m entropylab sweep FILE`` with ``$KERAS_BACKEND`` unset
    trains its run in a kernel that really runs Keras on JAX (the run records the backend it ran on)."""
    import json
    import os
    import subprocess
    import sys

    from entropylab.paths import project_root

    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed here: the sweeps' default is then TensorFlow (tested above)")
    params = tmp_path / "j.yaml"
    params.write_text("experiment: j\nthreads: 1\ndefaults: {dataset: synthetic, epochs: 1, max_sequences: 300, "
                      "jit_compile: true}\nruns:\n  - notebook: notebooks/01_control.ipynb\n"
                      "    grid: {loss: cross_entropy}\n")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-m", "entropylab", "sweep", str(params), "--output-root",
                           str(tmp_path / "out")], cwd=project_root(Path(__file__).parent), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Keras on jax" in done.stdout
    [run_dir] = [p for p in (tmp_path / "out" / "runs" / "j").iterdir() if p.is_dir()]
    assert runs.is_complete(run_dir)
    assert json.loads((run_dir / runs.CONFIG).read_text())["backend"] == "jax"
    assert json.loads((run_dir / runs.METRICS).read_text())["versions"]["backend"] == "jax"
