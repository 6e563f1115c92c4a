"""EMO, Earth Mover Distance Optimization (Ren, Chen, Wang, Zhang & Zhang, ICLR 2024): softmax head, no parameter.

The cost of moving probability mass from word ``i`` to word ``j`` is ``C_ij = 1 - cos(e_i, e_j)``, where ``e_j``
is word ``j``'s output embedding in the model being trained: row ``j`` of ``E = K^T``, ``K`` the ``d x V`` kernel
of the model's last Dense layer (:func:`entropylab.model.head_kernel`), read at every step and held constant in
the gradient (no gradient reaches ``K`` through the cost). With ``ê_j = e_j / ||e_j||`` (an L2-normalised row),
``C_ij = 1 - ê_i . ê_j``. The target is one-hot, so the earth mover distance between ``onehot(t)`` and
``p = softmax(z)`` has one transport plan, every word's mass moved to ``t``:

    EMD(t, p) = sum_j p_j C_jt = sum_j p_j (1 - ê_j . ê_t)                                       (0 <= EMD <= 2)

The objective is the authors' "EMO-1, adaptive" (their ``emo1_adaptive``, the variant that trains on the current
head), per example

    D = EMD(t, p) + sg(p_t)
    L = (CE + sg(CE / (D + 1e-10)) * D) / 2,         CE = -log p_t,   sg = stop gradient.

``D`` is their EMO term: its value is ``1 - sum_{j != t} p_j ê_j . ê_t`` (they remove the target's mass from the
value only, ``q - (q * onehot(t)).detach()``), its gradient that of ``EMD``. The detached ratio scales EMO's
gradient to cross-entropy's size; ``L``'s value is ``CE * (1 + D / (D + 1e-10)) / 2``, i.e. cross-entropy to
float32 rounding whenever ``D > 2e-3``, while its gradient is ``(grad CE + (CE / D) grad EMD) / 2``.

Left out of the authors' code: padding masks (there are none here) and their ``1e-15`` added to the one-hot before
renormalising it (it moves ``ê_t`` by at most ``V * 1e-15``). Their other variants are not registered: mode 2
(``L = sg(D / (CE + 1e-10)) CE + D``), a ratio capped at 3, and a cost from a fixed copy of a *pre-trained* head
(their GPT-2 language-modelling runs; this project's models have no pre-trained head, and a fixed copy of a random
initial one would make the cost random).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import numpy_reference as ref
from .registry import Objective, register
from .terms import softmax_cross_entropy

#: The authors' guard in the detached ratio ``CE / (D + RATIO_EPSILON)``.
RATIO_EPSILON = 1e-10


def unit_embeddings(ops: Any, kernel: Any) -> Any:
    """``ê`` as the columns of ``K`` (``d x V``) divided by their L2 norms, held constant in the gradient."""
    kernel = ops.stop_gradient(kernel)
    return kernel / ops.sqrt(ops.sum(ops.square(kernel), axis=0, keepdims=True))


def transport_cost(ops: Any, labels: Any, kernel: Any) -> Any:
    """Each example's row of costs to its target, ``C_jt = 1 - ê_j . ê_t`` (``B x V``)."""
    unit = unit_embeddings(ops, kernel)
    target = ops.transpose(ops.take(unit, labels, axis=1))  # (B, d): ê_t per example
    return 1.0 - ops.matmul(target, unit)


def earth_mover_distance(ops: Any, labels: Any, logits: Any, kernel: Any) -> Any:
    """``EMD(t, p) = sum_j p_j C_jt``, ``p = softmax(z)``: the cost of moving all of ``p``'s mass onto ``t``."""
    return ops.sum(ops.softmax(logits, axis=-1) * transport_cost(ops, labels, kernel), axis=-1)


def emo(ops: Any, labels: Any, logits: Any, value: Any, kernel: Any) -> Any:
    """EMO-1 (adaptive): ``(CE + sg(CE / (D + 1e-10)) D) / 2`` with ``D = EMD(t, p) + sg(p_t)``,
    ``EMD = sum_j p_j (1 - ê_j . ê_t)``, ``ê`` the L2-normalised columns of the head kernel (module docstring)."""
    cross_entropy = softmax_cross_entropy(ops, labels, logits)
    p_t = ops.exp(-cross_entropy)
    distance = earth_mover_distance(ops, labels, logits, kernel) + ops.stop_gradient(p_t)
    ratio = ops.stop_gradient(cross_entropy / (distance + RATIO_EPSILON))
    return 0.5 * (cross_entropy + ratio * distance)


def earth_mover_distance_reference(t: np.ndarray, z: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``EMD(t, p) = sum_j p_j C_jt`` from the whole ``V x V`` cost matrix ``C = 1 - Ê Ê^T`` (float64)."""
    unit = (kernel / np.linalg.norm(kernel, axis=0, keepdims=True)).T  # Ê, V x d
    cost = 1.0 - unit @ unit.T
    return np.einsum("bj,bj->b", ref.softmax(z), cost[:, t].T)


def _emo_reference(t: np.ndarray, z: np.ndarray, w: float, kernel: np.ndarray) -> np.ndarray:
    """The authors' form: ``D = 1 - sum_{j != t} p_j ê_j . ê_t``, then ``(CE + CE / (D + 1e-10) D) / 2``."""
    unit = (kernel / np.linalg.norm(kernel, axis=0, keepdims=True)).T  # Ê, V x d
    cosine = (unit @ unit.T)[:, t].T  # B x V: ê_j . ê_t
    others = ref.softmax(z)
    others[np.arange(len(t)), t] = 0.0
    distance = 1.0 - np.sum(others * cosine, axis=1)
    cross_entropy = ref.cross_entropy(t, z)
    return 0.5 * (cross_entropy + cross_entropy / (distance + RATIO_EPSILON) * distance)


register(Objective(name="emo", head="softmax", per_example=emo, reference=_emo_reference, needs_kernel=True,
                   label="EMO"))
