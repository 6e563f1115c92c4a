"""Parameter files: the project's three sets, the grid expansion, and one clear error per kind of mistake."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import pytest

from entropylab.experiments import params
from entropylab.experiments.params import (
    NOTEBOOK_PARAMETERS,
    OPTIONAL_PARAMETERS,
    ParamsError,
    load_params,
    notebook_parameters,
)
from entropylab.paths import project_root

ROOT = project_root(Path(__file__).parent)
TRAINING_NOTEBOOKS = ("01_control.ipynb", "02_entropy_regularization.ipynb", "03_kl_regularization.ipynb",
                      "07_objectives_train.ipynb")


def write(tmp_path: Path, text: str, name: str = "set.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_project_parameter_files_expand_to_the_papers_protocol():
    paper = load_params(ROOT / "params" / "paper.yaml")
    assert paper.experiment == "paper" and paper.threads is not None  # the numbers depend on the thread count
    by_notebook: dict[str, list[dict]] = {}
    for point in paper.points:
        by_notebook.setdefault(point.notebook.name, []).append(point.parameters)
    assert [p["loss"] for p in by_notebook["01_control.ipynb"]] == ["mse", "cross_entropy"]
    entropy_weights = [p["weight"] for p in by_notebook["02_entropy_regularization.ipynb"]]
    assert entropy_weights[0] == pytest.approx(1e-7) and entropy_weights[-1] == pytest.approx(10.0)
    ratios = [b / a for a, b in itertools.pairwise(entropy_weights)]
    assert ratios == pytest.approx([10.0] * (len(entropy_weights) - 1))  # a log grid
    assert [p["weight"] for p in by_notebook["03_kl_regularization.ipynb"]] == [0.1, 1.0, 10.0, 100.0]
    for point in paper.points:
        p = point.parameters
        assert (p["epochs"], p["batch_size"], p["split"], p["seed"], p["max_sequences"]) == (5, 32, "tail", 0, None)
        assert "experiment" not in p and "output_root" not in p

    seeds = load_params(ROOT / "params" / "seeds.yaml")
    assert seeds.experiment == "seeds" and len(seeds.points) == 3 * len(paper.points)
    assert sorted({p.parameters["seed"] for p in seeds.points}) == [0, 1, 2]
    def objective_and_weight(point):
        return point.parameters["loss"], point.parameters["weight"]

    assert {objective_and_weight(p) for p in seeds.points} == {objective_and_weight(p) for p in paper.points}

    smoke = load_params(ROOT / "params" / "smoke.yaml")
    assert smoke.experiment == "smoke" and 3 <= len(smoke.points) <= 8
    assert {p.notebook.name for p in smoke.points} == set(TRAINING_NOTEBOOKS[:3])
    assert all(p.parameters["epochs"] == 1 and p.parameters["max_sequences"] <= 500 for p in smoke.points)


@pytest.mark.parametrize("name", TRAINING_NOTEBOOKS)
def test_training_notebooks_have_exactly_the_parameters_and_no_outputs(name):
    path = ROOT / "notebooks" / name
    required = [n for n in NOTEBOOK_PARAMETERS if n not in OPTIONAL_PARAMETERS]
    own = list(notebook_parameters(path))
    assert own == required or own == list(NOTEBOOK_PARAMETERS)  # the paper's notebooks lack the later ones
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "commit notebooks cleared"


def test_grid_is_a_cartesian_product_with_priorities(tmp_path):
    path = write(tmp_path, """
experiment: grid
defaults: {epochs: 2, dataset: synthetic}
runs:
  - notebook: notebooks/03_kl_regularization.ipynb
    grid: {weight: ["1e-7", 3], seed: [0, 1, 2], epochs: 4}
