"""Hyperfitting is reproducible whatever ran before in the process (issue 20, case 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import entropylab
from entropylab.training import RunConfig, run

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
