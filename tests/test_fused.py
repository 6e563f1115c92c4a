"""The JAX path and the fused engine: no TensorFlow on JAX, a fused group equal to its runs trained alone (a KL, an
entropy and an MSE run of different weights and seeds: the paper's three objectives in one group).

The JAX checks run in one subprocess (``KERAS_BACKEND=jax``, CPU) in which ``import tensorflow`` fails: a package
named ``tensorflow`` that records the attempt and raises ``ImportError`` comes first on its path.

Tolerance of the equivalence (``FUSED_RTOL``): both paths run the same float32 operations on the same batches from
the same initial weights and dropout seeds (the weights come out bit-identical on this machine), but the epoch's
training loss is Keras' float32 running mean in ``fit`` and a float64 mean of the same per-step values in the fused
engine, and the validation sums may be fused differently by XLA inside ``vmap``. Each is a rounding of at most
``steps x 2^-24`` relative (about 2e-6 for this test's 25 steps); 1e-5 leaves room for it and is still four orders
of magnitude below what a different seed or weight changes (checked too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from entropylab import objectives
from entropylab.data.batches import ShuffledBatches, epoch_order, stacked_orders, steps_per_epoch
from entropylab.training.config import RunConfig
from entropylab.training.fused import group_key, plan_groups, unfusable_reason

FUSED_RTOL = 1e-5
SMALL = {"dataset": "synthetic", "max_sequences": 800, "synthetic": {"n_headlines": 300}, "epochs": 2}


def test_numpy_batches_cover_each_example_once_per_epoch_in_a_seeded_order():
    x = np.arange(70).reshape(35, 2)
    y = np.arange(35)
    batches = ShuffledBatches(x, y, batch_size=8, seed=3)
    assert len(batches) == steps_per_epoch(35, 8) == 5
    stream = iter(batches)
    first = [next(stream) for _ in range(5)]
    second = [next(stream) for _ in range(5)]
    assert [len(b[1]) for b in first] == [8, 8, 8, 8, 3]
    for epoch in (first, second):
        seen = np.concatenate([b[1] for b in epoch])
        assert sorted(seen) == list(range(35))
        for bx, by in epoch:
            np.testing.assert_array_equal(bx, x[by])
    assert not np.array_equal(np.concatenate([b[1] for b in first]), np.concatenate([b[1] for b in second]))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in second]), epoch_order(35, 3, 1))
    stacked = stacked_orders(35, [3, 4], 1)
    np.testing.assert_array_equal(stacked[0], epoch_order(35, 3, 1))
    assert not np.array_equal(stacked[0], stacked[1])


def test_groups_share_everything_but_seed_a_traceable_weight_and_the_objective_within_a_family():
    jax = {"backend": "jax", "threads": 1}
    kl = [RunConfig(**SMALL, **jax, loss="kl_regularized", weight=w, seed=s) for w, s in [(1, 0), (10, 1), (0.1, 0)]]
    other_lr = RunConfig(**SMALL, **jax, loss="kl_regularized", weight=1, learning_rate=0.01)
    alpha = [RunConfig(**SMALL, **jax, loss="alpha_divergence", weight=w) for w in (0.5, 0.5, 2.0)]
    alpha[1] = alpha[1].replace(seed=1)
    configs = [*kl, other_lr, *alpha]
    assert len({group_key(c) for c in kl}) == 1
    assert group_key(other_lr) != group_key(kl[0])
    # an exponent loss branches on its exponent: one group per exponent value, seeds still shared
    assert plan_groups(configs) == [[0, 1, 2], [3], [4, 5], [6]]
    assert plan_groups(configs, max_group=2) == [[0, 1], [2], [3], [4, 5], [6]]
    paper = [RunConfig(**SMALL, **jax, loss=loss, weight=w) for loss, w in
             [("mse", 0), ("entropy_regularized", 1e-3), ("kl_regularized", 10)]]
    softmax = [RunConfig(**SMALL, **jax, loss=loss, weight=w) for loss, w in
               [("cross_entropy", 0), ("confidence_penalty", 0.5), ("entropy_minimization", 0.5),
                ("label_smoothing", 0.1)]]
    assert plan_groups(paper + softmax) == [[0, 1, 2], [3, 4, 5], [6]]
    assert unfusable_reason(kl[0]) is None
    assert "JAX" in unfusable_reason(RunConfig(**SMALL, backend="tensorflow", threads=1))
    assert "jit_compile" in unfusable_reason(kl[0].replace(jit_compile=False))


def test_input_pipeline_is_part_of_the_identity_only_off_its_default():
    tf_run = RunConfig(**SMALL, backend="tensorflow", threads=1)
    assert tf_run.input_pipeline == "tf.data" and "input_pipeline" not in tf_run.identity()
    jax_run = RunConfig(**SMALL, backend="jax", threads=1)
    assert jax_run.input_pipeline == "numpy" and jax_run.identity()["input_pipeline"] == "numpy"
    assert tf_run.replace(input_pipeline="numpy").run_name != tf_run.run_name
    with pytest.raises(ValueError, match="needs the tensorflow backend"):
        RunConfig(**SMALL, backend="jax", input_pipeline="tf.data")


JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from entropylab.training import RunConfig, run
    from entropylab.training.fused import train_group

    small, root = json.loads(sys.argv[1]), sys.argv[2]

    def pair(f, a):
        return {"fused": f.history.drop(columns="seconds").to_dict("list"),
                "alone": a.history.drop(columns="seconds").to_dict("list"),
                "weights": max(float(np.max(np.abs(x - y))) for x, y in zip(f.model.get_weights(),
                                                                                a.model.get_weights())),
                "status": [f.status, a.status], "best": [f.metrics["best_epoch"], a.metrics["best_epoch"]],
                "engine": f.metrics.get("engine"), "group_size": f.metrics.get("group_size")}

    out = {}
    group = [RunConfig(**small, loss=loss, weight=w, seed=s)  # the paper's three objectives: one family, one group
             for loss, w, s in [("kl_regularized", 1.0, 0), ("entropy_regularized", 0.1, 1), ("mse", 0.0, 2)]]
    fused = train_group(group, [f"{root}/fused/{c.run_name}" for c in group])
    alone = [run(c, f"{root}/alone/{c.run_name}") for c in group]
    out["paper"] = [pair(f, a) for f, a in zip(fused, alone)]
    stopping = [RunConfig(**{**small, "epochs": 4, "max_sequences": 300}, loss="label_smoothing", weight=w,
                          patience=1, learning_rate=0.05) for w in (0.0, 0.05)]
    out["patience"] = [pair(f, a) for f, a in zip(train_group(stopping), [run(c) for c in stopping])]
    again = train_group(group, [f"{root}/fused/{c.run_name}" for c in group])
    out["reused"] = [r.reused for r in again]
    from entropylab.decoding import forward
    model, windows = alone[0].model, np.random.default_rng(0).integers(0, 20, size=(37, alone[0].model.input_shape[1]))
    def direct(x):
        return np.asarray(model(x, training=False), dtype=np.float64)
    def gap(x):  # as assert_allclose(rtol=1e-6, atol=1e-7) measures it: <= 1 passes
        return float(np.max(np.abs(forward.outputs(model, x) - direct(x)) / (1e-7 + 1e-6 * np.abs(direct(x)))))
    before = forward.outputs(model, windows)
    out["forward"] = [gap(windows), gap(windows[:5])]
    model.set_weights([w * 0.5 for w in model.get_weights()])  # the compiled call reads the current weights
    out["forward"].append(gap(windows))
    out["forward_moved"] = float(np.max(np.abs(forward.outputs(model, windows) - before)))
    out["tensorflow_loaded"] = [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]
    print("RESULT=" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def jax_without_tensorflow(tmp_path_factory):
    """The JAX script's results, from a process where importing TensorFlow fails (and is recorded)."""
    root = tmp_path_factory.mktemp("fused")
    blocker = root / "blocked" / "tensorflow"
    blocker.mkdir(parents=True)
    attempts = root / "tensorflow-imports.txt"
    (blocker / "__init__.py").write_text(
        f"import traceback\nopen({str(attempts)!r}, 'a').write(''.join(traceback.format_stack()) + '\\n')\n"
        f"raise ImportError('TensorFlow is blocked in this test process')\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "ENTROPYLAB_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "blocked"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(SMALL), str(root)], capture_output=True,
                          text=True, timeout=600, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))[len("RESULT="):])
    result["attempts"] = attempts.read_text() if attempts.exists() else ""
    result["root"] = root
    return result


