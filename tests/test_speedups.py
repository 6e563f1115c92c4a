"""Speed-ups change no number: the same config and seed give the same history with and without each of them,
and the naive pipeline's objective is ours.

Tolerances, on every per-epoch number: ``rtol=2e-3`` for XLA, ``rtol=5e-4`` otherwise. XLA reorders float32
sums and training amplifies the rounding; after two epochs of the KL-regularised objective (w = 10) the
largest relative difference measured was 7.6e-4 (``paper_entropy``, whose clipping at eps and 1 makes it the
most sensitive), the training loss agreed to ~1e-6. The thread count changed no bit. A real change (another
seed) moves the numbers by ~10% (``test_a_real_change_is_caught``).

XLA compiles TensorFlow's stateless random ops to a different generator, so with dropout the masks of an XLA
run differ from a non-XLA run's (a different but equally distributed random stream, like another seed): the
XLA comparison therefore runs with ``dropout=0``; with dropout each path is deterministic on its own
(``tests/test_train.py``). Keras' ``steps_per_execution`` was measured and rejected for the same reason: it
changed the history (other dropout masks) beyond float tolerance.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest

from entropylab import objectives
from entropylab.bench import naive
from entropylab.bench.pipelines import backend_available
from entropylab.training.config import RunConfig
from entropylab.training.train import run

RTOL = 5e-4
RTOL_XLA = 2e-3
QUICK = {"dataset": "synthetic", "epochs": 2, "max_sequences": 500, "lstm_units": 16, "batch_size": 32,
         "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}}
NUMBERS = ["loss", "val_loss", "paper_entropy", "paper_kl", "val_cross_entropy", "val_accuracy", "val_entropy"]


def _history(**overrides) -> pd.DataFrame:
    if not overrides:
        return _reference_history().copy()
    return run(RunConfig(**{**QUICK, "loss": "kl_regularized", "weight": 10.0, "seed": 5, **overrides})).history


@functools.cache
def _reference_history() -> pd.DataFrame:
    """The default run's history, trained once in this process for the tests that compare against it."""
    return run(RunConfig(**{**QUICK, "loss": "kl_regularized", "weight": 10.0, "seed": 5})).history


