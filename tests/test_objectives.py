"""The objectives registry (no Keras) and the Keras losses say the same thing about every objective."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from entropylab import losses, objectives


@pytest.mark.parametrize("name", objectives.names())
def test_registry_and_losses_agree(name):
    objective, cls = objectives.get(name), losses.loss_class(name)
    assert cls.head == objective.head
    assert cls.takes_weight == objective.takes_parameter
    if objective.takes_parameter:
        assert cls.parameter == objective.parameter
    for value in (0.0, 1e-7, 0.1, 0.5, 1.0, 1.5, 10.0):
        try:
            objective.check(value)
            accepted_by_registry = True
        except ValueError:
            accepted_by_registry = False
        try:
            losses.get(name, weight=value)
            accepted_by_loss = True
        except ValueError:
            accepted_by_loss = False
        assert accepted_by_registry == accepted_by_loss, (name, value)


def test_names_parameters_and_descriptions():
    assert objectives.names()[:3] == list(objectives.PAPER_OBJECTIVES) == list(losses.PAPER_LOSSES)
    assert objectives.names() == losses.names()
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


def test_the_registry_loads_no_keras():
    code = ("import sys; import entropylab.objectives, entropylab.training.config, entropylab.experiments.params; "
            "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_the_first_layouts_import_paths_still_work():
    import entropylab
    from entropylab.data import load_corpus
    from entropylab.generate import continue_text
    from entropylab.runs import COMPLETE
    from entropylab.synthetic import make_synthetic_corpus
    from entropylab.train import RunConfig, load_trained, run
    from entropylab.widgets import explore

    assert RunConfig().loss == "mse" and callable(run) and callable(load_trained) and COMPLETE == "COMPLETE"
    assert callable(continue_text) and callable(make_synthetic_corpus) and callable(explore)
    assert entropylab.load_corpus is load_corpus