""")
    points = load_params(path).points
    assert len(points) == 6
    assert [(p.parameters["weight"], p.parameters["seed"]) for p in points] == [
        (1e-7, 0), (1e-7, 1), (1e-7, 2), (3.0, 0), (3.0, 1), (3.0, 2)]
    assert all(p.parameters["epochs"] == 4 for p in points)  # grid beats defaults
    assert all(p.parameters["dataset"] == "synthetic" for p in points)  # defaults beat the notebook
    assert all(p.parameters["batch_size"] == 32 and p.parameters["loss"] == "kl_regularized" for p in points)
    assert points[0].run_name.startswith("kl_regularized_w1e-07_seed0-")
    assert len({p.run_name for p in points}) == 6


GOOD_RUN = "runs:\n  - notebook: notebooks/01_control.ipynb\n"
BAD_FILES = {
    "bad yaml": ("experiment: [unclosed\n" + GOOD_RUN, "not valid YAML", "expected a mapping"),
    "not a mapping": ("- a\n- b\n", "<top level>", "expected a mapping"),
    "no experiment": (GOOD_RUN, "experiment: missing", "expected an experiment name"),
    "no runs": ("experiment: x\n", "runs: missing", "expected a list of runs"),
    "empty runs": ("experiment: x\nruns: []\n", "runs: got []", "expected a non-empty list"),
    "unknown top key": ("experiment: x\nworker: 2\n" + GOOD_RUN, "worker: unknown key", "expected one of"),
    "bad experiment": ("experiment: a/b\n" + GOOD_RUN, "experiment: got 'a/b'", "expected a folder name"),
    "bad workers": ("experiment: x\nworkers: 0\n" + GOOD_RUN, "workers: got 0", "expected an integer >= 1"),
    "bad threads": ("experiment: x\nthreads: two\n" + GOOD_RUN, "threads: got 'two'", "expected an integer >= 1"),
    "missing notebook": ("experiment: x\nruns:\n  - notebook: notebooks/nope.ipynb\n",
                         "runs[0].notebook: notebooks/nope.ipynb does not exist", "expected a path"),
    "no notebook key": ("experiment: x\nruns:\n  - grid: {seed: [1]}\n", "runs[0].notebook: got None",
                        "expected a notebook path"),
    "unknown run key": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n    grids: {}\n",
                        "runs[0].grids: unknown key", "expected one of notebook, grid"),
    "unknown grid name": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n    grid: {lr: [1]}\n",
                          "runs[0].grid.lr: unknown parameter", "expected one of"),
    "unknown default": ("experiment: x\ndefaults: {units: 8}\n" + GOOD_RUN, "defaults.units: unknown",
                        "expected one of"),
    "sweep-owned name": ("experiment: x\ndefaults: {output_root: /tmp}\n" + GOOD_RUN, "defaults.output_root",
                         "use the --output-root option"),
    "wrong type": ("experiment: x\ndefaults: {epochs: five}\n" + GOOD_RUN, "defaults.epochs: got 'five'",
                   "expected an integer >= 1"),
    "bool as int": ("experiment: x\ndefaults: {seed: true}\n" + GOOD_RUN, "defaults.seed: got True",
                    "expected an integer >= 0"),
    "grid not a mapping": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n    grid: [1, 2]\n",
                           "runs[0].grid: got list", "expected a mapping"),
    "negative weight": ("experiment: x\nruns:\n  - notebook: notebooks/03_kl_regularization.ipynb\n"
                        "    grid: {weight: [1.0, -1.0]}\n", "runs[0].grid.weight[1]: got -1.0",
                        "expected a finite number >= 0"),
    "nan weight": ("experiment: x\nruns:\n  - notebook: notebooks/03_kl_regularization.ipynb\n"
                   "    grid: {weight: [.nan]}\n", "runs[0].grid.weight[0]: got nan", "expected a finite number"),
    "empty grid list": ("experiment: x\nruns:\n  - notebook: notebooks/03_kl_regularization.ipynb\n"
                        "    grid: {weight: []}\n", "runs[0].grid.weight: empty list", "expected one or more"),
    "bad split": ("experiment: x\ndefaults: {split: random}\n" + GOOD_RUN, "defaults.split: got 'random'",
                  "expected 'tail' or 'headline'"),
    "unknown loss": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n    grid: {loss: [l2]}\n",
                     "runs[0].grid.loss[0]: got 'l2'", "expected one of"),
    "loss of another notebook": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n"
                                 "    grid: {loss: [kl_regularized], weight: [10]}\n", "runs[0]:",
                                 "01_control.ipynb trains the loss 'mse' or 'cross_entropy'"),
    "weight on an unweighted loss": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n"
                                     "    grid: {weight: [1.0]}\n", "runs[0]:", "has no parameter"),
    "the same point twice": ("experiment: x\nruns:\n  - notebook: notebooks/01_control.ipynb\n"
                             "    grid: {seed: [0, 0]}\n", "runs[0]: two grid points are the same run", "remove one"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_malformed_file_names_file_key_and_expectation(tmp_path, case):
    text, key, expectation = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{path}: "), message
    assert key in message, message
    assert expectation in message, message


def test_missing_file_and_notebook_without_parameters(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml not found; the project's are .*paper\.yaml"):
        load_params(tmp_path / "nope.yaml")
    notebook = tmp_path / "plain.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1"}],
                                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    path = write(tmp_path, f"experiment: x\nruns:\n  - notebook: {notebook}\n")
    with pytest.raises(ParamsError, match=r"runs\[0\]\.notebook: .*no code cell tagged 'parameters'"):
        load_params(path)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("weight", "1e-7", 1e-7), ("weight", 0, 0.0), ("val_fraction", 0.25, 0.25), ("max_sequences", None, None),
    ("jit_compile", False, False), ("dataset", "auto", "auto")])
def test_check_value_accepts_and_normalises(name, value, expected):
    assert params.check_value(name, value) == expected


@pytest.mark.parametrize(("name", "value"), [
    ("weight", math.inf), ("weight", True), ("val_fraction", 1.0), ("max_sequences", 1), ("jit_compile", "yes"),
    ("dataset", "NYT"), ("batch_size", 2.5), ("data_dir", ""), ("nope", 1), ("seed", 2**32), ("split_seed", -1),
    ("learning_rate", 0)])
def test_check_value_refuses(name, value):
    with pytest.raises(ValueError, match="expected"):
        params.check_value(name, value)


def test_notebook_loss_check():
    params.check_notebook_loss("notebooks/01_control.ipynb", "cross_entropy")
    params.check_notebook_loss("somewhere/else.ipynb", "kl_regularized")  # unknown notebooks: any loss
    with pytest.raises(ValueError, match=r"03_kl_regularization\.ipynb trains the loss 'kl_regularized'"):
        params.check_notebook_loss("03_kl_regularization.ipynb", "mse")


def test_a_file_that_is_not_utf8_names_itself(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("experiment: caf\xe9\nruns: []\n".encode("latin-1"))
    with pytest.raises(ParamsError, match=rf"{path}: not UTF-8 text"):
        load_params(path)


def test_cluster_key(tmp_path):
    run = "runs:\n  - notebook: notebooks/01_control.ipynb\n"
    assert load_params(write(tmp_path, f"experiment: x\ncluster: local\n{run}")).cluster == "local"
    assert load_params(write(tmp_path, f"experiment: x\ncluster: tcp://lab:8786\n{run}")).cluster == "tcp://lab:8786"
    with pytest.raises(ParamsError, match="cluster: got 'slurm'; expected 'local'"):
        load_params(write(tmp_path, f"experiment: x\ncluster: slurm\n{run}"))
    assert load_params(write(tmp_path, f"experiment: x\ncluster: tls://[::1]:8786\n{run}")).cluster


@pytest.mark.parametrize("address, problem", [("tcp://", "no host"), ("tcp://lab", "no port"),
                                              ("tcp://:8786", "no host"),
                                              ("tcp://lab:99999", "a port outside 1..65535"),
                                              ("tcp://lab:port", "a port outside 1..65535"),
                                              ("ucx://lab:8786", "the protocol 'ucx', not tcp or tls"),
                                              ("lab:8786", "no protocol"),
                                              ("tcp://lab:8786/x", "more than HOST:PORT after the protocol"),
                                              ("tcp://[::1:8786", "not a valid address (an IPv6 host goes in "
                                                                  "brackets: tcp://[::1]:8786)")])
def test_a_bad_scheduler_address_names_the_file_and_key(tmp_path, address, problem):
    path = write(tmp_path, f"experiment: x\ncluster: '{address}'\nruns:\n  - notebook: notebooks/01_control.ipynb\n")
    with pytest.raises(ParamsError) as excinfo:
        load_params(path)
    assert str(excinfo.value) == (f"{path}: cluster: got {address!r}; expected 'local' (a Dask LocalCluster) or a "
                                  f"Dask scheduler address tcp://HOST:PORT such as tcp://10.0.0.5:8786 "
                                  f"(here: {problem})")


def test_a_bad_scheduler_address_is_one_line_on_the_command_line(tmp_path):
    """Before, Dask's "missing port number in address ''" came from deep inside the sweep, naming neither."""
    import subprocess
    import sys

    run = "runs:\n  - notebook: notebooks/01_control.ipynb\n"
    path = write(tmp_path, f"experiment: x\ncluster: 'tcp://'\n{run}")
    command = [sys.executable, "-m", "entropylab", "sweep", "--output-root", str(tmp_path / "out")]
    result = subprocess.run([*command, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: {path}: cluster: got 'tcp://'; expected 'local'")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    path = write(tmp_path, f"experiment: x\ndefaults: {{dataset: synthetic}}\n{run}", "ok.yaml")
    result = subprocess.run([*command, str(path), "--scheduler", "tcp://lab"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == ("error: --scheduler: got 'tcp://lab'; expected a Dask scheduler address "
                                     "tcp://HOST:PORT such as tcp://10.0.0.5:8786 (here: no port)")


VERDICT_FILE = """experiment: v
runs:
  - notebook: notebooks/07_objectives_train.ipynb
    grid: {{loss: cross_entropy, dataset: synthetic}}
verdicts: {section}
"""


def test_the_verdict_rule_is_read_from_the_file(tmp_path):
    path = write(tmp_path, VERDICT_FILE.format(section="{smallest_effect: {cross_entropy: 0.01, ece_adaptive: "
                                                       "'5e-3'}, min_seeds: 6}"))
    assert load_params(path).verdicts == {"smallest_effect": {"cross_entropy": 0.01, "ece_adaptive": 0.005},
                                          "min_seeds": 6}
    study = load_params(ROOT / "params" / "objectives.yaml")
    assert study.verdicts["min_seeds"] >= 5 and study.verdicts["smallest_effect"]["cross_entropy"] > 0


@pytest.mark.parametrize(("section", "message"), [
    ("{smallest_effect: {cross_entropy: -0.01}}", "verdicts.smallest_effect.cross_entropy: got -0.01; expected a "
                                                  "finite number >= 0"),
    ("{smallest_effect: {cross_entropy: .nan}}", "verdicts.smallest_effect.cross_entropy: got nan"),
    ("{min_seeds: 1}", "verdicts.min_seeds: got 1; expected an integer >= 2"),
    ("{alpha: 0.1}", "verdicts.alpha: unknown key; expected one of smallest_effect, min_seeds"),
])
def test_a_bad_verdict_rule_is_one_clear_line(tmp_path, section, message):
    with pytest.raises(ParamsError, match=re.escape(message)) as caught:
        load_params(write(tmp_path, VERDICT_FILE.format(section=section)))
    assert "\n" not in str(caught.value)
