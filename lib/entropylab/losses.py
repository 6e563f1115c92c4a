"""Training objectives, by name, on integer labels (no one-hot matrix is ever built).

Notation: ``t`` the integer label, ``o`` the model's output row of width ``V``, ``eps = 1e-7`` (Keras'
epsilon), ``c = clip(o, eps, 1)``. For the softmax head ``z`` are logits and ``p = softmax(z)``.

The paper's objectives (linear head), exactly the numbers its Keras code computes: Keras' mean squared error
plus a weighted entropy or KL term on the outputs clipped to ``[eps, 1]`` (as Keras' ``kl_divergence`` clips
both of its arguments):

* ``mse``: ``(sum_j o_j^2 - 2 o_t + 1) / V``, i.e. Keras' mean squared error against ``onehot(t)``;
* ``entropy_regularized``: ``mse + w * H_paper(o)``, ``H_paper(o) = -sum_j c_j log c_j``;
* ``kl_regularized``: ``mse + w * KL_paper(t, o)``, ``KL_paper = sum_j d_j log(d_j / c_j)`` with
  ``d = clip(onehot(t), eps, 1)``, which equals ``-log c_t + eps * sum_{j != t} (log eps - log c_j)``.

Beyond the paper (softmax head):

* ``cross_entropy``: ``-log p_t = logsumexp(z) - z_t`` (Bansal's baseline, the paper's §6 suggestion);
* ``confidence_penalty``: ``-log p_t - w * H(p)`` (Pereyra et al. 2017: rewards flatter predictions);
* ``entropy_minimization``: ``-log p_t + w * H(p)`` (the opposite sign: rewards peaked predictions);
* ``label_smoothing``: ``-(1 - w) log p_t - (w / V) sum_j log p_j`` (smoothing ``w`` toward uniform);
* power divergences on the target token (Labeau & Cohen 2019), each equal to cross-entropy at 1, with ``w``
  their exponent: ``alpha_divergence`` ``(1 - p_t^(1-w)) / (w (1 - w))``; ``beta_divergence``
  ``-[p_t^(w-1) / (w-1) - sum_j p_j^w / w - 1 / (w (w-1))]``; ``gamma_divergence``
  ``-log p_t + (1/w) log sum_j p_j^w``;
* ``generalized_cross_entropy``: ``(1 - p_t^w) / w`` with ``w`` in ``(0, 1]`` (Zhang & Sabuncu 2018:
  ``w -> 0`` is CE, 1 is MAE).

The exponent losses are evaluated in float32-safe forms: powers as ``exp(k * log_softmax(z))`` (never
``p ** k`` on an underflowed ``p``), ``1 - exp(x)`` as ``-expm1(x)`` (no cancellation near the cross-entropy
point), and an exponent argument that can grow without bound (``alpha`` above 1, ``beta`` below 1) clamped so
that ``exp`` cannot overflow (see ``_exponent_cap``).

For every loss the single number ``weight`` is its parameter: a penalty weight, a smoothing amount or an
exponent (``parameter`` on each class names which).

Every loss returns the batch mean of its per-example value (Keras' default reduction).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import keras
from keras import ops

from . import objectives

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
    """A penalty weight as a float; NaN, infinite or negative weights are refused (:func:`objectives.check_number`)."""
    return objectives.check_number(weight, name)


class EntropyLabLoss(keras.losses.Loss):
    """Base class: integer labels in, batch mean out; ``head`` says what the outputs are."""

    head: ClassVar[str] = "linear"
    takes_weight: ClassVar[bool] = False
    loss_name: ClassVar[str] = ""
    parameter: ClassVar[str] = "weight"
    #: Whether the formula uses ``weight`` only as a number in tensor arithmetic (no Python branch on its value),
    #: so that a fused group may give each run its own weight as a traced scalar (:meth:`at_weight`).
    weight_traceable: ClassVar[bool] = True

    def __init__(self, weight: float = 0.0, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name or self.loss_name, **kwargs)
        self.weight = check_weight(weight) if self.takes_weight else 0.0

    def at_weight(self, weight: Any) -> EntropyLabLoss:
        """A copy of this loss whose ``weight`` is ``weight``, a tensor (one run's scalar inside ``jax.vmap``).

        The value is not checked here: the fused engine passes the checked weights of its runs' configs."""
        if not self.weight_traceable:
            raise ValueError(f"{self.loss_name} branches on its {self.parameter}'s value; runs with different values "
                             f"cannot share one compiled program")
        clone = object.__new__(type(self))  # not copy.copy: Keras' __reduce__ would serialize the loss
        clone.__dict__.update(self.__dict__)
        clone.weight = weight if self.takes_weight else 0.0
        return clone

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

    loss_name = objectives.CONTROL

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return paper_mse(labels, outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class EntropyRegularized(EntropyLabLoss):
    """Paper §4.2: ``mse(t, o) + w * H_paper(o)``, ``H_paper(o) = -sum_j c_j log c_j``, ``c = clip(o, eps, 1)``."""

    loss_name = objectives.ENTROPY
    takes_weight = True

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return paper_mse(labels, outputs) + self.weight * paper_entropy(outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class KLRegularized(EntropyLabLoss):
    """Paper §4.3: ``mse(t, o) + w * KL_paper(t, o)``, ``KL_paper = -log c_t + eps sum_{j!=t}(log eps - log c_j)``."""

    loss_name = objectives.KL
    takes_weight = True

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return paper_mse(labels, outputs) + self.weight * paper_kl(labels, outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class CrossEntropy(EntropyLabLoss):
    """Softmax cross-entropy on logits: ``-log p_t = logsumexp(z) - z_t``."""

    loss_name = objectives.CROSS_ENTROPY
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


@keras.saving.register_keras_serializable(package="entropylab")
class EntropyMinimization(EntropyLabLoss):
    """``-log p_t + w * H(p)``: a positive ``w`` pushes ``p`` toward peaked (the reverse of the confidence penalty)."""

    loss_name = "entropy_minimization"
    head = "softmax"
    takes_weight = True

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return softmax_cross_entropy(labels, outputs) + self.weight * softmax_entropy(outputs)


@keras.saving.register_keras_serializable(package="entropylab")
class LabelSmoothing(EntropyLabLoss):
    """Cross-entropy against ``(1 - w) onehot(t) + w / V``: ``-(1 - w) log p_t - (w / V) sum_j log p_j``."""

    loss_name = "label_smoothing"
    head = "softmax"
    takes_weight = True
    parameter = "smoothing"

    def __init__(self, weight: float = 0.1, **kwargs: Any) -> None:
        super().__init__(weight=weight, **kwargs)
        if not self.weight < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {self.weight}")

    def per_example(self, labels: Any, outputs: Any) -> Any:
        log_p = ops.log_softmax(outputs, axis=-1)
        log_p_t = _pick(log_p, labels)
        return -(1.0 - self.weight) * log_p_t - self.weight * ops.mean(log_p, axis=-1)


# exp(x) for x <= _MAX_EXPONENT is at most e^64 ~ 6e27, about 1e11 below float32's largest finite value
# (~3.4e38 = e^88.7): room left for the batch sum and the chain rule before anything overflows.
_MAX_EXPONENT = 64.0


def _exponent_cap(divisor: float) -> float:
    """The clamp on an exponent argument ``x`` whose ``expm1(x)`` is then divided by ``divisor``.

    ``min(64, 64 + log|divisor|)``, so that ``exp(x)`` and ``exp(x) / |divisor|`` (the loss and its gradient)
    stay below ``e^64`` in float32 even when ``divisor`` is tiny (an exponent close to the cross-entropy point).
    """
    return _MAX_EXPONENT + min(0.0, math.log(abs(divisor)))


class _ExponentLoss(EntropyLabLoss):
    """A loss whose ``weight`` is an exponent in ``(0, max_exponent]``.

    At exactly the cross-entropy point, where its formula is ``0 / 0``, it is computed as cross-entropy; any
    other exponent, however close, goes through the (cancellation-free) formula.
    """

    head = "softmax"
    takes_weight = True
    parameter = "exponent"
    weight_traceable = False
    ce_point = 1.0
    max_exponent: ClassVar[float] = math.inf

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(weight=weight, **kwargs)
        if not 0.0 < self.weight <= self.max_exponent:
            allowed = "> 0" if math.isinf(self.max_exponent) else f"in (0, {self.max_exponent:g}]"
            raise ValueError(f"{self.loss_name} needs an exponent {allowed}, got {self.weight}")

    def at_ce_point(self) -> bool:
        return self.weight == self.ce_point


@keras.saving.register_keras_serializable(package="entropylab")
class AlphaDivergence(_ExponentLoss):
    """``(1 - p_t^(1-a)) / (a (1 - a))`` with ``a = weight``; cross-entropy at ``a = 1``.

    Computed as ``-expm1(x) / (a (1 - a))`` with ``x = (1 - a) log p_t`` (``1 - exp(x)`` would cancel
    catastrophically in float32 near ``a = 1``). For ``a > 1``, ``x`` grows without bound as ``p_t -> 0``
    (``a = 3``, ``log p_t = -60`` gives ``exp(120) = inf``, and NaN gradients), so ``x`` is clamped at
    ``_exponent_cap(a (1 - a))`` (at most 64): beyond it (``p_t < e^(-64 / (a - 1))``, e.g. ``p_t < e^-32``
    for ``a = 3``) the loss saturates at a finite value and its gradient is 0 instead of inf/NaN.
    """

    loss_name = "alpha_divergence"

    def per_example(self, labels: Any, outputs: Any) -> Any:
        if self.at_ce_point():
            return softmax_cross_entropy(labels, outputs)
        a = self.weight
        scale = a * (1.0 - a)
        log_p_t = -softmax_cross_entropy(labels, outputs)
        x = ops.minimum((1.0 - a) * log_p_t, _exponent_cap(scale))
        return -ops.expm1(x) / scale


@keras.saving.register_keras_serializable(package="entropylab")
class BetaDivergence(_ExponentLoss):
    """``-[p_t^(b-1)/(b-1) - sum_j p_j^b / b - 1/(b (b-1))]`` with ``b = weight``; cross-entropy at ``b = 1``.

    Since ``sum_j p_j = 1`` the bracket equals ``expm1((b-1) L_t) / (b-1) - sum_j p_j expm1((b-1) L_j) / b``
    with ``L = log_softmax(z)``, which has no ``1 / (b (b-1))`` to cancel near ``b = 1``; each
    ``p_j expm1(x_j) = p_j^b - p_j`` uses the ``expm1`` form where ``|x_j| < 1`` and the plain difference of
    ``exp(b L_j)`` and ``exp(L_j)`` elsewhere (both finite, so the gradient is too). For ``b < 1`` the target's
    ``x_t = (b-1) L_t`` grows without bound as ``p_t -> 0`` and is clamped at ``_exponent_cap(b - 1)`` (at most
    64) so ``exp`` cannot overflow float32: beyond it the loss saturates and its gradient is 0, not inf/NaN.
    """

    loss_name = "beta_divergence"

    def per_example(self, labels: Any, outputs: Any) -> Any:
        if self.at_ce_point():
            return softmax_cross_entropy(labels, outputs)
        b = self.weight
        log_p = ops.log_softmax(outputs, axis=-1)
        x = (b - 1.0) * log_p  # <= 0 for b > 1, >= 0 for b < 1
        x_t = ops.minimum(_pick(x, labels), _exponent_cap(b - 1.0))
        target = ops.expm1(x_t) / (b - 1.0)
        p_expm1 = ops.where(ops.abs(x) < 1.0, ops.exp(log_p) * ops.expm1(ops.clip(x, -1.0, 1.0)),
                            ops.exp(b * log_p) - ops.exp(log_p))
        return ops.sum(p_expm1, axis=-1) / b - target


@keras.saving.register_keras_serializable(package="entropylab")
class GammaDivergence(_ExponentLoss):
    """``-log p_t + (1/g) log sum_j p_j^g`` with ``g = weight``; cross-entropy at ``g = 1``.

    Computed as ``-log p_t + logsumexp(g log_softmax(z)) / g``: every exponent ``g log p_j`` is ``<= 0``, so
    nothing can overflow and nothing needs a clamp.
    """

    loss_name = "gamma_divergence"

    def per_example(self, labels: Any, outputs: Any) -> Any:
        g = self.weight
        log_p = ops.log_softmax(outputs, axis=-1)
        return -_pick(log_p, labels) + ops.logsumexp(g * log_p, axis=-1) / g


@keras.saving.register_keras_serializable(package="entropylab")
class GeneralizedCrossEntropy(_ExponentLoss):
    """``(1 - p_t^q) / q`` with ``q = weight`` in (0, 1]; ``q -> 0`` is cross-entropy, ``q = 1`` is MAE.

    Computed as ``-expm1(-q CE) / q`` with ``CE = -log p_t`` (no cancellation for small ``q``); the exponent
    ``-q CE`` is ``<= 0``, so it cannot overflow and needs no clamp.
    """

    loss_name = "generalized_cross_entropy"
    ce_point = 0.0
    max_exponent = 1.0

    def per_example(self, labels: Any, outputs: Any) -> Any:
        q = self.weight
        return -ops.expm1(-q * softmax_cross_entropy(labels, outputs)) / q


LOSSES: dict[str, type[EntropyLabLoss]] = {
    cls.loss_name: cls
    for cls in (PaperMSE, EntropyRegularized, KLRegularized, CrossEntropy, ConfidencePenalty, EntropyMinimization,
                LabelSmoothing, AlphaDivergence, BetaDivergence, GammaDivergence, GeneralizedCrossEntropy)
}
PAPER_LOSSES = objectives.PAPER_OBJECTIVES


class PenaltyFamily(EntropyLabLoss):
    """Several objectives as one formula ``base(t, o) + sum_k c_k term_k(t, o)`` with per-run coefficients ``c``.

    Two families (:data:`FAMILIES`): ``paper``, ``mse + c_H H_paper(o) + c_KL KL_paper(t, o)`` (the control at
    ``c = (0, 0)``, the entropy penalty at ``(w, 0)``, the KL penalty at ``(0, w)``), and ``softmax_entropy``,
    ``-log p_t + c H(p)`` (cross-entropy at 0, the confidence penalty at ``-w``, entropy minimization at ``+w``).
    A term with coefficient 0 adds exactly 0 to the loss and its gradient (every term is finite: the paper's clip
    its outputs), so a run of a family computes its own objective's numbers; a fused group of runs of different
    objectives of one family shares one compiled program (:mod:`entropylab.training.fused`).
    """

    takes_weight = False

    def __init__(self, family: str, coefficients: Any, **kwargs: Any) -> None:
        super().__init__(name=f"{family}_family", **kwargs)
        self.family = family
        self.head = FAMILIES[family][0]
        self.coefficients = coefficients

    def per_example(self, labels: Any, outputs: Any) -> Any:
        c = self.coefficients
        if self.family == "paper":
            return paper_mse(labels, outputs) + c[0] * paper_entropy(outputs) + c[1] * paper_kl(labels, outputs)
        return softmax_cross_entropy(labels, outputs) + c[0] * softmax_entropy(outputs)


#: family -> (head, {objective: its coefficients as a function of its weight w}).
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("linear", {objectives.CONTROL: lambda w: (0.0, 0.0), objectives.ENTROPY: lambda w: (w, 0.0),
                         objectives.KL: lambda w: (0.0, w)}),
    "softmax_entropy": ("softmax", {objectives.CROSS_ENTROPY: lambda w: (0.0,), "confidence_penalty": lambda w: (-w,),
                                    "entropy_minimization": lambda w: (w,)}),
}


def family_of(name: str) -> str | None:
    """The :class:`PenaltyFamily` an objective belongs to (``None``: it is alone in its formula)."""
    return next((family for family, (_, members) in FAMILIES.items() if name in members), None)


def family_coefficients(name: str, weight: float) -> tuple[float, ...]:
    """An objective's coefficients in its family's formula."""
    return FAMILIES[family_of(name)][1][name](weight)


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
        return cls() if weight is None else cls(weight=weight)
    if weight is not None and check_weight(weight) != 0.0:
        raise ValueError(f"loss {name!r} has no penalty weight (got {weight}); weighted losses: "
                         f"{', '.join(n for n, c in LOSSES.items() if c.takes_weight)}")
    return cls()
