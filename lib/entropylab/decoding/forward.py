"""The model's raw outputs for a batch of input windows, as every decoder asks for them at every step.

``outputs(model, window) = model(window, training=False)`` as float64, one row per window. A Keras model's call is
compiled once per model (and kept on it) instead of running op by op:

- on TensorFlow, as one traced ``tf.function`` (no XLA): the same kernels on the same inputs, so the same bits
  (``tests/test_decoding.py`` compares both), at about a quarter of the time of the LSTM's eager step loop (20
  calls on 500 windows of the NYT headline model, one thread: 0.67 s against 2.35 s);
- on JAX, as one ``jax.jit`` of the model's ``stateless_call`` given the variables' current values at every call
  (so weights set after the first call are read, never baked in): 20 calls on 500 windows of 20 words over 11,265
  words, 0.76 s against 6.1 s op by op, and the same bits there, measured once on this project's 2-core CPU
  (``tests/test_fused.py`` asks only for a relative 1e-6, as XLA may fuse differently on another CPU).

The batch dimension is left open, so a beam's ``B x K`` windows and a study's ``B`` windows share one trace on
TensorFlow (JAX compiles once per batch shape, a handful per study). On any other backend, or for a stand-in that
is not a Keras model, the model is called directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The attribute of a model that holds its compiled call.
TRACED = "_entropylab_traced_call"


def outputs(model: Any, window: np.ndarray) -> np.ndarray:
    """``model(window, training=False)`` as a float64 array (see the module docstring)."""
    return np.asarray(traced_call(model)(np.asarray(window, dtype=np.int32)), dtype=np.float64)


def traced_call(model: Any) -> Any:
    """The model's inference call, compiled once per model on TensorFlow and JAX, else the model itself."""
    traced = getattr(model, TRACED, None)
    if traced is not None:
        return traced
    import keras

    backend = keras.backend.backend()
    if not isinstance(model, keras.Model) or backend not in ("tensorflow", "jax"):
        return lambda window: model(window, training=False)  # another backend, or a stand-in (tests' tables)
    traced = _tensorflow_call(model) if backend == "tensorflow" else _jax_call(model)
    object.__setattr__(model, TRACED, traced)  # Keras tracks what is set on a model; this is not a layer's state
    return traced


def _tensorflow_call(model: Any) -> Any:
    """One ``tf.function`` of the inference call, its batch dimension open."""
    import tensorflow as tf

    try:
        signature = [tf.TensorSpec([None, *model.input_shape[1:]], tf.int32)]
    except (AttributeError, ValueError):  # a model without one input shape: retraced per new shape instead
        signature = None
    return tf.function(lambda window: model(window, training=False), input_signature=signature,
                       reduce_retracing=signature is None)


def _jax_call(model: Any) -> Any:
    """One ``jax.jit`` of ``stateless_call``, fed the model's current variable values at each call."""
    import jax

    compiled = jax.jit(lambda trainable, non_trainable, window:
                       model.stateless_call(trainable, non_trainable, window, training=False)[0])

    def call(window: np.ndarray) -> Any:
        return compiled([v.value for v in model.trainable_variables],
                        [v.value for v in model.non_trainable_variables], window)

    return call
