"""Cross-entropy and its entropy penalties and smoothing (softmax head, beyond the paper); notation in :mod:`.terms`.

* ``cross_entropy``: ``-log p_t = logsumexp(z) - z_t`` (Bansal's baseline, the paper's §6 suggestion);
* ``confidence_penalty``: ``-log p_t - w * H(p)`` (Pereyra et al. 2017: rewards flatter predictions);
* ``entropy_minimization``: ``-log p_t + w * H(p)`` (the opposite sign: rewards peaked predictions);
* ``label_smoothing``: ``-(1 - w) log p_t - (w / V) sum_j log p_j`` (smoothing ``w`` toward uniform).

The first three are one penalty family (``softmax_entropy``, :mod:`.families`); label smoothing is a family of its
own (its formula uses ``w`` only in tensor arithmetic, so runs of different smoothings may share a program).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import numpy_reference as ref
from .families import SOFTMAX_ENTROPY
from .registry import Family, Objective, register, register_family
from .terms import pick, softmax_cross_entropy, softmax_entropy

CROSS_ENTROPY = "cross_entropy"


def cross_entropy(ops: Any, labels: Any, logits: Any, value: Any) -> Any:
    """Softmax cross-entropy on logits: ``-log p_t = logsumexp(z) - z_t``."""
    return softmax_cross_entropy(ops, labels, logits)


def confidence_penalty(ops: Any, labels: Any, logits: Any, w: Any) -> Any:
    """Pereyra et al. (2017): ``-log p_t - w * H(p)``; a larger ``w`` pushes ``p`` toward flatter."""
    return softmax_cross_entropy(ops, labels, logits) - w * softmax_entropy(ops, logits)


def entropy_minimization(ops: Any, labels: Any, logits: Any, w: Any) -> Any:
    """``-log p_t + w * H(p)``: a positive ``w`` pushes ``p`` toward peaked (the reverse of the confidence penalty)."""
    return softmax_cross_entropy(ops, labels, logits) + w * softmax_entropy(ops, logits)


def label_smoothing(ops: Any, labels: Any, logits: Any, w: Any) -> Any:
    """Cross-entropy against ``(1 - w) onehot(t) + w / V``: ``-(1 - w) log p_t - (w / V) sum_j log p_j``."""
    log_p = ops.log_softmax(logits, axis=-1)
    log_p_t = pick(ops, log_p, labels)
    return -(1.0 - w) * log_p_t - w * ops.mean(log_p, axis=-1)


def label_smoothing_family(ops: Any, labels: Any, logits: Any, c: Any) -> Any:
    """Per-example label smoothing at the smoothing ``c_0``: ``-(1 - c_0) log p_t - (c_0 / V) sum_j log p_j``."""
    return label_smoothing(ops, labels, logits, c[0])


def _ce_reference(t: np.ndarray, z: np.ndarray, w: float) -> np.ndarray:
    return ref.cross_entropy(t, z)


def _confidence_reference(t: np.ndarray, z: np.ndarray, w: float) -> np.ndarray:
    return ref.cross_entropy(t, z) - w * ref.entropy(z)


def _minimization_reference(t: np.ndarray, z: np.ndarray, w: float) -> np.ndarray:
    return ref.cross_entropy(t, z) + w * ref.entropy(z)


def _smoothing_reference(t: np.ndarray, z: np.ndarray, w: float) -> np.ndarray:
    target = (1 - w) * ref.onehot(t, z.shape[1]) + w / z.shape[1]
    return -np.sum(target * np.log(ref.softmax(z)), axis=1)


LABEL_SMOOTHING = register_family(Family(name="label_smoothing", head="softmax", formula=label_smoothing_family))

register(Objective(name=CROSS_ENTROPY, head="softmax", per_example=cross_entropy, reference=_ce_reference,
                   label="cross-entropy", family=SOFTMAX_ENTROPY.name, coefficients=lambda w: (0.0,)))
register(Objective(name="confidence_penalty", head="softmax", per_example=confidence_penalty,
                   reference=_confidence_reference, parameter="weight", default=0.1, label="confidence penalty",
                   family=SOFTMAX_ENTROPY.name, coefficients=lambda w: (-w,)))
register(Objective(name="entropy_minimization", head="softmax", per_example=entropy_minimization,
                   reference=_minimization_reference, parameter="weight", default=0.1, label="entropy minimisation",
                   family=SOFTMAX_ENTROPY.name, coefficients=lambda w: (w,)))
register(Objective(name="label_smoothing", head="softmax", per_example=label_smoothing, reference=_smoothing_reference,
                   parameter="smoothing", default=0.1, low=0.0, high=1.0, label="label smoothing",
                   family=LABEL_SMOOTHING.name, coefficients=lambda w: (w,)))
