"""The paper's next-word model (§4.1): ``Embedding(V, 10) -> LSTM(100) -> Dropout(0.1) -> Dense(V)``.

The last layer is always affine. With ``head="linear"`` (the paper's) its outputs are used directly by the
paper's objectives; with ``head="softmax"`` they are logits and the softmax sits inside the loss and the
metrics (numerically safer than a softmax layer followed by a log).
"""

from __future__ import annotations

import keras

HEADS = ("linear", "softmax")


def check_head(head: str) -> str:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    return head


def build_model(vocab_size: int, context_length: int, *, embedding_dim: int = 10, lstm_units: int = 100,
                dropout: float = 0.1, head: str = "linear") -> keras.Model:
    """The LSTM language model: integer contexts of shape (B, context_length) -> (B, vocab_size)."""
    check_head(head)
    inputs = keras.Input(shape=(context_length,), dtype="int32", name="context")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = keras.layers.LSTM(lstm_units, name="lstm")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(vocab_size, activation="linear",
                                 name="outputs" if head == "linear" else "logits")(x)
    return keras.Model(inputs, outputs, name=f"lstm_{head}")


def head_kernel(model: keras.Model) -> keras.Variable:
    """The kernel ``K`` (``d x V``) of the model's last layer, its Dense head: ``outputs = h K + b``, so row ``j`` of
    ``E = K^T`` is word ``j``'s output embedding (what an objective with ``needs_kernel`` reads, e.g. EMO)."""
    layer = model.layers[-1]
    kernel = getattr(layer, "kernel", None)
    if kernel is None or len(kernel.shape) != 2 or kernel.shape[1] != model.output_shape[-1]:
        raise ValueError(f"the model's last layer {layer.name!r} is not a Dense head of width "
                         f"{model.output_shape[-1]}; build the model with entropylab.model.build_model")
    return kernel
