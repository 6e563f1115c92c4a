"""Per-example terms shared by the objectives and the validation metrics, on integer labels (never a one-hot).

Each takes ``ops``, the :mod:`keras.ops` namespace, as its first argument, so that this module and the objective
modules built on it import no Keras (the caller has it: :mod:`entropylab.objectives.keras_losses`,
:mod:`entropylab.metrics.validation`).

Notation: ``t`` the integer label, ``o`` the model's output row of width ``V``, ``eps = 1e-7`` (Keras' epsilon),
``c = clip(o, eps, 1)``. For the softmax head ``z`` are logits and ``p = softmax(z)``.
"""

from __future__ import annotations

import math
from typing import Any

EPSILON = 1e-7


def labels_of(ops: Any, y_true: Any) -> Any:
    """Integer labels of shape ``(B,)`` from ``(B,)`` or ``(B, 1)`` (as Keras sometimes passes them)."""
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def pick(ops: Any, values: Any, labels: Any) -> Any:
    """``values[i, labels[i]]`` for each row i."""
    return ops.squeeze(ops.take_along_axis(values, ops.expand_dims(labels, -1), axis=-1), -1)


def paper_mse(ops: Any, labels: Any, outputs: Any) -> Any:
    """Per-example ``mean_j (onehot(t)_j - o_j)^2 = (sum_j o_j^2 - 2 o_t + 1) / V``."""
    width = ops.cast(ops.shape(outputs)[-1], outputs.dtype)
    return (ops.sum(ops.square(outputs), axis=-1) - 2.0 * pick(ops, outputs, labels) + 1.0) / width


def paper_entropy(ops: Any, outputs: Any) -> Any:
    """Per-example ``H_paper(o) = -sum_j c_j log c_j`` with ``c = clip(o, eps, 1)``."""
    clipped = ops.clip(outputs, EPSILON, 1.0)
    return -ops.sum(clipped * ops.log(clipped), axis=-1)


def paper_kl(ops: Any, labels: Any, outputs: Any) -> Any:
    """Per-example ``KL_paper(t, o) = -log c_t + eps * sum_{j != t} (log eps - log c_j)``.

    This is ``sum_j d_j log(d_j / c_j)`` with ``d = clip(onehot(t), eps, 1)`` (as Keras' ``kl_divergence`` clips
    both of its arguments), computed without the one-hot.
    """
    log_c = ops.log(ops.clip(outputs, EPSILON, 1.0))
    log_c_t = pick(ops, log_c, labels)
    width = ops.cast(ops.shape(outputs)[-1], outputs.dtype)
    others = (width - 1.0) * math.log(EPSILON) - (ops.sum(log_c, axis=-1) - log_c_t)
    return -log_c_t + EPSILON * others


def softmax_cross_entropy(ops: Any, labels: Any, logits: Any) -> Any:
    """Per-example ``-log softmax(z)_t = logsumexp(z) - z_t``."""
    return ops.logsumexp(logits, axis=-1) - pick(ops, logits, labels)


def softmax_entropy(ops: Any, logits: Any) -> Any:
    """Per-example ``H(p) = -sum_j p_j log p_j = logsumexp(z) - sum_j p_j z_j`` with ``p = softmax(z)``."""
    probs = ops.softmax(logits, axis=-1)
    return ops.logsumexp(logits, axis=-1) - ops.sum(probs * logits, axis=-1)