def test_the_jax_path_trains_where_tensorflow_cannot_be_imported(jax_without_tensorflow):
    result = jax_without_tensorflow
    assert result["attempts"] == "", f"something imported tensorflow:\n{result['attempts'][-3000:]}"
    assert result["tensorflow_loaded"] == []
    for pair in result["paper"]:
        assert pair["status"] == ["complete", "complete"]
    for side in ("fused", "alone"):  # each run its own complete folder, as a sweep expects
        folders = sorted(Path(result["root"], side).iterdir())
        assert len(folders) == 3
        for folder in folders:
            assert (folder / "COMPLETE").is_file() and (folder / "model.weights.h5").is_file()
            assert json.loads((folder / "config.json").read_text())["input_pipeline"] == "numpy"
    assert result["reused"] == [True, True, True]


def test_the_compiled_jax_call_gives_the_models_outputs(jax_without_tensorflow):
    """``decoding.forward`` on JAX: one jit of ``stateless_call``, the direct call's outputs, the current weights."""
    assert max(jax_without_tensorflow["forward"]) <= 1.0  # two batch sizes, then after the weights change
    assert jax_without_tensorflow["forward_moved"] > 1e-3  # halving the weights moved the outputs: not baked in


def _assert_same_history(fused: dict, alone: dict) -> None:
    assert fused.keys() == alone.keys()
    assert fused["epoch"] == alone["epoch"]
    for column in fused:
        np.testing.assert_allclose(fused[column], alone[column], rtol=FUSED_RTOL, atol=1e-7, err_msg=column)