def _history_in_child(env: dict[str, str], **overrides) -> pd.DataFrame:
    """The same run in a fresh process (thread pools and the Keras backend are fixed at process start)."""
    config = {**QUICK, "loss": "kl_regularized", "weight": 10.0, "seed": 5, **overrides}
    script = textwrap.dedent(f"""
        import json
        from entropylab.training.config import RunConfig
        from entropylab.training.train import run
        history = run(RunConfig(**json.loads({json.dumps(json.dumps(config))}))).history
        print("HISTORY=" + history.to_json(orient="records"))
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("HISTORY="))
    return pd.DataFrame(json.loads(line[len("HISTORY="):]))


def _assert_same(a: pd.DataFrame, b: pd.DataFrame, rtol: float = RTOL) -> None:
    for column in NUMBERS:
        np.testing.assert_allclose(b[column].to_numpy(), a[column].to_numpy(), rtol=rtol, err_msg=column)


def test_xla_changes_no_number():
    """XLA (the default) against TensorFlow's deterministic kernels without it (dropout off: see above)."""
    _assert_same(_history(jit_compile=False, dropout=0.0), _history(jit_compile=True, dropout=0.0), RTOL_XLA)


def test_xla_stays_on_after_a_run_without_it():
    """Op determinism is process-wide and makes Keras drop XLA; a later XLA run must switch it off again."""
    run(RunConfig(**{**QUICK, "epochs": 1, "jit_compile": False}))
    assert run(RunConfig(**{**QUICK, "epochs": 1, "jit_compile": True})).model.jit_compile is True


def test_a_real_change_is_caught():
    """The tolerance is tight enough to see a different seed (other initial weights, shuffles, masks)."""
    with pytest.raises(AssertionError):
        _assert_same(_history(), _history(seed=6), RTOL_XLA)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_thread_settings_change_no_number(threads):
    _assert_same(_history(), _history_in_child({"ENTROPYLAB_THREADS": threads}))


@pytest.mark.skipif(not backend_available("jax"),
                    reason="JAX not installed (pip install -e '.[jax]')")
def test_jax_backend_is_deterministic_and_its_compiled_metrics_are_exact():
    """On JAX (an option): the same seed gives the same history twice, and the jit-compiled metric pass
    equals the metrics computed op by op. (JAX's random streams differ from TensorFlow's, so its histories
    are not TensorFlow's; the benchmark compares their curves.)"""
    script = textwrap.dedent("""
        import json
        import numpy as np
        from keras import ops
        from entropylab.training.config import RunConfig
        from entropylab.training.train import run
        from entropylab.metrics import BIN_KEYS, EXAMPLE_KEYS, ValidationEvaluator, batch_sums
        config = json.loads(CONFIG)
        a = run(RunConfig(**config)); b = run(RunConfig(**config))
        data = a.corpus.subset(config["max_sequences"]).split("tail")
        from entropylab.objectives import keras_loss
        loss = keras_loss("kl_regularized", 10.0)
        compiled = ValidationEvaluator(data.x_val, data.y_val, loss, "linear").evaluate(a.model)
        sums = batch_sums(a.model(data.x_val, training=False), data.y_val, loss, "linear")
        eager = {k: float(ops.convert_to_numpy(v)) / len(data.y_val) for k, v in sums.items()
                 if k not in BIN_KEYS + EXAMPLE_KEYS}
        print("RESULT=" + json.dumps({"a": a.history.drop(columns="seconds").to_dict("list"),
                                      "b": b.history.drop(columns="seconds").to_dict("list"),
                                      "compiled": compiled, "eager": eager}))
    """).replace("CONFIG", repr(json.dumps({**QUICK, "loss": "kl_regularized", "weight": 10.0, "seed": 5})))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                               "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))[len("RESULT="):])
    assert result["a"] == result["b"]
    for key, value in result["eager"].items():
        assert result["compiled"][key] == pytest.approx(value, rel=1e-5, abs=1e-9), key


def test_naive_objective_is_ours():
    """Keras' MSE on the guide's float64 one-hot labels equals our integer-label MSE on the same outputs."""
    rng = np.random.default_rng(1)
    width = 257
    outputs = rng.normal(0.0, 0.3, (64, width)).astype("float32")
    outputs[0, :3] = [-1.0, 0.0, 2.0]
    labels = rng.integers(1, width, 64).astype("int32")
    one_hot = naive.one_hot_labels(labels, width)
    assert one_hot.dtype == np.float64 and one_hot.shape == (64, width)  # the guide's 8 bytes per entry
    keras_per_example = keras.ops.convert_to_numpy(keras.losses.mean_squared_error(one_hot, outputs))
    ours_per_example = keras.ops.convert_to_numpy(objectives.paper_mse(keras.ops, labels, outputs))
    np.testing.assert_allclose(ours_per_example, keras_per_example, rtol=1e-5, atol=1e-9)
    keras_batch = float(keras.ops.convert_to_numpy(keras.losses.MeanSquaredError()(one_hot, outputs)))
    ours_batch = float(keras.ops.convert_to_numpy(objectives.keras_loss("mse")(labels, outputs)))
    assert ours_batch == pytest.approx(keras_batch, rel=1e-5)


@pytest.mark.parametrize("fraction", [naive.VALIDATION_SPLIT, 0.1, 0.25, 1 / 3])
def test_naive_split_sizes_are_what_keras_validation_split_takes(fraction):
    """``split_sizes`` against Keras' own ``train_validation_split`` (what ``fit(validation_split=f)`` calls),
    on sizes whose ``n * (1 - f)`` is whole and is not (where rounding up and down differ)."""
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    for n in [2, 3, 7, 10, 11, 13, 299, 300, 6001, 51770]:
        if math.floor(n * (1.0 - fraction)) in (0, n):  # too few for Keras to split: it refuses
            continue
        train, val = train_validation_split(np.arange(n), validation_split=fraction)
        assert naive.split_sizes(n, fraction) == (len(train), len(val)), n
        assert list(train) + list(val) == list(range(n))  # the first ones train, the last ones validate


def test_naive_pipeline_trains_the_same_model(small_synthetic):
    corpus = small_synthetic.subset(300)
    result = naive.train_naive(corpus, epochs=1, lstm_units=8)
    assert set(result.history) == {"loss", "val_loss"} and len(result.history["loss"]) == 1
    assert (result.n_train, result.n_val) == corpus.split("tail", 0.2).sizes
    assert result.label_bytes == 300 * corpus.vocab_size * 8
    assert result.model.output_shape == (None, corpus.vocab_size)
    assert all(np.isfinite(result.history["val_loss"]))
