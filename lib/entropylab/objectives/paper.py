"""The paper's objectives (§4.1-§4.3, linear head), exactly the numbers its Keras code computes.

Keras' mean squared error plus a weighted entropy or KL term on the outputs clipped to ``[eps, 1]`` (as Keras'
``kl_divergence`` clips both of its arguments); notation in :mod:`.terms`:

* ``mse``: ``(sum_j o_j^2 - 2 o_t + 1) / V``, i.e. Keras' mean squared error against ``onehot(t)``;
* ``entropy_regularized``: ``mse + w * H_paper(o)``, ``H_paper(o) = -sum_j c_j log c_j``;
* ``kl_regularized``: ``mse + w * KL_paper(t, o)``, ``KL_paper = sum_j d_j log(d_j / c_j)`` with
  ``d = clip(onehot(t), eps, 1)``, which equals ``-log c_t + eps * sum_{j != t} (log eps - log c_j)``.

The three are one penalty family (``paper``, :mod:`.families`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import numpy_reference as ref
from .families import PAPER
from .registry import Objective, register
from .terms import paper_entropy, paper_kl, paper_mse

CONTROL = "mse"
ENTROPY = "entropy_regularized"
KL = "kl_regularized"
PAPER_OBJECTIVES = (CONTROL, ENTROPY, KL)


def mse(ops: Any, labels: Any, outputs: Any, value: Any) -> Any:
    """Control objective (paper §4.1): ``mse(t, o) = (sum_j o_j^2 - 2 o_t + 1) / V``."""
    return paper_mse(ops, labels, outputs)


def entropy_regularized(ops: Any, labels: Any, outputs: Any, w: Any) -> Any:
    """Paper §4.2: ``mse(t, o) + w * H_paper(o)``, ``H_paper(o) = -sum_j c_j log c_j``, ``c = clip(o, eps, 1)``."""
    return paper_mse(ops, labels, outputs) + w * paper_entropy(ops, outputs)


def kl_regularized(ops: Any, labels: Any, outputs: Any, w: Any) -> Any:
    """Paper §4.3: ``mse(t, o) + w * KL_paper(t, o)``, ``KL_paper = -log c_t + eps sum_{j!=t}(log eps - log c_j)``."""
    return paper_mse(ops, labels, outputs) + w * paper_kl(ops, labels, outputs)


def _mse_reference(t: np.ndarray, o: np.ndarray, w: float) -> np.ndarray:
    return ref.mse(t, o)


def _entropy_reference(t: np.ndarray, o: np.ndarray, w: float) -> np.ndarray:
    return ref.mse(t, o) + w * ref.paper_entropy(o)


def _kl_reference(t: np.ndarray, o: np.ndarray, w: float) -> np.ndarray:
    return ref.mse(t, o) + w * ref.paper_kl(t, o)


register(Objective(name=CONTROL, head="linear", per_example=mse, reference=_mse_reference, label="control (MSE)",
                   family=PAPER.name, coefficients=lambda w: (0.0, 0.0)))
register(Objective(name=ENTROPY, head="linear", per_example=entropy_regularized, reference=_entropy_reference,
                   parameter="weight", default=1e-7, label="entropy penalty",
                   family=PAPER.name, coefficients=lambda w: (w, 0.0)))
register(Objective(name=KL, head="linear", per_example=kl_regularized, reference=_kl_reference,
                   parameter="weight", default=10.0, label="KL penalty",
                   family=PAPER.name, coefficients=lambda w: (0.0, w)))