def test_a_fused_group_gives_each_run_its_history_trained_alone(jax_without_tensorflow):
    pairs = jax_without_tensorflow["paper"]
    for pair in pairs:
        _assert_same_history(pair["fused"], pair["alone"])
        assert {"val_ce_frequent", "val_ce_rare", "val_share_unseen"} <= set(pair["fused"])  # the bands, compared
        assert pair["weights"] <= 1e-5
        assert pair["engine"] == "fused" and pair["group_size"] == 3
    # the tolerance is far below what the runs' own differences (weight and seed) change
    first, second = pairs[0]["alone"], pairs[1]["alone"]
    assert abs(first["val_cross_entropy"][-1] - second["val_cross_entropy"][-1]) > 1e3 * FUSED_RTOL


def test_early_stopping_in_a_fused_group_is_each_runs_own(jax_without_tensorflow):
    for pair in jax_without_tensorflow["patience"]:
        _assert_same_history(pair["fused"], pair["alone"])
        assert pair["best"][0] == pair["best"][1]
        assert pair["weights"] <= 1e-5
    epochs_run = [len(pair["fused"]["epoch"]) for pair in jax_without_tensorflow["patience"]]
    assert min(epochs_run) < 4, f"no run stopped early ({epochs_run}); the test needs a faster learning rate"
    assert len(set(epochs_run)) == 2, f"both runs stopped together ({epochs_run}): nothing shows they stop apart"


def test_engine_choice_is_checked_and_auto_stays_on_the_pool_without_jax():
    from entropylab.experiments.engines import resolve_engine

    assert resolve_engine("pool", "jax", dask=False) == "pool"
    assert resolve_engine("fused", "jax", dask=False) == "fused"
    assert resolve_engine("auto", "tensorflow", dask=False) == "pool"  # decided without starting JAX
    assert resolve_engine("auto", "jax", dask=True) == "pool"
    assert resolve_engine("auto", "jax", dask=False, probe=False) == "pool"  # nothing to train: JAX is not asked
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        resolve_engine("fused", "tensorflow", dask=False)
    with pytest.raises(ValueError, match="--scheduler"):
        resolve_engine("fused", "jax", dask=True)
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("gpu", "jax", dask=False)


def test_a_params_file_names_its_engine(tmp_path):
    from entropylab.experiments.params import ParamsError, load_params

    text = ("experiment: e\nengine: {}\nruns:\n  - notebook: notebooks/03_kl_regularization.ipynb\n"
            "    grid: {{weight: [1.0]}}\n")
    good = tmp_path / "good.yaml"
    good.write_text(text.format("fused"))
    assert load_params(good).engine == "fused"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.format("gpu"))
    with pytest.raises(ParamsError, match="engine: got 'gpu'; expected one of auto, fused, pool"):
        load_params(bad)


