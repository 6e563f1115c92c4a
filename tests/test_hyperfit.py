"""Hyperfitting is reproducible whatever ran before in the process, and a full disk leaves no partial file and names
the path it could not write (issue 20, cases 5 and 8)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import entropylab
from entropylab.experiments.execute import write_error
from entropylab.training import RunConfig, run, store

SOURCE = {"dataset": "synthetic", "epochs": 2, "max_sequences": 400, "lstm_units": 16, "batch_size": 32,
          "split": "headline", "jit_compile": False, "loss": "cross_entropy", "seed": 0,
          "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}}
RECIPE = {"model": "cross-entropy", "headlines": 10, "max_epochs": 4, "target_loss": 0.0, "learning_rate": 0.01}

#: One process: random work of its own first (``argv[4]``), then the recipe hyperfitted on the run ``argv[1]`` into
#: ``argv[2]``; its weights and history go to ``argv[3]`` (``.npz``, ``.csv``).
CHILD = """
import random, sys
import numpy as np

run_dir, out_dir, result, work = sys.argv[1:5]
if work == "another run":  # a worker that trained another model first
    from entropylab.training import RunConfig, run
    run(RunConfig(**{**SOURCE, "seed": 5, "epochs": 1, "dropout": 0.3}))
else:  # a worker whose earlier jobs drew from every generator there is
    import keras
    import tensorflow as tf
    for _ in range(17):
        random.random()
    np.random.rand(5)
    tf.random.uniform((3,))
    keras.random.normal((4,))
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dropout(0.5),
                              keras.layers.Dense(2)])
    other.compile("adam", "mse")
    other.fit(np.random.rand(64, 4), np.random.rand(64, 2), epochs=2, shuffle=True, verbose=0)

from entropylab.metrics.generation import choose_prefixes
from entropylab.studies.decoding.hyperfit import hyperfit
from entropylab.studies.decoding.spec import HyperfitSpec
from entropylab.training import load_trained
from entropylab.training.train import run_split

