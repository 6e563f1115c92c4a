"""The objectives registry: its look-ups (no Keras), its Keras losses, and an objective added as one new module."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from entropylab import objectives


@pytest.mark.parametrize("name", objectives.names())
def test_the_keras_loss_is_the_registered_objective(name):
    objective = objectives.get(name)
    for value in (0.0, 1e-7, 0.1, 0.5, 1.0, 1.5, 10.0):
        try:
            objective.check(value)
            accepted_by_registry = True
        except ValueError:
            accepted_by_registry = False
        try:
            loss = objectives.keras_loss(name, value)
            accepted_by_loss = True
        except ValueError:
            accepted_by_loss = False
        assert accepted_by_registry == accepted_by_loss, (name, value)
        if accepted_by_loss:
            assert (loss.objective, loss.head) == (name, objective.head)
            assert loss.weight == (value if objective.takes_parameter else 0.0)


def test_names_parameters_and_descriptions():
    assert objectives.names()[:4] == [*objectives.PAPER_OBJECTIVES, objectives.CROSS_ENTROPY]
    assert objectives.names() == list(objectives.OBJECTIVES)
    assert objectives.parameter_name("label_smoothing") == "smoothing"
    assert objectives.parameter_name("alpha_divergence") == "exponent"
    assert objectives.parameter_name("mse") == "none"
    assert objectives.describe("kl_regularized", 10.0) == "kl_regularized weight=10"
    assert objectives.describe("generalized_cross_entropy", 0.5) == "generalized_cross_entropy exponent=0.5"
    assert objectives.describe("mse", 0.0) == "mse"
    with pytest.raises(ValueError, match="unknown objective"):
        objectives.get("hinge")
    for bad in (-1, math.nan, math.inf, "x", True):
        with pytest.raises(ValueError):
            objectives.get("kl_regularized").check(bad)


@pytest.mark.parametrize(("changes", "message"), [
    ({"head": "sigmoid"}, "head must be one of"),
    ({"parameter": "temperature"}, "parameter must be None or one of"),
    ({"name": "Bad-Name"}, "lower-case letters"),
    ({"parameter": "weight", "default": -1.0}, "weight must be >= 0"),
    ({"family": "paper"}, "give both or neither"),
    ({"family": "nowhere", "coefficients": lambda w: (w,)}, "not registered"),
    ({"family": "paper", "coefficients": lambda w: (w, 0.0)}, "cannot join the family 'paper'"),
    ({"name": "mse"}, "registered twice"),
])
def test_the_registry_refuses_a_bad_spec_with_the_fix(changes, message):
    spec = {"name": "scratch", "head": "softmax", "per_example": lambda ops, t, z, w: z[:, 0],
            "reference": lambda t, z, w: z[:, 0], **changes}
    with objectives.temporary(), pytest.raises(ValueError, match=message):
        objectives.register(objectives.Objective(**spec))
    assert "scratch" not in objectives.names()


def test_the_registry_loads_no_keras():
    code = ("import sys; import entropylab.objectives, entropylab.training.config, entropylab.experiments.params, "
            "entropylab.training.fused; print('keras' in sys.modules, 'tensorflow' in sys.modules, "
            "'entropylab.objectives.keras_losses' in sys.modules, len(entropylab.objectives.names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False", str(len(objectives.names()))]


def test_the_current_import_paths():
    import entropylab
    from entropylab.data import load_corpus
    from entropylab.data.synthetic import make_synthetic_corpus
    from entropylab.decoding import continue_text
    from entropylab.explorer import explore
    from entropylab.training import RunConfig, load_trained, run
    from entropylab.training.store import COMPLETE

    assert RunConfig().loss == "mse" and callable(run) and callable(load_trained) and COMPLETE == "COMPLETE"
    assert callable(continue_text) and callable(make_synthetic_corpus) and callable(explore)
    assert entropylab.load_corpus is load_corpus


TOY_MODULE = '''
"""A toy objective in a module of its own: ``(1 + w) (-log p_t)``."""
from entropylab.objectives import Objective, register
from entropylab.objectives.numpy_reference import cross_entropy
from entropylab.objectives.terms import softmax_cross_entropy


def scaled_cross_entropy(ops, labels, logits, w):
    """Per-example ``(1 + w) (-log p_t)``."""
    return (1.0 + w) * softmax_cross_entropy(ops, labels, logits)


register(Objective(name="toy_scaled_ce", head="softmax", per_example=scaled_cross_entropy,
                   reference=lambda t, z, w: (1 + w) * cross_entropy(t, z), parameter="weight", default=1.0,
                   label="toy scaled cross-entropy"))
'''


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """A package folder ``toy_objectives`` on the path holding one objective module (and a file that is not one)."""
    package = tmp_path / "toy_objectives"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scaled.py").write_text(TOY_MODULE)
    (package / "_private.py").write_text("raise AssertionError('a module starting with _ is not discovered')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m == "toy_objectives" or m.startswith("toy_objectives.")]:
        del sys.modules[name]


def test_a_new_module_adds_an_objective_everywhere(toy_package, tmp_path):
    """One new module registers an objective: it is a name of the registry, a valid config and parameter-file
    loss, part of an objectives-study plan (tuned), and it trains; the registry is as before afterwards."""
    import keras

    from entropylab.experiments import params, sweep
    from entropylab.paths import project_root
    from entropylab.training import RunConfig, run

    assert "toy_scaled_ce" not in objectives.names()
    with objectives.temporary():
        assert objectives.discover("toy_objectives", [str(toy_package)]) == ["scaled"]
        # (a) the registry
        assert objectives.names()[-1] == "toy_scaled_ce"
        spec = objectives.get("toy_scaled_ce")
        assert (spec.head, spec.parameter, spec.fusable) == ("softmax", "weight", False)
        t = np.array([1, 3], dtype=np.int32)
        z = np.array([[0.1, 2.0, -1.0, 0.5], [1.0, 0.0, 0.0, 3.0]], dtype=np.float32)
        loss = objectives.keras_loss("toy_scaled_ce", 0.5)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.per_example(t, z)),
                                   spec.reference(t, z.astype(np.float64), 0.5), rtol=1e-6)
        # (b) configs and parameter files
        assert params.check_value("loss", "toy_scaled_ce") == "toy_scaled_ce"
        with pytest.raises(ValueError, match=r"weight must be >= 0"):
            RunConfig(dataset="synthetic", loss="toy_scaled_ce", weight=-1)
        # (c) an objectives-study plan: the toy tuned beside the baseline, as params/objectives.yaml does
        study = tmp_path / "toy_study.yaml"
        train = project_root() / "notebooks" / "07_objectives_train.ipynb"
        study.write_text(textwrap.dedent(f"""\
            experiment: toy
            defaults: {{dataset: synthetic, max_sequences: 200, epochs: 1, patience: 1, jit_compile: false}}
            runs:
              - {{notebook: {train}, grid: {{loss: cross_entropy}}}}
              - notebook: {train}
                grid: {{loss: toy_scaled_ce, weight: [0.5, 1.0, 2.0]}}
                tune: {{seeds: [0, 1], neighbours: 1}}
            """))
        loaded = params.load_params(study)
        tuning = sweep.make_plan(sweep.tuning_stage(loaded), output_root=tmp_path / "out")
        assert [t.parameters["weight"] for t in tuning.tasks if t.parameters["loss"] == "toy_scaled_ce"] == \
            [0.5, 1.0, 2.0]
        assert all(t.name.startswith("toy_scaled_ce_w") for t in tuning.tasks)
        assert [p.parameters["loss"] for p in loaded.points] == ["cross_entropy"]
        # (e) the explorer's objective choices and the command line's --loss choices
        from entropylab.cli import build_parser
        from entropylab.explorer import Explorer

        assert "toy_scaled_ce" in Explorer.objectives()  # the widget's objective buttons
        args = build_parser().parse_args(["train", "--loss", "toy_scaled_ce"])
        assert args.loss == "toy_scaled_ce"
        # (d) one tiny run trains with it
        config = RunConfig(dataset="synthetic", max_sequences=200, synthetic={"n_headlines": 100}, epochs=1,
                           loss="toy_scaled_ce", weight=0.5, threads=1, jit_compile=False)
        result = run(config)
        assert result.status == "complete" and len(result.history) == 1
        assert math.isfinite(result.history["loss"].iloc[0]) and result.history["loss"].iloc[0] > 0
    assert "toy_scaled_ce" not in objectives.names()
    with pytest.raises(ValueError, match="expected one of"):
        params.check_value("loss", "toy_scaled_ce")


def test_unregister_removes_one_objective():
    spec = objectives.get("cross_entropy")
    with objectives.temporary():
        objectives.register(objectives.Objective(name="scratch", head="softmax", per_example=spec.per_example,
                                                 reference=spec.reference))
        assert "scratch" in objectives.names()
        objectives.unregister("scratch")
        assert "scratch" not in objectives.names()
        with pytest.raises(ValueError, match="unknown objective"):
            objectives.unregister("scratch")
