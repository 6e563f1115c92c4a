"""Where the time goes: arithmetic counts of the paper's model and a per-part timing of one training step."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from .pipelines import BATCH_SIZE


def model_flops(vocab_size: int, context: int = 23, embedding_dim: int = 10, lstm_units: int = 100) -> dict:
    """Floating-point operations per example (a multiply-add counts 2) of the paper's model.

    * LSTM forward: ``T * 2 * (E + H) * 4H`` (four gates over input and state, ``T`` steps); the gate
      nonlinearities and the embedding lookup are negligible;
    * output layer forward: ``2 * H * V``;
    * training (forward + backward): about 3x forward (the backward pass computes two products per matmul:
      the gradient of the weights and of the input);
    * Adam: about 12 operations per parameter per step (not per example), memory-bound.
    """
    lstm = context * 2 * (embedding_dim + lstm_units) * 4 * lstm_units
    dense = 2 * lstm_units * vocab_size
    params = vocab_size * embedding_dim + 4 * lstm_units * (embedding_dim + lstm_units + 1) + (
        lstm_units + 1) * vocab_size
    return {"lstm_forward": lstm, "dense_forward": dense, "forward": lstm + dense,
            "train": 3 * (lstm + dense), "params": params, "adam_per_step": 12 * params}


def epoch_flops(n_train: int, n_val: int, vocab_size: int, batch_size: int = BATCH_SIZE, **sizes: int) -> float:
    """Operations of one epoch: training on ``n_train``, Adam each step, one forward pass over ``n_val``."""
    f = model_flops(vocab_size, **sizes)
    steps = math.ceil(n_train / batch_size)
    return n_train * f["train"] + steps * f["adam_per_step"] + n_val * f["forward"]


def _median_seconds(function: Any, steps: int, repeats: int) -> float:
    function()  # trace and compile
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            out = function()
        import tensorflow as tf

        _ = [v.numpy() for v in tf.nest.flatten(out, expand_composites=True)[:1]]  # wait for the last step
        times.append((time.perf_counter() - started) / steps)
    return float(statistics.median(times))


def step_breakdown(vocab_size: int = 11265, context: int = 23, batch_size: int = BATCH_SIZE, lstm_units: int = 100,
                   embedding_dim: int = 10, steps: int = 200, repeats: int = 5, jit: bool = True,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Median milliseconds per step of each part of a training step (TensorFlow; XLA when ``jit``).

    Parts: the LSTM (embedding + LSTM + dropout) forward and backward; the output layer and the loss forward and
    backward; Adam's update alone; the whole step as one function; the whole step through ``model.fit`` on the
    ``tf.data`` pipeline (what :func:`entropylab.training.train.run` does, with Keras' per-step overhead); the
    input pipeline alone; an empty function call (the dispatch overhead).
    """
    from ..training.train import configure_tensorflow, training_dataset

    configure_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from ..model import build_model
    from ..objectives import keras_loss

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(vocab_size, context, embedding_dim=embedding_dim, lstm_units=lstm_units)
    loss = keras_loss("mse")
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    x = tf.constant(rng.integers(1, vocab_size, (batch_size, context)), tf.int32)
    y = tf.constant(rng.integers(1, vocab_size, batch_size), tf.int32)
    h = tf.constant(rng.normal(size=(batch_size, lstm_units)), tf.float32)
    encoder = keras.Model(model.inputs, model.get_layer("dropout").output)
    dense = model.layers[-1]
    fixed_grads = [tf.constant(rng.normal(0, 1e-3, v.shape), tf.float32) for v in model.trainable_variables]

    def compiled(fn: Any) -> Any:
        return tf.function(fn, jit_compile=jit)

    @compiled
    def lstm_part() -> Any:
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(encoder(x, training=True))
        return tape.gradient(value, encoder.trainable_variables)

    @compiled
    def dense_part() -> Any:
        with tf.GradientTape() as tape:
            tape.watch(h)
            value = loss(y, dense(h))
        return tape.gradient(value, [*dense.trainable_variables, h])

    @compiled
    def forward() -> Any:
        return loss(y, model(x, training=True))

    @compiled
    def adam_only() -> Any:
        optimizer.apply(fixed_grads, model.trainable_variables)
        return [optimizer.iterations]

    @compiled
    def full_step() -> Any:
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return [value]

    @tf.function
    def empty() -> Any:
        return tf.constant(0.0)

    n = batch_size * steps
    data_x = rng.integers(1, vocab_size, (n, context)).astype("int32")
    data_y = rng.integers(1, vocab_size, n).astype("int32")
    dataset, _ = training_dataset(data_x, data_y, batch_size, seed)
    iterator = iter(dataset)

    def input_only() -> Any:
        return next(iterator)[1]

    fit_model = build_model(vocab_size, context, embedding_dim=embedding_dim, lstm_units=lstm_units)
    fit_model.compile(optimizer=keras.optimizers.Adam(), loss=loss, jit_compile=jit)

    def keras_fit_seconds() -> float:
        fit_model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)  # compile
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fit_model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times.append((time.perf_counter() - started) / steps)
        return float(statistics.median(times))

    f = model_flops(vocab_size, context, embedding_dim, lstm_units)
    parts = [
        ("LSTM fwd+bwd (23 sequential steps)", lstm_part, 3 * f["lstm_forward"] * batch_size),
        (f"output layer {lstm_units}x{vocab_size} + loss fwd+bwd", dense_part, 3 * f["dense_forward"] * batch_size),
        ("Adam update (all parameters)", adam_only, f["adam_per_step"]),
        ("forward only (whole model + loss)", forward, f["forward"] * batch_size),
        ("whole step, one function", full_step, f["train"] * batch_size + f["adam_per_step"]),
        ("input pipeline (tf.data next batch)", input_only, 0),
        ("empty tf.function call", empty, 0),
    ]
    rows = []
    for name, fn, flops in parts:
        seconds = _median_seconds(fn, steps, repeats)
        rows.append({"part": name, "ms_per_step": seconds * 1e3, "gflop_per_step": flops / 1e9,
                     "gflops": flops / seconds / 1e9 if flops else math.nan})
    seconds = keras_fit_seconds()
    flops = f["train"] * batch_size + f["adam_per_step"]
    rows.append({"part": "whole step through model.fit + tf.data", "ms_per_step": seconds * 1e3,
                 "gflop_per_step": flops / 1e9, "gflops": flops / seconds / 1e9})
    return rows


def format_breakdown(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'part':<48} {'ms/step':>8} {'GFLOP':>7} {'GFLOP/s':>8}"]
    for r in rows:
        gflops = "" if math.isnan(r["gflops"]) else f"{r['gflops']:.1f}"
        lines.append(f"{r['part']:<48} {r['ms_per_step']:>8.3f} {r['gflop_per_step']:>7.4f} {gflops:>8}")
    return "\n".join(lines)
