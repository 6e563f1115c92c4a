"""Seeded training batches in plain NumPy: the same batches on every backend, for one run or a stacked group.

Epoch ``e`` (0-based) of a run with seed ``s`` visits the training examples in the order
``numpy.random.default_rng([s, e]).permutation(N)``, cut into ``ceil(N / B)`` batches of ``B`` and one smaller last
batch, as ``fit(x, y, shuffle=True)`` does. The order depends only on ``(s, e, N)``, never on the backend, on how
many runs train together or on what ran before, so a run trained alone (:class:`ShuffledBatches`) and the same run
inside a fused group (:func:`stacked_orders`) see the same examples at every step. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """``ceil(N / B)``: every example once per epoch, the last batch smaller when ``B`` does not divide ``N``."""
    if n_examples < 1 or batch_size < 1:
        raise ValueError(f"need at least one example and a batch size >= 1, got N={n_examples}, B={batch_size}")
    return math.ceil(n_examples / batch_size)


def epoch_order(n_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example indices of epoch ``epoch`` (0-based) of a run with seed ``seed``: a permutation of ``range(N)``."""
    return np.random.default_rng([seed, epoch]).permutation(n_examples)


def batch_bounds(n_examples: int, batch_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of each batch of an epoch."""
    return [(start, min(start + batch_size, n_examples))
            for start in range(0, steps_per_epoch(n_examples, batch_size) * batch_size, batch_size)]


class ShuffledBatches:
    """Batches ``(x[order[a:b]], y[order[a:b]])`` of one run, epoch after epoch (an endless iterator).

    ``len()`` is the steps per epoch; pass it as ``steps_per_epoch`` to ``fit``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length ({len(x)} and {len(y)})")
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size, self.seed = batch_size, seed
        self.bounds = batch_bounds(len(y), batch_size)

    def __len__(self) -> int:
        return len(self.bounds)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = 0
        while True:
            order = epoch_order(len(self.y), self.seed, epoch)
            for start, stop in self.bounds:
                rows = order[start:stop]
                yield self.x[rows], self.y[rows]
            epoch += 1


def stacked_orders(n_examples: int, seeds: list[int], epoch: int) -> np.ndarray:
    """One epoch's orders for a group of runs, shape ``(R, N)``: row ``r`` is ``epoch_order(N, seeds[r], epoch)``."""
    return np.stack([epoch_order(n_examples, seed, epoch) for seed in seeds])
