"""Training objectives, by name, on integer labels (no one-hot matrix is ever built).

Notation: ``t`` the integer label, ``o`` the model's output row of width ``V``, ``eps = 1e-7`` (Keras'
epsilon), ``c = clip(o, eps, 1)``. For the softmax head ``z`` are logits and ``p = softmax(z)``.

The paper's objectives (linear head; exactly what its Keras code computes, DESIGN.md §5):

* ``mse``: ``(sum_j o_j^2 - 2 o_t + 1) / V``, i.e. Keras' mean squared error against ``onehot(t)``;
* ``entropy_regularized``: ``mse + w * H_paper(o)``, ``H_paper(o) = -sum_j c_j log c_j``;
* ``kl_regularized``: ``mse + w * KL_paper(t, o)``, ``KL_paper = sum_j d_j log(d_j / c_j)`` with
  ``d = clip(onehot(t), eps, 1)``, which equals ``-log c_t + eps * sum_{j != t} (log eps - log c_j)``.

Beyond the paper (softmax head):

* ``cross_entropy``: ``-log p_t = logsumexp(z) - z_t`` (Bansal's baseline, the paper's §6 suggestion);
* ``confidence_penalty``: ``-log p_t - w * H(p)`` (Pereyra et al. 2017: rewards flatter predictions).

Every loss returns the batch mean of its per-example value (Keras' default reduction).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import keras
from keras import ops

EPSILON = 1e-7


# ---------------------------------------------------------------------------------------------------------
# Per-example terms (plain functions, shared with the metrics)
# ---------------------------------------------------------------------------------------------------------

def _labels(y_true: Any) -> Any:
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def _pick(values: Any, labels: Any) -> Any:
    """``values[i, labels[i]]`` for each row i."""
    return ops.squeeze(ops.take_along_axis(values, ops.expand_dims(labels, -1), axis=-1), -1)


def paper_mse(labels: Any, outputs: Any) -> Any:
    """Per-example ``mean_j (onehot(t)_j - o_j)^2 = (sum_j o_j^2 - 2 o_t + 1) / V``."""
    width = ops.cast(ops.shape(outputs)[-1], outputs.dtype)
    return (ops.sum(ops.square(outputs), axis=-1) - 2.0 * _pick(outputs, labels) + 1.0) / width


def paper_entropy(outputs: Any) -> Any:
    """Per-example ``H_paper(o) = -sum_j c_j log c_j`` with ``c = clip(o, eps, 1)``."""
    clipped = ops.clip(outputs, EPSILON, 1.0)
    return -ops.sum(clipped * ops.log(clipped), axis=-1)


def paper_kl(labels: Any, outputs: Any) -> Any:
    """Per-example ``KL_paper(t, o) = -log c_t + eps * sum_{j != t} (log eps - log c_j)``.

    This is ``sum_j d_j log(d_j / c_j)`` with ``d = clip(onehot(t), eps, 1)``, computed without the one-hot.
    """
    log_c = ops.log(ops.clip(outputs, EPSILON, 1.0))
    log_c_t = _pick(log_c, labels)
    width = ops.cast(ops.shape(outputs)[-1], outputs.dtype)
    others = (width - 1.0) * math.log(EPSILON) - (ops.sum(log_c, axis=-1) - log_c_t)
    return -log_c_t + EPSILON * others


def softmax_cross_entropy(labels: Any, logits: Any) -> Any:
    """Per-example ``-log softmax(z)_t = logsumexp(z) - z_t``."""
    return ops.logsumexp(logits, axis=-1) - _pick(logits, labels)


def softmax_entropy(logits: Any) -> Any:
    """Per-example ``H(p) = -sum_j p_j log p_j = logsumexp(z) - sum_j p_j z_j`` with ``p = softmax(z)``."""
    probs = ops.softmax(logits, axis=-1)
    return ops.logsumexp(logits, axis=-1) - ops.sum(probs * logits, axis=-1)


# ---------------------------------------------------------------------------------------------------------
# Keras losses
# ---------------------------------------------------------------------------------------------------------

def check_weight(weight: Any, name: str = "weight") -> float:
    """A penalty weight as a float; NaN, infinite or negative weights are refused."""
    try:
        value = float(weight)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {weight!r}") from exc
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}; use a non-negative number such as 10")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}; the sign of each penalty is fixed by its loss name")
    return value


class EntropyLabLoss(keras.losses.Loss):
    """Base class: integer labels in, batch mean out; ``head`` says what the outputs are."""

    head: ClassVar[str] = "linear"
    takes_weight: ClassVar[bool] = False
    loss_name: ClassVar[str] = ""

    def __init__(self, weight: float = 0.0, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name or self.loss_name, **kwargs)
        self.weight = check_weight(weight) if self.takes_weight else 0.0

    def per_example(self, labels: Any, outputs: Any) -> Any:
        raise NotImplementedError

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self.per_example(_labels(y_true), y_pred)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.takes_weight:
            config["weight"] = self.weight
        return config


@keras.saving.register_keras_serializable(package="entropylab")
class PaperMSE(EntropyLabLoss):
    """Control objective (paper §4.1): ``mse(t, o) = (sum_j o_j^2 - 2 o_t + 1) / V``."""

    loss_name = "mse"

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return paper_mse(labels, outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class EntropyRegularized(EntropyLabLoss):
    """Paper §4.2: ``mse(t, o) + w * H_paper(o)``, ``H_paper(o) = -sum_j c_j log c_j``, ``c = clip(o, eps, 1)``."""

    loss_name = "entropy_regularized"
    takes_weight = True

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return paper_mse(labels, outputs) + self.weight * paper_entropy(outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class KLRegularized(EntropyLabLoss):
    """Paper §4.3: ``mse(t, o) + w * KL_paper(t, o)``, ``KL_paper = -log c_t + eps sum_{j!=t}(log eps - log c_j)``."""

    loss_name = "kl_regularized"
    takes_weight = True

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return paper_mse(labels, outputs) + self.weight * paper_kl(labels, outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class CrossEntropy(EntropyLabLoss):
    """Softmax cross-entropy on logits: ``-log p_t = logsumexp(z) - z_t``."""

    loss_name = "cross_entropy"
    head = "softmax"

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return softmax_cross_entropy(labels, outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class ConfidencePenalty(EntropyLabLoss):
    """Pereyra et al. (2017): ``-log p_t - w * H(p)``; a larger ``w`` pushes ``p`` toward flatter."""

    loss_name = "confidence_penalty"
    head = "softmax"
    takes_weight = True

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return softmax_cross_entropy(labels, outputs) - self.weight * softmax_entropy(outputs)


LOSSES: dict[str, type[EntropyLabLoss]] = {
    cls.loss_name: cls for cls in (PaperMSE, EntropyRegularized, KLRegularized, CrossEntropy, ConfidencePenalty)
}
PAPER_LOSSES = ("mse", "entropy_regularized", "kl_regularized")


def names() -> list[str]:
    return list(LOSSES)


def loss_class(name: str) -> type[EntropyLabLoss]:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]


def get(name: str, weight: float | None = None, **params: Any) -> EntropyLabLoss:
    """The named loss, e.g. ``get("kl_regularized", weight=10)``.

    A weight given to a loss that has none must be 0 (or omitted); a negative, NaN or infinite weight is a
    ``ValueError``; unknown names and parameters list what is allowed.
    """
    cls = loss_class(name)
    if params:
        raise ValueError(f"loss {name!r} takes no parameter(s) {', '.join(sorted(params))}; "
                         f"allowed: {'weight' if cls.takes_weight else 'none'}")
    if cls.takes_weight:
        return cls(weight=0.0 if weight is None else weight)
    if weight is not None and check_weight(weight) != 0.0:
        raise ValueError(f"loss {name!r} has no penalty weight (got {weight}); weighted losses: "
                         f"{', '.join(n for n, c in LOSSES.items() if c.takes_weight)}")
    return cls()
