"""Power divergences on the target token and the generalized cross-entropy (softmax head, exponent ``w``).

Each equals cross-entropy at its cross-entropy point (notation in :mod:`.terms`):

* ``alpha_divergence`` (Labeau & Cohen 2019): ``(1 - p_t^(1-a)) / (a (1 - a))``, cross-entropy at ``a = 1``;
* ``beta_divergence``: ``-[p_t^(b-1) / (b-1) - sum_j p_j^b / b - 1 / (b (b-1))]``, cross-entropy at ``b = 1``;
* ``gamma_divergence``: ``-log p_t + (1/g) log sum_j p_j^g``, cross-entropy at ``g = 1``;
* ``generalized_cross_entropy`` (Zhang & Sabuncu 2018): ``(1 - p_t^q) / q`` with ``q`` in ``(0, 1]``: ``q -> 0``
  is cross-entropy, 1 is MAE.

They are evaluated in float32-safe forms: powers as ``exp(k * log_softmax(z))`` (never ``p ** k`` on an
underflowed ``p``), ``1 - exp(x)`` as ``-expm1(x)`` (no cancellation near the cross-entropy point), and an exponent
argument that can grow without bound (``alpha`` above 1, ``beta`` below 1) clamped so that ``exp`` cannot overflow
(:func:`exponent_cap`). At exactly the cross-entropy point, where the alpha and beta formulas are ``0 / 0``, they
are computed as cross-entropy; any other exponent, however close, goes through the formula. That branch on the
exponent's value is why these objectives are not fusable (runs share a program only with runs of the same exponent).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import numpy_reference as ref
from .registry import Objective, register
from .terms import pick, softmax_cross_entropy

# exp(x) for x <= MAX_EXPONENT is at most e^64 ~ 6e27, about 1e11 below float32's largest finite value
# (~3.4e38 = e^88.7): room left for the batch sum and the chain rule before anything overflows.
MAX_EXPONENT = 64.0


def exponent_cap(divisor: float) -> float:
    """The clamp on an exponent argument ``x`` whose ``expm1(x)`` is then divided by ``divisor``.

    ``min(64, 64 + log|divisor|)``, so that ``exp(x)`` and ``exp(x) / |divisor|`` (the loss and its gradient)
    stay below ``e^64`` in float32 even when ``divisor`` is tiny (an exponent close to the cross-entropy point).
    """
    return MAX_EXPONENT + min(0.0, math.log(abs(divisor)))


def alpha_divergence(ops: Any, labels: Any, logits: Any, a: float) -> Any:
    """``(1 - p_t^(1-a)) / (a (1 - a))``; cross-entropy at ``a = 1``.

    Computed as ``-expm1(x) / (a (1 - a))`` with ``x = (1 - a) log p_t`` (``1 - exp(x)`` would cancel
    catastrophically in float32 near ``a = 1``). For ``a > 1``, ``x`` grows without bound as ``p_t -> 0``
    (``a = 3``, ``log p_t = -60`` gives ``exp(120) = inf``, and NaN gradients), so ``x`` is clamped at
    ``exponent_cap(a (1 - a))`` (at most 64): beyond it (``p_t < e^(-64 / (a - 1))``, e.g. ``p_t < e^-32``
    for ``a = 3``) the loss saturates at a finite value and its gradient is 0 instead of inf/NaN.
    """
    if a == 1.0:
        return softmax_cross_entropy(ops, labels, logits)
    scale = a * (1.0 - a)
    log_p_t = -softmax_cross_entropy(ops, labels, logits)
    x = ops.minimum((1.0 - a) * log_p_t, exponent_cap(scale))
    return -ops.expm1(x) / scale


def beta_divergence(ops: Any, labels: Any, logits: Any, b: float) -> Any:
    """``-[p_t^(b-1)/(b-1) - sum_j p_j^b / b - 1/(b (b-1))]``; cross-entropy at ``b = 1``.

    Since ``sum_j p_j = 1`` the bracket equals ``expm1((b-1) L_t) / (b-1) - sum_j p_j expm1((b-1) L_j) / b``
    with ``L = log_softmax(z)``, which has no ``1 / (b (b-1))`` to cancel near ``b = 1``; each
    ``p_j expm1(x_j) = p_j^b - p_j`` uses the ``expm1`` form where ``|x_j| < 1`` and the plain difference of
    ``exp(b L_j)`` and ``exp(L_j)`` elsewhere (both finite, so the gradient is too). For ``b < 1`` the target's
    ``x_t = (b-1) L_t`` grows without bound as ``p_t -> 0`` and is clamped at ``exponent_cap(b - 1)`` (at most
    64) so ``exp`` cannot overflow float32: beyond it the loss saturates and its gradient is 0, not inf/NaN.
    """
    if b == 1.0:
        return softmax_cross_entropy(ops, labels, logits)
    log_p = ops.log_softmax(logits, axis=-1)
    x = (b - 1.0) * log_p  # <= 0 for b > 1, >= 0 for b < 1
    x_t = ops.minimum(pick(ops, x, labels), exponent_cap(b - 1.0))
    target = ops.expm1(x_t) / (b - 1.0)
    p_expm1 = ops.where(ops.abs(x) < 1.0, ops.exp(log_p) * ops.expm1(ops.clip(x, -1.0, 1.0)),
                        ops.exp(b * log_p) - ops.exp(log_p))
    return ops.sum(p_expm1, axis=-1) / b - target


def gamma_divergence(ops: Any, labels: Any, logits: Any, g: float) -> Any:
    """``-log p_t + (1/g) log sum_j p_j^g``; cross-entropy at ``g = 1``.

    Computed as ``-log p_t + logsumexp(g log_softmax(z)) / g``: every exponent ``g log p_j`` is ``<= 0``, so
    nothing can overflow and nothing needs a clamp.
    """
    log_p = ops.log_softmax(logits, axis=-1)
    return -pick(ops, log_p, labels) + ops.logsumexp(g * log_p, axis=-1) / g


def generalized_cross_entropy(ops: Any, labels: Any, logits: Any, q: float) -> Any:
    """``(1 - p_t^q) / q`` with ``q`` in (0, 1]; ``q -> 0`` is cross-entropy, ``q = 1`` is MAE.

    Computed as ``-expm1(-q CE) / q`` with ``CE = -log p_t`` (no cancellation for small ``q``); the exponent
    ``-q CE`` is ``<= 0``, so it cannot overflow and needs no clamp.
    """
    return -ops.expm1(-q * softmax_cross_entropy(ops, labels, logits)) / q


def _alpha_reference(t: np.ndarray, z: np.ndarray, a: float) -> np.ndarray:
    if a == 1:  # the formula's 0/0 limit is cross-entropy
        return ref.cross_entropy(t, z)
    return (1 - ref.target_probability(t, z) ** (1 - a)) / (a * (1 - a))


def _beta_reference(t: np.ndarray, z: np.ndarray, b: float) -> np.ndarray:
    if b == 1:  # the formula's 0/0 limit is cross-entropy
        return ref.cross_entropy(t, z)
    p = ref.softmax(z)
    return -(ref.target_probability(t, z) ** (b - 1) / (b - 1) - np.sum(p ** b, axis=1) / b - 1 / (b * (b - 1)))


def _gamma_reference(t: np.ndarray, z: np.ndarray, g: float) -> np.ndarray:
    return -np.log(ref.target_probability(t, z)) + np.log(np.sum(ref.softmax(z) ** g, axis=1)) / g


def _gce_reference(t: np.ndarray, z: np.ndarray, q: float) -> np.ndarray:
    return (1 - ref.target_probability(t, z) ** q) / q


_EXPONENT = {"head": "softmax", "parameter": "exponent", "default": 1.0, "low": 0.0, "low_inclusive": False}
register(Objective(name="alpha_divergence", per_example=alpha_divergence, reference=_alpha_reference, **_EXPONENT,
                   label="alpha divergence"))
register(Objective(name="beta_divergence", per_example=beta_divergence, reference=_beta_reference, **_EXPONENT,
                   label="beta divergence"))
register(Objective(name="gamma_divergence", per_example=gamma_divergence, reference=_gamma_reference, **_EXPONENT,
                   label="gamma divergence"))
register(Objective(name="generalized_cross_entropy", head="softmax", per_example=generalized_cross_entropy,
                   reference=_gce_reference, parameter="exponent", default=0.5, low=0.0, high=1.0,
                   high_inclusive=True, low_inclusive=False, label="generalized cross-entropy"))