def test_a_fused_sweep_trains_its_groups_then_its_notebooks_report_them(tmp_path, monkeypatch):
    """``sweep --engine fused`` on JAX: two KL weights as one group, then their notebooks; every run complete with its
    executed notebook, so that the sweep's plan finds them all done."""
    from entropylab.experiments.sweep import make_plan, task_state

    params = tmp_path / "fused.yaml"
    params.write_text(textwrap.dedent("""
        experiment: fused
        workers: 2
        threads: 1
        engine: fused
        defaults: {epochs: 1, max_sequences: 300, dataset: synthetic}
        runs:
          - notebook: notebooks/03_kl_regularization.ipynb
            grid: {weight: [1.0, 10.0]}
    """))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "entropylab", "sweep", str(params), "--output-root", str(tmp_path / "out")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "training 2 run(s) in fused groups" in first.stdout and "fused group of 2 run(s)" in first.stdout
    runs = sorted((tmp_path / "out" / "runs" / "fused").iterdir())
    engines = {}
    for run_dir in runs:
        assert (run_dir / "COMPLETE").is_file() and (run_dir / "notebook.ipynb").is_file()
        engines[run_dir.name] = json.loads((run_dir / "metrics.json").read_text()).get("engine")
    assert list(engines.values()) == ["fused", "fused"]
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the plan's identities are those of a JAX process (nothing imported)
    plan = make_plan(params, output_root=tmp_path / "out")
    assert [task_state(task) for task in plan.tasks] == ["done"] * 2


def test_runs_that_cannot_be_fused_are_left_to_their_notebooks(tmp_path, capsys):
    from entropylab.experiments import engines, sweep

    params = tmp_path / "apart.yaml"
    params.write_text("experiment: apart\nthreads: 1\nbackend: tensorflow\n"
                      "defaults: {epochs: 1, max_sequences: 300, dataset: synthetic}\n"
                      "runs:\n  - notebook: notebooks/03_kl_regularization.ipynb\n    grid: {weight: [1.0, 10.0]}\n")
    plan = sweep.make_plan(params, output_root=tmp_path / "out")  # runs on TensorFlow: nothing fuses
    outcomes: list = []
    assert engines.fused_stage(params.name, list(plan.tasks), outcomes) == plan.tasks and outcomes == []
    assert "2 run(s) cannot be fused (the fused engine runs on the JAX backend" in capsys.readouterr().out


@pytest.mark.parametrize("name", [n for n in objectives.names() if objectives.get(n).fusable])
@pytest.mark.parametrize("weight", [0.0, 0.1, 0.5, 10.0])
def test_a_family_formula_gives_each_member_objective_exactly(name, weight):
    """A fusable objective's family formula at its coefficients is bit-equal to its own loss (a fused run computes
    exactly its own objective's numbers); a value outside the objective's range is replaced by its default."""
    import keras

    spec = objectives.get(name)
    value = weight if spec.takes_parameter else 0.0
    try:
        spec.check(value)
    except ValueError:
        value = spec.default
    rng = np.random.default_rng(4)
    outputs = rng.normal(0.1, 0.3, (16, 40)).astype("float32")
    labels = rng.integers(0, 40, 16).astype("int32")
    family = objectives.family_loss(spec.family, objectives.family_coefficients(name, value))
    member = objectives.keras_loss(name, value)
    assert family.head == member.head == spec.head
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(family.per_example(labels, outputs)),
                                  keras.ops.convert_to_numpy(member.per_example(labels, outputs)))


def test_only_objectives_that_name_a_family_are_fusable():
    """Fusing is opt-in: the exponent objectives (which branch on their value) and EMO (which reads the head kernel)
    name no family, so their groups share one value; every family member's head is its family's."""
    assert [n for n in objectives.names() if not objectives.get(n).fusable] == [
        "alpha_divergence", "beta_divergence", "gamma_divergence", "generalized_cross_entropy", "emo"]
    for name in objectives.names():
        spec = objectives.get(name)
        if spec.fusable:
            assert objectives.family(spec.family).head == spec.head
