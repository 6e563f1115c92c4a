"""Plain NumPy pieces of the objectives' reference formulas (float64, one-hot and all: the textbook way).

Each objective's ``reference`` (:class:`entropylab.objectives.registry.Objective`) is written from these; the tests
check every ``per_example`` against its reference. Nothing here is used in training.
"""

from __future__ import annotations

import numpy as np

from .terms import EPSILON


def onehot(labels: np.ndarray, width: int) -> np.ndarray:
    """``onehot(t)``: rows of ``width`` zeros with a one at each label."""
    out = np.zeros((len(labels), width))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def clipped(outputs: np.ndarray) -> np.ndarray:
    """``c = clip(o, eps, 1)``."""
    return np.clip(outputs, EPSILON, 1.0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log p_j = z_j - log sum_k exp(z_k)`` (shifted by ``max z``, which cancels)."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """``p = softmax(z)``."""
    return np.exp(log_softmax(logits))


def target_probability(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``p_t``."""
    return softmax(logits)[np.arange(len(labels)), labels]


def cross_entropy(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``-log p_t``."""
    return -log_softmax(logits)[np.arange(len(labels)), labels]


def entropy(logits: np.ndarray) -> np.ndarray:
    """``H(p) = -sum_j p_j log p_j``."""
    p = softmax(logits)
    return -np.sum(p * np.log(p), axis=1)


def mse(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """``mean_j (onehot(t)_j - o_j)^2``."""
    return np.mean((onehot(labels, outputs.shape[1]) - outputs) ** 2, axis=1)


def paper_entropy(outputs: np.ndarray) -> np.ndarray:
    """``H_paper(o) = -sum_j c_j log c_j``."""
    c = clipped(outputs)
    return -np.sum(c * np.log(c), axis=1)


def paper_kl(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """``KL_paper(t, o) = sum_j d_j log(d_j / c_j)`` with ``d = clip(onehot(t), eps, 1)``."""
    d = clipped(onehot(labels, outputs.shape[1]))
    return np.sum(d * np.log(d / clipped(outputs)), axis=1)
