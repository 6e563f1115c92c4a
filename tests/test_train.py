import json
import math

import numpy as np
import pandas as pd
import pytest

from entropylab import runs
from entropylab.train import RunConfig, load_trained, run

QUICK = {"dataset": "synthetic", "epochs": 2, "max_sequences": 600, "lstm_units": 16, "batch_size": 32,
         "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}}


@pytest.mark.parametrize("jit", [True, False])
def test_same_config_and_seed_give_identical_histories(jit):
    a = run(RunConfig(**QUICK, loss="kl_regularized", weight=10, seed=7, jit_compile=jit))
    b = run(RunConfig(**QUICK, loss="kl_regularized", weight=10, seed=7, jit_compile=jit))
    c = run(RunConfig(**QUICK, loss="kl_regularized", weight=10, seed=8, jit_compile=jit))
    cols = [col for col in a.history.columns if col != "seconds"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
    assert not np.allclose(a.history["loss"], c.history["loss"])


def test_run_folder_is_complete_and_reused(tmp_path):
    config = RunConfig(**QUICK, loss="cross_entropy", seed=1)
    first = run(config, tmp_path / config.slug)
    folder = tmp_path / "cross_entropy_seed1"
    for name in ("config.json", "history.csv", "metrics.json", "model.weights.h5", "COMPLETE"):
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".partial*"))
    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    expected = {"loss", "val_loss", "paper_entropy", "paper_kl", "val_cross_entropy", "val_perplexity",
                "val_accuracy", "val_entropy", "true_kl", "entropy_floor"}
    assert expected <= set(history.columns)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["split_sizes"] == {"train": 480, "val": 120}
    again = run(config, folder)
    assert again.reused and again.history.equals(first.history.astype(again.history.dtypes.to_dict()))
    with pytest.raises(FileExistsError, match="another config"):
        run(RunConfig(**{**QUICK, "epochs": 1}, loss="cross_entropy", seed=1), folder)


def test_metrics_are_consistent(tmp_path):
    result = run(RunConfig(**QUICK, loss="cross_entropy", seed=2))
    last = result.history.iloc[-1]
    assert last["val_perplexity"] == pytest.approx(math.exp(last["val_cross_entropy"]))
    # cross-entropy = entropy floor + true KL only holds in expectation; both must be positive
    assert last["true_kl"] > 0 and last["entropy_floor"] > 0
    assert last["val_cross_entropy"] > 0.5 * last["entropy_floor"]
    assert 0 <= last["val_accuracy"] <= 1
    refs = result.metrics["references"]
    assert refs["bigram_cross_entropy"] < refs["unigram_cross_entropy"]  # a Markov source: context helps


def test_model_reloads_from_its_folder(tmp_path):
    config = RunConfig(**QUICK, loss="mse", seed=3)
    result = run(config, tmp_path / "r")
    model, corpus, loaded = load_trained(tmp_path / "r")
    assert loaded == config
    x = corpus.subset(600).split("tail").x_val[:4]
    np.testing.assert_allclose(model(x, training=False), result.model(x, training=False), rtol=1e-6)


def test_nan_loss_is_a_failed_run_with_its_reason(tmp_path):
    config = RunConfig(**QUICK, loss="mse", learning_rate=1e30, seed=0)
    result = run(config, tmp_path / "nan")
    assert result.status == "failed"
    assert runs.is_failed(tmp_path / "nan") and not runs.is_complete(tmp_path / "nan")
    assert "NaN" in runs.failure_reason(tmp_path / "nan")


@pytest.mark.parametrize("bad, message", [
    ({"loss": "hinge"}, "unknown loss"),
    ({"loss": "kl_regularized", "weight": -1}, ">= 0"),
    ({"loss": "kl_regularized", "weight": float("nan")}, "finite"),
    ({"loss": "mse", "weight": 2}, "takes no weight"),
    ({"loss": "cross_entropy", "head": "linear"}, "softmax"),
    ({"split": "random"}, "unknown split"),
    ({"epochs": 0}, "positive"),
])
def test_bad_configs_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**bad)


def test_unknown_config_key():
    with pytest.raises(ValueError, match="unknown config key"):
        RunConfig.from_dict({"los": "mse"})


def test_atomic_writes_leave_ordinary_permissions(tmp_path):
    runs.write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").stat().st_mode & 0o044 == 0o044
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_run_of_another_backend_is_not_reused(tmp_path, monkeypatch):
    config = RunConfig(**{**QUICK, "epochs": 1}, loss="mse", seed=4)
    run(config, tmp_path / "r")
    assert run(config, tmp_path / "r").reused
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # what a JAX process would see; nothing is imported here
    with pytest.raises(FileExistsError, match="backend 'tensorflow'"):
        run(config, tmp_path / "r")