model, corpus, config = load_trained(run_dir)
data = run_split(corpus, config)
rows = choose_prefixes(len(data.y_val), 40, config.split_seed)
model, history = hyperfit(run_dir, HyperfitSpec(**RECIPE), out_dir, rows, (model, corpus, config, data))
np.savez(result + ".npz", *model.get_weights())
history.to_csv(result + ".csv", index=False)
"""


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hyperfit") / "source"
    assert run(RunConfig(**SOURCE), folder).status == "complete"
    return folder


def _hyperfit_in_fresh_processes(source_run: Path, folder: Path, works: list[str]) -> list[tuple[list[np.ndarray],
                                                                                                 pd.DataFrame]]:
    """The hyperfitted weights and history of each of ``works``, each in a process of its own (run side by side)."""
    lib = str(Path(entropylab.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = f"SOURCE = {SOURCE!r}\nRECIPE = {RECIPE!r}\n{CHILD}"
    results = [folder / f"result-{number}" for number in range(len(works))]
    children = []
    for number, (result, work) in enumerate(zip(results, works, strict=True)):
        with open(f"{result}.log", "w") as log:
            children.append(subprocess.Popen([sys.executable, "-c", code, str(source_run),
                                              str(folder / f"hyperfit-{number}"), str(result), work],
                                             env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        for child, result in zip(children, results, strict=True):
            assert child.wait(timeout=600) == 0, Path(f"{result}.log").read_text()[-3000:]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    fitted = []
    for result in results:
        with np.load(f"{result}.npz") as saved:
            fitted.append(([saved[f"arr_{i}"] for i in range(len(saved.files))], pd.read_csv(f"{result}.csv")))
    return fitted


def test_the_same_recipe_gives_the_same_model_whatever_ran_before_in_the_process(source_run, tmp_path):
    (weights_a, history_a), (weights_b, history_b) = _hyperfit_in_fresh_processes(
        source_run, tmp_path, ["another run", "random draws"])
    assert len(history_a) == RECIPE["max_epochs"] + 1
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    assert len(weights_a) == len(weights_b)
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_reseeding_sets_every_dropout_generator_from_the_seed_alone():
    import random

    from entropylab.model import build_model
    from entropylab.training.train import reseed_random_layers

    random.seed(1)
    first = build_model(30, 5, lstm_units=4)
    random.seed(2)
    second = build_model(30, 5, lstm_units=4)
    states = [[v.numpy().tolist() for v in m.variables if v.name == "seed_generator_state"] for m in (first, second)]
    assert states[0] != states[1]  # built from Python's global generator: another state, other dropout masks
    assert reseed_random_layers(first, 7) == reseed_random_layers(second, 7) == len(states[0])
    states = [[v.numpy().tolist() for v in m.variables if v.name == "seed_generator_state"] for m in (first, second)]
    assert states[0] == states[1] and len({tuple(s) for s in states[0]}) == len(states[0])
    assert [w.tolist() for w in first.get_weights()] != [w.tolist() for w in second.get_weights()]  # weights untouched


# -- a full disk -----------------------------------------------------------------------------------------------

H5PY_ENOSPC = ("Unable to synchronously create file (file write failed: time = Thu Dec  3 19:08:04 2026\n, "
               "filename = 'x', file descriptor = 3, errno = 28, error message = 'No space left on device')")


def _full_disk_for_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """``save_weights`` writes part of its file, then fails as h5py does on a full disk (an errno, a text over two
    lines, no file name)."""

    def save_weights(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
        raise OSError(errno.ENOSPC, H5PY_ENOSPC)

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)


def _assert_names_the_path_and_left_nothing(exc: OSError, path: Path) -> None:
    assert exc.filename == str(path) and exc.errno == errno.ENOSPC
    message = write_error(exc, "?")
    assert message.startswith(f"cannot write {path} (No space left on device); free space") and "\n" not in message
    left = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".") or p.name == path.name)
    assert left == [], left


def test_a_full_disk_while_saving_a_runs_weights_leaves_no_partial_file_and_names_it(tmp_path, monkeypatch):
    _full_disk_for_weights(monkeypatch)
    folder = tmp_path / "run"
    with pytest.raises(OSError) as raised:
        run(RunConfig(**{**SOURCE, "epochs": 1, "max_sequences": 200}), folder)
    _assert_names_the_path_and_left_nothing(raised.value, folder / store.WEIGHTS)
    assert not store.is_complete(folder)


def test_a_full_disk_while_saving_hyperfitted_weights_leaves_no_partial_file_and_names_it(source_run, tmp_path,
                                                                                         monkeypatch):
    from entropylab.metrics.generation import choose_prefixes
    from entropylab.studies.decoding.hyperfit import hyperfit
    from entropylab.studies.decoding.spec import HyperfitSpec
    from entropylab.training import load_trained
    from entropylab.training.train import run_split

    model, corpus, config = load_trained(source_run)
    data = run_split(corpus, config)
    rows = choose_prefixes(len(data.y_val), 10, config.split_seed)
    _full_disk_for_weights(monkeypatch)
    folder = tmp_path / "hyperfit"
    with pytest.raises(OSError) as raised:
        hyperfit(source_run, HyperfitSpec(**{**RECIPE, "max_epochs": 1}), folder, rows, (model, corpus, config, data))
    _assert_names_the_path_and_left_nothing(raised.value, folder / store.WEIGHTS)
    assert not store.is_complete(folder)


def test_a_cut_record_of_a_finished_hyperfit_is_fitted_again(source_run, tmp_path, capsys):
    from entropylab.metrics.generation import choose_prefixes
    from entropylab.studies.decoding.hyperfit import hyperfit
    from entropylab.studies.decoding.spec import HyperfitSpec
    from entropylab.training import load_trained
    from entropylab.training.train import run_split

    model, corpus, config = load_trained(source_run)
    data = run_split(corpus, config)
    rows = choose_prefixes(len(data.y_val), 10, config.split_seed)
    recipe, folder = HyperfitSpec(**{**RECIPE, "max_epochs": 1}), tmp_path / "hyperfit"
    _, first = hyperfit(source_run, recipe, folder, rows, (model, corpus, config, data))
    record = folder / "hyperfit.json"
    record.write_text(record.read_text()[:40])
    model, corpus, config = load_trained(source_run)
    _, again = hyperfit(source_run, recipe, folder, rows, (model, corpus, config, data))
    assert f"{record} is damaged" in capsys.readouterr().out
    assert store.is_complete(folder) and store.read_json(record)["identity"]["recipe"]["max_epochs"] == 1
    pd.testing.assert_frame_equal(again, first)


def test_a_full_disk_while_writing_a_table_leaves_no_temporary_file_and_names_it(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "out" / store.HISTORY
    with pytest.raises(OSError) as raised:
        store.write_csv(path, pd.DataFrame({"epoch": [1, 2]}))
    _assert_names_the_path_and_left_nothing(raised.value, path)


def test_an_error_that_names_its_file_keeps_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as raised:
        store.write_json(blocker / "x.json", {})  # a folder that is a file: the error already names it
    assert raised.value.filename is not None and str(blocker) in raised.value.filename
    assert "make the outputs folder writable" in write_error(raised.value, "?")


def test_the_command_line_names_the_weights_file_a_full_disk_kept_it_from_writing(tmp_path, monkeypatch, capsys):
    from entropylab.cli import main

    _full_disk_for_weights(monkeypatch)
    folder = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--max-sequences", "200", "--lstm-units", "8",
                 "--no-jit", "--output", str(folder)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    (run_dir,) = folder.iterdir()
    assert errors == [f"error: cannot write {run_dir / store.WEIGHTS} (No space left on device); free space on its "
                      "disk or choose another with --output-root or $ENTROPYLAB_OUTPUTS"], errors
    assert not any(p.name.startswith(".") or p.name == store.WEIGHTS for p in run_dir.iterdir())
