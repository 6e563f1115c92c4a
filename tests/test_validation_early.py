"""Everything is checked before anything is trained (issue 20, cases 6 and 7): a decoding section's sizes against
the runs' data splits (more prefixes or hyperfitting headlines than there are is refused, naming the most; ``all``
records the number used), a bad decoding section refused by ``reproduce`` before its sweep and by ``sweep
--dry-run``, and the command line and outputs folder refused at dry-run. All on the smoke decoding file, without
training (seconds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entropylab.cli import main as cli_main
from entropylab.experiments import checks, sweep
from entropylab.experiments.params import ParamsError, load_params
from entropylab.paths import project_root
from entropylab.studies.decoding.spec import read_spec
from entropylab.training import store

ROOT = project_root(Path(__file__).parent)
SMOKE = ROOT / "params" / "decoding_smoke.yaml"


def smoke_copy(tmp_path: Path, name: str = "smoke.yaml", **replace: str) -> Path:
    """params/decoding_smoke.yaml with each ``old=new`` text replaced (each must occur)."""
    text = SMOKE.read_text()
    for old, new in replace.values():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def smoke_sizes() -> tuple[int, int]:
    """The smoke runs' most prefixes per side (the smaller of their dev and test rows) and training headlines,
    computed here from the corpus and the split."""
    from entropylab.data import load_corpus

    p = load_params(SMOKE).points[0].parameters
    corpus = load_corpus("synthetic")
    data = corpus.subset(p["max_sequences"]).split(p["split"], p["val_fraction"], p.get("split_seed", 0),
                                                   p["test_fraction"])
    assert data.has_test
    owners = corpus.subset(p["max_sequences"]).headline_index[data.train_index]
    return min(len(data.y_val), len(data.y_test)), len(np.unique(owners))


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "KERAS_BACKEND": "tensorflow"}
    return subprocess.run([sys.executable, "-m", "entropylab", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The process's single ``error:`` line (exit status 2, no traceback)."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- case 6: refuse or record, never cap silently ----------------------------------------------------------------

def test_all_is_accepted_for_prefixes_and_hyperfit_headlines(tmp_path):
    path = smoke_copy(tmp_path, a=("prefixes: 40", "prefixes: all"), b=("headlines: 10,", "headlines: all,"))
    spec = read_spec(load_params(path))
    assert spec.prefixes is None and spec.hyperfit is not None and spec.hyperfit.headlines is None
    with pytest.raises(ParamsError, match=r"decoding.prefixes: got 'most'; expected an integer >= 1 or all"):
        read_spec(load_params(smoke_copy(tmp_path, "b.yaml", a=("prefixes: 40", "prefixes: most"))))


@pytest.mark.parametrize(("key", "old", "new", "limit"), [
    ("prefixes", "prefixes: 40", "prefixes: {}", 0),
    ("hyperfit.headlines", "headlines: 10,", "headlines: {},", 1),
])
def test_more_than_there_are_is_refused_at_plan_time_naming_the_most(tmp_path, key, old, new, limit):
    from entropylab.studies.decoding.study import check_stage, plan_jobs

    path = smoke_copy(tmp_path, a=(old, new.format(10**9)))
    most = smoke_sizes()[limit]
    plan = sweep.make_plan(path, output_root=tmp_path / "out")
    expected = re.escape(f"{path}: decoding.{key}: got {10**9}, more than") + ".*" + \
        re.escape(f"({most} in synthetic/headline); give at most {most}, or all")
    with pytest.raises(ParamsError, match=expected) as caught:
        check_stage(plan)  # before the sweep: no run is trained
    assert "\n" not in str(caught.value)
    with pytest.raises(ParamsError, match=expected):  # the decoding stage, before it decodes anything
        plan_jobs(plan, read_spec(plan.params))
    exactly = smoke_copy(tmp_path, "edge.yaml", a=(old, new.format(most)))
    check_stage(sweep.make_plan(exactly, output_root=tmp_path / "out"))  # exactly as many there are is fine


def test_all_becomes_the_number_used_in_each_job_and_its_identity(tmp_path):
    from entropylab.studies.decoding.hyperfit import fit_headlines
    from entropylab.studies.decoding.study import plan_jobs, split_sizes

    path = smoke_copy(tmp_path, a=("prefixes: 40", "prefixes: all"), b=("headlines: 10,", "headlines: all,"))
    plan = sweep.make_plan(path, output_root=tmp_path / "out")
    for task in plan.tasks:  # finished as far as planning can tell (no model is loaded)
        Path(task.run_dir).mkdir(parents=True)
        store.mark_complete(task.run_dir)
    rows, headlines = smoke_sizes()
    jobs = plan_jobs(plan, read_spec(plan.params))
    assert {job.kind for job in jobs} == {"run", "hyperfit", "bigram", "kneser_ney", "source"}
    for job in jobs:
        assert job.spec.prefixes == rows and job.identity["prefixes"] == rows
    fitted = next(job for job in jobs if job.kind == "hyperfit")
    assert fitted.spec.hyperfit.headlines == headlines and fitted.identity["hyperfit"]["headlines"] == headlines
    # what hyperfit records (its recipe, asdict of the job's spec) is what it fits: every training headline
    sizes = split_sizes(next(t for t in plan.tasks if t.run_dir == fitted.run_dir).parameters)
    assert (min(sizes.validation_rows, sizes.test_rows), sizes.training_headlines) == (rows, headlines)
    from entropylab.data import load_corpus

    p = plan.tasks[0].parameters
    corpus = load_corpus("synthetic")
    data = corpus.subset(p["max_sequences"]).split(p["split"], p["val_fraction"], p["split_seed"], p["test_fraction"])
    owners = corpus.subset(p["max_sequences"]).headline_index[data.train_index]
    assert len(fit_headlines(owners, fitted.spec.hyperfit.headlines)) == len(owners)
    # asking for exactly as many is the same job as all: its finished cells are kept
    explicit = smoke_copy(tmp_path, "n.yaml", a=("prefixes: 40", f"prefixes: {rows}"),
                          b=("headlines: 10,", f"headlines: {headlines},"))
    again = plan_jobs(sweep.make_plan(explicit, output_root=tmp_path / "out"), read_spec(load_params(explicit)))
    assert [job.identity for job in again] == [job.identity for job in jobs]


# -- case 7: validate everything before any training -------------------------------------------------------------

@pytest.mark.parametrize(("replace", "message"), [
    (("top_h: [0.3, 0.8]", "top_h: [0.3, 1.8]"), "decoding.decoders.top_h: top_h must be in (0, 1]"),
    (("loss: mse}", "loss: kl_regularized}"), "decoding.models: no run of synthetic/headline trains kl_regularized"),
    (("prefixes: 40", "prefixes: 1000000000"), "decoding.prefixes: got 1000000000, more than"),
])
def test_a_bad_decoding_section_is_refused_before_any_training(tmp_path, replace, message):
    path = smoke_copy(tmp_path, a=replace)
    out = tmp_path / "fresh-outputs"
    line = one_error_line(run_cli("reproduce", "--study", "decoding", "--params", str(path),
                                  "--output-root", str(out)))
    assert line.startswith(f"error: {path}: ") and message in line, line
    assert not out.exists()  # no run folder was made, let alone trained
    dry = one_error_line(run_cli("sweep", str(path), "--dry-run", "--output-root", str(out)))
    assert dry == line and not out.exists()


def test_a_decoding_study_without_its_section_is_refused_before_its_sweep(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("experiment: plain\nthreads: 1\ndefaults: {dataset: synthetic, epochs: 1, max_sequences: 300}\n"
                    "runs:\n  - notebook: notebooks/07_objectives_train.ipynb\n    grid: {loss: cross_entropy}\n")
    out = tmp_path / "fresh-outputs"
    line = one_error_line(run_cli("reproduce", "--study", "decoding", "--params", str(path),
                                  "--output-root", str(out)))
    assert f"{path}: decoding: missing" in line and not out.exists()


@pytest.mark.parametrize(("options", "message"), [
    (("--engine", "fused"), "--engine pool"),
    (("--scheduler", "tcp://127.0.0.1:1", "--cluster", "local"), "--scheduler ADDRESS or --cluster local"),
])
def test_dry_run_refuses_what_the_real_start_would(tmp_path, capsys, monkeypatch, options, message):
    out = tmp_path / "out"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert cli_main(["sweep", str(SMOKE), "--dry-run", "--output-root", str(out), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_an_outputs_path_that_is_a_file_is_one_line_at_dry_run_and_at_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for argv in (("sweep", str(SMOKE), "--dry-run", "--output-root", str(blocker)),
                 ("sweep", str(SMOKE), "--output-root", str(blocker)),
                 ("reproduce", "--study", "decoding", "--params", str(SMOKE), "--output-root", str(blocker))):
        line = one_error_line(run_cli(*argv))
        assert f"the outputs path {blocker} is a file, not a folder" in line and "--output-root" in line, line
    line = one_error_line(run_cli("sweep", str(SMOKE), "--dry-run", "--output-root", str(blocker / "deeper")))
    assert f"lies under {blocker}, which is a file" in line
    assert blocker.read_text() == "not a folder"


def test_an_unwritable_outputs_folder_is_refused_without_writing(tmp_path, monkeypatch):
    folder = tmp_path / "read-only"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(sweep.os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    with pytest.raises(checks.OutputsError, match=re.escape(f"cannot write the outputs folder {folder / 'o'}")):
        sweep.dry_run(SMOKE, output_root=folder / "o")
    assert list(folder.iterdir()) == []


def test_a_tuned_file_s_models_are_checked_as_far_as_tuning_allows(tmp_path):
    from entropylab.studies.decoding.study import check_stage

    base = (ROOT / "params" / "objectives_smoke.yaml").read_text()
    section = ("decoding:\n  prefixes: 40\n  models:\n    - {{name: ce, loss: cross_entropy}}\n"
               "    - {{name: tuned, loss: {loss}}}\n  decoders: {{greedy: []}}\n")
    chosen_later = tmp_path / "later.yaml"
    chosen_later.write_text(base + section.format(loss="label_smoothing"))
    check_stage(sweep.make_plan(chosen_later, output_root=tmp_path / "out"))  # its run comes from the tuning
    never = tmp_path / "never.yaml"
    never.write_text(base + section.format(loss="mse"))
    with pytest.raises(ParamsError, match=r"decoding\.models: no run of synthetic/\w+ trains mse"):
        check_stage(sweep.make_plan(never, output_root=tmp_path / "out"))
