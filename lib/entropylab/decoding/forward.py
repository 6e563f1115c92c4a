"""The model's raw outputs for a batch of input windows, as every decoder asks for them at every step.

``outputs(model, window) = model(window, training=False)`` as float64, one row per window. On the TensorFlow
backend a Keras model's call runs as one traced ``tf.function`` per model (no XLA), kept on the model, instead of
op by op in eager mode: the same kernels on the same inputs, so the same bits (``tests/test_decoding.py`` compares
both), at about a quarter of the time of the LSTM's eager step loop (20 calls on 500 windows of the NYT headline
model, one thread: 0.67 s against 2.35 s, measured once while building it). The batch dimension is left open, so
a beam's ``B x K`` windows and a study's ``B`` windows share one trace. On any other backend, or for a stand-in
that is not a Keras model, the model is called directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The attribute of a model that holds its traced call.
TRACED = "_entropylab_traced_call"


def outputs(model: Any, window: np.ndarray) -> np.ndarray:
    """``model(window, training=False)`` as a float64 array (see the module docstring)."""
    return np.asarray(traced_call(model)(np.asarray(window, dtype=np.int32)), dtype=np.float64)


def traced_call(model: Any) -> Any:
    """The model's inference call: a ``tf.function`` made once per model on TensorFlow, else the model itself."""
    traced = getattr(model, TRACED, None)
    if traced is not None:
        return traced
    import keras

    if keras.backend.backend() != "tensorflow" or not isinstance(model, keras.Model):
        return lambda window: model(window, training=False)  # another backend, or a stand-in (tests' tables)
    import tensorflow as tf

    try:
        signature = [tf.TensorSpec([None, *model.input_shape[1:]], tf.int32)]
    except (AttributeError, ValueError):  # a model without one input shape: retraced per new shape instead
        signature = None
    traced = tf.function(lambda window: model(window, training=False), input_signature=signature,
                         reduce_retracing=signature is None)
    object.__setattr__(model, TRACED, traced)  # Keras tracks what is set on a model; this is not a layer's state
    return traced
