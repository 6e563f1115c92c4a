"""The penalty families: objectives that are one formula ``base(t, o) + sum_k c_k term_k(t, o)`` with per-run ``c``.

* ``paper`` (linear head): ``mse + c_H H_paper(o) + c_KL KL_paper(t, o)``; the control at ``c = (0, 0)``, the
  entropy penalty at ``(w, 0)``, the KL penalty at ``(0, w)``;
* ``softmax_entropy`` (softmax head): ``-log p_t + c H(p)``; cross-entropy at 0, the confidence penalty at ``-w``,
  entropy minimisation at ``+w``.

A term with coefficient 0 adds exactly 0 to the loss and its gradient (every term is finite: the paper's clip its
outputs), so a run of a family computes its own objective's numbers bit for bit, and a fused group of runs of
different objectives of one family shares one compiled program (:mod:`entropylab.training.fused`). The members
name their family and coefficients where they are registered (:mod:`.paper`, :mod:`.softmax`).
"""

from __future__ import annotations

from typing import Any

from .registry import Family, register_family
from .terms import paper_entropy, paper_kl, paper_mse, softmax_cross_entropy, softmax_entropy


def paper_family(ops: Any, labels: Any, outputs: Any, c: Any) -> Any:
    """Per-example ``mse(t, o) + c_0 H_paper(o) + c_1 KL_paper(t, o)`` (:mod:`.terms`)."""
    return paper_mse(ops, labels, outputs) + c[0] * paper_entropy(ops, outputs) + c[1] * paper_kl(ops, labels, outputs)


def softmax_entropy_family(ops: Any, labels: Any, logits: Any, c: Any) -> Any:
    """Per-example ``-log p_t + c_0 H(p)`` with ``p = softmax(z)``."""
    return softmax_cross_entropy(ops, labels, logits) + c[0] * softmax_entropy(ops, logits)


PAPER = register_family(Family(name="paper", head="linear", formula=paper_family))
SOFTMAX_ENTROPY = register_family(Family(name="softmax_entropy", head="softmax", formula=softmax_entropy_family))
