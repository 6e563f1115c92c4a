import json

import keras
import numpy as np
import pandas as pd
import pytest
from test_store import cut

from entropylab.training import RunConfig, load_trained, run
from entropylab.training import store as runs

QUICK = {"dataset": "synthetic", "epochs": 2, "max_sequences": 600, "lstm_units": 16, "batch_size": 32,
         "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}}
#: QUICK without XLA, for tests of what a run writes and reports: XLA's own path is tested for determinism below, and
#: its compilation costs about 8 s a run here.
NO_XLA = {**QUICK, "jit_compile": False}


@pytest.mark.parametrize("jit", [True, False])
def test_same_config_and_seed_give_identical_histories(jit):
    a = run(RunConfig(**QUICK, loss="kl_regularized", weight=10, seed=7, jit_compile=jit))
    b = run(RunConfig(**QUICK, loss="kl_regularized", weight=10, seed=7, jit_compile=jit))
    c = run(RunConfig(**QUICK, loss="kl_regularized", weight=10, seed=8, jit_compile=jit))
    cols = [col for col in a.history.columns if col != "seconds"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
    assert not np.allclose(a.history["loss"], c.history["loss"])


def test_run_folder_is_complete_and_reused(tmp_path):
    config = RunConfig(**NO_XLA, loss="cross_entropy", seed=1)
    folder = tmp_path / config.run_name
    first = run(config, folder)
    assert folder.name.startswith("cross_entropy_seed1-") and len(folder.name.rsplit("-", 1)[1]) == 8
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
        run(RunConfig(**{**NO_XLA, "epochs": 1}, loss="cross_entropy", seed=1), folder)


def test_a_finished_run_with_a_damaged_file_is_trained_again(tmp_path, capsys):
    """A history cut to its header or to 0 bytes, or a cut metrics.json, is not reused (a run would lose epochs or
    read as NaN): one line names the file, and the run is trained again to the same numbers."""
    config = RunConfig(**NO_XLA, loss="cross_entropy", seed=3)
    folder = tmp_path / config.run_name
    first = run(config, folder)
    columns = [c for c in first.history.columns if c != "seconds"]
    for name, how, what in ((runs.HISTORY, "one line", "0 of 2 rows"), (runs.HISTORY, "0 bytes", "0 bytes; it had 2 "
                                                                                               "rows"),
                            (runs.METRICS, "half", "not valid JSON: ")):
        cut(folder / name, how)
        capsys.readouterr()
        again = run(config, folder)
        assert not again.reused and again.status == "complete"
        assert f"{folder / name} is damaged ({what}" in capsys.readouterr().out
        pd.testing.assert_frame_equal(again.history[columns], first.history[columns], check_exact=True)
        assert runs.run_damage(folder) is None
    assert run(config, folder).reused


def test_true_kl_and_entropy_floor_add_up_to_the_cross_entropy_against_the_source(tmp_path):
    """``mean_i sum_j q_ij (-log p_ij) = entropy_floor + true_kl`` exactly (H(q) + KL(q || p) per row), with p the
    model's prediction and q the source's exact next-word law: computed here from the model, not from the metrics."""
    result = run(RunConfig(**NO_XLA, loss="cross_entropy", seed=2))
    last = result.history.iloc[-1]
    split = result.corpus.subset(QUICK["max_sequences"]).split("tail", 0.2, 0)
    log_p = keras.ops.convert_to_numpy(keras.ops.log_softmax(result.model(split.x_val, training=False), axis=-1))
    q = result.corpus.true_next(split.x_val).astype(np.float64)
    cross_entropy_vs_source = float(np.mean(np.sum(np.where(q > 0, -q * log_p, 0.0), axis=1)))
    assert cross_entropy_vs_source == pytest.approx(last["entropy_floor"] + last["true_kl"], rel=1e-5)
    assert last["true_kl"] > 0 and last["entropy_floor"] > 0
    assert last["val_cross_entropy"] > 0.5 * last["entropy_floor"]
    assert 0 <= last["val_accuracy"] <= 1
    refs = result.metrics["references"]
    assert refs["bigram_cross_entropy"] < refs["unigram_cross_entropy"]  # a Markov source: context helps
    # a two-sided run scores the best Kneser-Ney model too, its order chosen on a carve of training, not validation
    from entropylab.metrics.kneser_ney import best_order_model
    model, scores = best_order_model(split.y_train, split.x_train, result.corpus.vocab_size, carve="tail")
    assert refs["kneser_ney_order"] == model.order == min(scores, key=scores.get)
    assert refs["kneser_ney_cross_entropy"] == pytest.approx(model.cross_entropy(split.x_val, split.y_val))


def test_model_reloads_from_its_folder(tmp_path):
    config = RunConfig(**NO_XLA, loss="mse", seed=3)
    result = run(config, tmp_path / "r")
    model, corpus, loaded = load_trained(tmp_path / "r")
    assert loaded == config
    x = corpus.subset(600).split("tail").x_val[:4]
    np.testing.assert_allclose(model(x, training=False), result.model(x, training=False), rtol=1e-6)


def test_nan_loss_is_a_failed_run_with_its_reason(tmp_path):
    config = RunConfig(**NO_XLA, loss="mse", learning_rate=1e30, seed=0)
    result = run(config, tmp_path / "nan")
    assert result.status == "failed"
    assert runs.is_failed(tmp_path / "nan") and not runs.is_complete(tmp_path / "nan")
    assert "NaN" in runs.failure_reason(tmp_path / "nan")


@pytest.mark.parametrize("bad, message", [
    ({"loss": "hinge"}, "unknown objective"),
    ({"loss": "kl_regularized", "weight": -1}, ">= 0"),
    ({"loss": "kl_regularized", "weight": float("nan")}, "finite"),
    ({"loss": "mse", "weight": 2}, "has no parameter"),
    ({"loss": "generalized_cross_entropy", "weight": 1.5}, r"exponent must be in \(0, 1\]"),
    ({"loss": "label_smoothing", "weight": 1.0}, r"smoothing must be in \[0, 1\)"),
    ({"seed": 2**32}, r"seed must be an integer in \[0, 2\*\*32\)"),
    ({"split_seed": -1}, "split_seed"),
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


def test_a_run_of_another_backend_is_another_run(tmp_path, monkeypatch):
    config = RunConfig(**{**QUICK, "epochs": 1}, loss="mse", seed=4)
    run(config, tmp_path / config.run_name)
    assert run(config, tmp_path / config.run_name).reused
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # what a JAX process would see; nothing is imported here
    with pytest.raises(ValueError, match="backend 'tensorflow' but this process runs 'jax'"):
        run(config, tmp_path / "elsewhere")
    on_jax = RunConfig(**{**QUICK, "epochs": 1}, loss="mse", seed=4)
    assert on_jax.backend == "jax" and on_jax.run_name != config.run_name  # the same seed gives other numbers
    with pytest.raises(FileExistsError, match="another config"):
        run(on_jax, tmp_path / config.run_name)


def test_the_identity_is_the_whole_config_except_where_the_data_lives():
    base = RunConfig(**QUICK, loss="kl_regularized", weight=10.0)
    assert base.identity_hash == RunConfig(**QUICK, loss="kl_regularized", weight=10.0).identity_hash
    assert base.run_name == RunConfig(**QUICK, loss="kl_regularized", weight=10.0, data_dir="/x").run_name
    changes = {"learning_rate": 0.01, "split": "headline", "split_seed": 1, "val_fraction": 0.25, "epochs": 3,
               "batch_size": 64, "threads": 3, "jit_compile": False, "max_sequences": 500, "head": "linear"}
    names = {base.run_name}
    for key, value in changes.items():
        other = base.replace(**{key: value})
        if other.identity() != base.identity():
            assert other.slug == base.slug and other.run_name not in names, key
            names.add(other.run_name)
    assert len(names) == len(changes)  # head "linear" is kl_regularized's own head: no change
    assert base.parameter == "weight" and RunConfig(loss="label_smoothing", weight=0.1).parameter == "smoothing"


def test_the_split_seed_not_the_seed_decides_the_validation_set():
    headline = {**NO_XLA, "split": "headline", "epochs": 1}
    a = run(RunConfig(**headline, loss="cross_entropy", seed=1))
    b = run(RunConfig(**headline, loss="cross_entropy", seed=2))
    c = run(RunConfig(**headline, loss="cross_entropy", seed=1, split_seed=5))
    assert a.metrics["references"] == b.metrics["references"]  # same split: the count models see the same data
    assert a.history["loss"].iloc[0] != b.history["loss"].iloc[0]  # another initialisation
    assert c.metrics["references"] != a.metrics["references"]


def test_an_early_stop_by_a_callback_is_a_complete_run(tmp_path):
    stop = keras.callbacks.EarlyStopping(monitor="val_cross_entropy", patience=0, mode="min")

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    config = RunConfig(**{**NO_XLA, "epochs": 3}, loss="cross_entropy", seed=5)
    result = run(config, tmp_path / "r", callbacks=[StopAfterFirstEpoch(), stop])
    assert result.status == "complete" and len(result.history) == 1
    assert result.metrics["stopped_early"] and result.metrics["reason"] is None
    assert runs.is_complete(tmp_path / "r") and not runs.is_failed(tmp_path / "r")


def test_the_initial_weight_nudge_moves_each_weight_by_exactly_its_ulps(monkeypatch):
    from entropylab.model import build_model
    from entropylab.training.train import nudge_initial_weights

    model = build_model(40, 5, embedding_dim=4, lstm_units=6, dropout=0.1, head="softmax")
    before = [w.copy() for w in model.get_weights()]
    nudge_initial_weights(model, 0, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    nudge_initial_weights(model, 7, seed=1)
    after = model.get_weights()
    ups = 0
    for old, new in zip(before, after, strict=True):
        nonzero = old != 0
        assert np.array_equal(new[~nonzero], old[~nonzero])  # zeros (the biases) stay zero
        steps = new.view(np.int32).astype(np.int64) - old.view(np.int32).astype(np.int64)
        assert set(np.abs(steps[nonzero]).ravel().tolist()) <= {7}
        ups += int((new[nonzero] > old[nonzero]).sum())
        np.testing.assert_allclose(new, old, rtol=7 * 2.0**-23 * 1.01)
    assert 0 < ups < sum(int((w != 0).sum()) for w in before)  # both directions are drawn
    again = build_model(40, 5, embedding_dim=4, lstm_units=6, dropout=0.1, head="softmax")
    again.set_weights(before)
    nudge_initial_weights(again, 7, seed=1)  # the same seed and size: the same nudge
    assert all(np.array_equal(a, b) for a, b in zip(after, again.get_weights(), strict=True))


def test_the_nudge_is_part_of_a_runs_identity_only_when_set(monkeypatch):
    from entropylab.training.config import NUDGE_ENV_VAR

    monkeypatch.delenv(NUDGE_ENV_VAR, raising=False)
    plain = RunConfig(**QUICK)
    assert plain.init_nudge_ulps == 0 and "init_nudge_ulps" not in plain.identity()  # stored runs keep their names
    nudged = plain.replace(init_nudge_ulps=100)
    assert nudged.identity()["init_nudge_ulps"] == 100 and nudged.run_name != plain.run_name
    monkeypatch.setenv(NUDGE_ENV_VAR, "100")
    assert RunConfig(**QUICK).run_name == nudged.run_name  # the environment's nudge is recorded in the config
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="init_nudge_ulps"):
            RunConfig(**QUICK, init_nudge_ulps=bad)
    monkeypatch.setenv(NUDGE_ENV_VAR, "lots")
    with pytest.raises(ValueError, match=NUDGE_ENV_VAR):
        RunConfig(**QUICK)


def test_a_nudged_run_trains_to_nearby_but_different_numbers():
    config = RunConfig(**{**NO_XLA, "epochs": 1}, loss="cross_entropy", seed=2)
    plain, nudged = run(config), run(config.replace(init_nudge_ulps=1000))
    a, b = plain.history["val_cross_entropy"].iloc[-1], nudged.history["val_cross_entropy"].iloc[-1]
    assert a != b and abs(a - b) < 1e-3 * a
