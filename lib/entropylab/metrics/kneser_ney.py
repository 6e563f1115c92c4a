"""Interpolated modified Kneser-Ney count models (Chen & Goodman 1998) over the project's prefix sequences.

**Events.** A training row is a context window ``x`` (a headline's prefix, left-padded with 0 to the model's
window) and its next word ``y``. The order-``n`` model reads the last ``n - 1`` tokens of the window,
``u = x[-(n-1):]``; a padding token there stands for "before the headline" (like ``<s>``). The model predicts the
words ``1 .. V-1``; padding (index 0) is never predicted and has probability 0.

**Counts** at level ``k = 1 .. n`` (contexts of ``k - 1`` tokens):

* top level ``k = n``: raw counts, ``c_n(u, w)`` = the number of training rows with context ``u`` and next word
  ``w``;
* lower levels ``k < n``: continuation counts ``c_k(u, w) = N1+(. u w) = |{v : c(v u, w) > 0}|``, the number of
  distinct tokens seen right before ``u w`` (Kneser & Ney 1995), except that a context starting with padding keeps
  its raw count: it can only be extended by more padding, so its continuation count would always be 1 (KenLM's
  rule for n-grams that start with ``<s>``; ``padding_keeps_raw_counts=False`` turns it off, as NLTK does).

**Discounts** per level from its count-of-counts ``n_r = |{(u, w) : c_k(u, w) = r}|``, ``r = 1 .. 4``::

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2 Y n2 / n1,  D2 = 2 - 3 Y n3 / n2,  D3+ = 3 - 4 Y n4 / n3,
    D(0) = 0, D(1) = D1, D(2) = D2, D(c >= 3) = D3+.

A level whose counts cannot give them (some ``n_r = 0``, or a ``D_r`` outside ``[0, r]``) falls back to KenLM's
defaults ``(0.5, 1.0, 1.5)`` and is listed in :attr:`KneserNeyModel.fallback_levels`. Fixed discounts may be given
instead (one for all counts, or ``(D1, D2, D3+)``, for every level or per level).

**Probabilities**, from the uniform distribution up::

    p_0(w) = 1 / (V - 1)                                              w = 1 .. V-1
    p_k(w | u) = max(c_k(u, w) - D(c_k(u, w)), 0) / S_k(u) + g_k(u) p_{k-1}(w | u')
    S_k(u) = sum_w c_k(u, w),   g_k(u) = (D1 N1(u .) + D2 N2(u .) + D3+ N3+(u .)) / S_k(u)

with ``u'`` the context without its first token and ``N_r(u .) = |{w : c_k(u, w) = r}|`` (``N3+``: ``>= 3``). A
context never seen at level ``k`` (``S_k(u) = 0``) passes ``p_{k-1}(w | u')`` through (``g = 1``). As ``D(c) <= c``,
``sum_w max(c - D(c), 0) + g_k(u) S_k(u) = S_k(u)``: each level sums to 1 over the words when the level below
does, so ``p_n(. | u)`` is a distribution over the ``V - 1`` words for every context, seen or not, and with a
positive unigram discount every word has probability at least ``g_1 / (V - 1) > 0``.

:func:`choose_order` picks the order of lowest cross-entropy on a held-out side; :func:`tuning_carve` carves such
a side out of a training split (never the reported validation split); :func:`best_order_model` does both and
refits the chosen order on the whole training split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: KenLM's fallback discounts ``(D1, D2, D3+)`` for a level whose count-of-counts cannot give them.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
#: The orders :func:`choose_order` tries by default.
ORDERS = (2, 3, 4, 5)

Discounts = float | Sequence[float | Sequence[float] | None] | None


def modified_discounts(counts: np.ndarray) -> tuple[float, float, float] | None:
    """Chen & Goodman's ``(D1, D2, D3+)`` from the counts of one level (module docstring); ``None`` when the
    count-of-counts ``n1 .. n4`` cannot give them (an ``n_r`` is 0 or a ``D_r`` falls outside ``[0, r]``)."""
    counts = np.asarray(counts)
    n1, n2, n3, n4 = (int(np.sum(counts == r)) for r in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return None
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0.0 <= value <= r for r, value in enumerate(d, start=1)):
        return None
    return d


def _fixed_discounts(discounts: Discounts, order: int) -> list[tuple[float, float, float] | None]:
    """Per level ``1 .. order``: the given ``(D1, D2, D3+)``, or ``None`` to estimate it from the counts."""
    if discounts is None:
        return [None] * order

    def triple(value: float | Sequence[float] | None, where: str) -> tuple[float, float, float] | None:
        if value is None:
            return None
        d = (float(value),) * 3 if np.ndim(value) == 0 else tuple(float(v) for v in value)  # type: ignore
        if len(d) != 3 or not all(0.0 <= v <= r for r, v in enumerate(d, start=1)):
            raise ValueError(f"Kneser-Ney discounts{where} must be one number in [0, 1] or (D1, D2, D3+) with "
                             f"0 <= D_r <= r, got {value!r}")
        return d  # type: ignore[return-value]

    if np.ndim(discounts) == 0:
        return [triple(discounts, "")] * order  # type: ignore[arg-type]
    if len(discounts) != order:  # type: ignore[arg-type]
        raise ValueError(f"Kneser-Ney discounts per level need {order} entries (levels 1 to {order}), got "
                         f"{len(discounts)}; or give one number for every level")  # type: ignore[arg-type]
    return [triple(v, f" of level {k}") for k, v in enumerate(discounts, start=1)]  # type: ignore[union-attr]


class KneserNeyModel:
    """An interpolated modified Kneser-Ney model of ``order`` (module docstring) fitted on a training split.

    Like :class:`entropylab.metrics.references.CountModel`: :meth:`probability_of` scores given next words;
    called like a Keras model on a batch of context windows it returns each row's log-probabilities over the
    vocabulary (padding ``-inf``), to be decoded with ``head="softmax"``.

    ``discounts``: ``None`` estimates ``(D1, D2, D3+)`` per level from the counts; a number fixes one discount for
    all counts of every level; ``order`` entries (levels 1 to ``order``) give each level a number, a triple
    ``(D1, D2, D3+)`` or ``None`` (estimated). ``padding_keeps_raw_counts``: see the module docstring.
    """

    def __init__(self, y_train: np.ndarray, x_train: np.ndarray, vocab_size: int, order: int = 3,
                 discounts: Discounts = None, padding_keeps_raw_counts: bool = True) -> None:
        x, y = np.asarray(x_train, dtype=np.int64), np.asarray(y_train, dtype=np.int64)
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"the Kneser-Ney order must be an integer >= 1, got {order!r}")
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise ValueError(f"the Kneser-Ney model needs training windows (N x width) and N next words, got "
                             f"{x.shape} and {y.shape}")
        if order - 1 > x.shape[1]:
            raise ValueError(f"a Kneser-Ney model of order {order} needs windows of at least {order - 1} tokens, "
                             f"got {x.shape[1]}")
        if vocab_size < 2 or y.min() < 1 or y.max() >= vocab_size or x.min() < 0 or x.max() >= vocab_size:
            raise ValueError(f"word ids must lie in 1 .. {vocab_size - 1} (0: padding, never a next word)")
        self.order, self.vocab_size = int(order), int(vocab_size)
        self.padding_keeps_raw_counts = padding_keeps_raw_counts
        fixed = _fixed_discounts(discounts, self.order)
        V = self.vocab_size

        # Context ids per level: level 1 has the empty context (id 0); the level-k context of a row is keyed by its
        # first token and the id of its suffix at level k - 1 (sorted unique keys: id = position among them).
        row_ids = [np.zeros(len(y), dtype=np.int64)]
        self._context_keys: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self._n_contexts = [1]
        self._first_token: list[np.ndarray] = [np.full(1, -1, dtype=np.int64)]
        self._suffix: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        for k in range(2, self.order + 1):
            key = x[:, -(k - 1)] * self._n_contexts[-1] + row_ids[-1]
            keys, inverse = np.unique(key, return_inverse=True)
            row_ids.append(inverse.reshape(-1).astype(np.int64))
            self._first_token.append(keys // self._n_contexts[-1])
            self._suffix.append(keys % self._n_contexts[-1])
            self._context_keys.append(keys)
            self._n_contexts.append(len(keys))

        # Pair counts per level (sorted keys context * V + word), the discounts and the per-context sums.
        self._pair_keys: list[np.ndarray] = []
        self._alpha: list[np.ndarray] = []  # max(c - D(c), 0) / S_k(u) per pair
        self._gamma: list[np.ndarray] = []  # g_k(u) per context
        self._pair_start: list[np.ndarray] = []  # the pairs of context i are [start[i], start[i + 1])
        self.counts: list[np.ndarray] = []
        self.discounts = np.zeros((self.order, 3))
        self.fallback_levels: list[int] = []
        higher: np.ndarray | None = None
        for k in range(self.order, 0, -1):
            raw_keys, raw_counts = np.unique(row_ids[k - 1] * V + y, return_counts=True)
            counts = raw_counts.astype(np.float64)
            if higher is not None:  # a lower level: distinct left extensions of each pair
                ctx, word = higher // V, higher % V
                cont_keys, cont_counts = np.unique(self._suffix[k][ctx] * V + word, return_counts=True)
                assert np.array_equal(cont_keys, raw_keys)
                padded = self._first_token[k - 1][raw_keys // V] == 0
                keep_raw = padded if padding_keeps_raw_counts else np.zeros_like(padded)
                counts = np.where(keep_raw, raw_counts, cont_counts).astype(np.float64)
            higher = raw_keys
            d = fixed[k - 1] or modified_discounts(counts)
            if d is None:
                d = FALLBACK_DISCOUNTS
                self.fallback_levels.append(k)
            self.discounts[k - 1] = d
            table = np.array([0.0, *d])
            discount = table[np.minimum(counts, 3).astype(np.int64)]
            ctx = raw_keys // V
            totals = np.bincount(ctx, weights=counts, minlength=self._n_contexts[k - 1])
            held = np.bincount(ctx, weights=discount, minlength=self._n_contexts[k - 1])
            self._pair_keys.insert(0, raw_keys)
            self.counts.insert(0, counts)
            self._alpha.insert(0, np.maximum(counts - discount, 0.0) / totals[ctx])
            self._gamma.insert(0, held / totals)
            self._pair_start.insert(0, np.searchsorted(raw_keys, np.arange(self._n_contexts[k - 1] + 1) * V))
        self.fallback_levels.sort()
        # The unigram level (p_1) over the whole vocabulary, shared by every context.
        self._unigram = np.full(V, self._gamma[0][0] / (V - 1))
        self._unigram[self._pair_keys[0] % V] += self._alpha[0]
        self._unigram[0] = 0.0

    def _context_ids(self, window: np.ndarray) -> list[np.ndarray]:
        """Per level ``1 .. order``, each row's context id (``-1``: a context not seen in training)."""
        window = np.asarray(window, dtype=np.int64)
        if window.ndim != 2 or window.shape[1] < self.order - 1:
            raise ValueError(f"a Kneser-Ney model of order {self.order} needs windows (B x width) of at least "
                             f"{self.order - 1} tokens, got shape {window.shape}")
        ids = [np.zeros(len(window), dtype=np.int64)]
        for k in range(2, self.order + 1):
            prev, keys = ids[-1], self._context_keys[k - 1]
            key = window[:, -(k - 1)] * self._n_contexts[k - 2] + prev
            position = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            found = (prev >= 0) & (keys[position] == key)
            ids.append(np.where(found, position, -1))
        return ids

    def probability_of(self, window: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``p_n(y_i | context of row i)`` for each row of ``window`` and its next word ``y_i``."""
        y = np.asarray(y, dtype=np.int64)
        ids = self._context_ids(window)
        p = np.where(y > 0, 1.0 / (self.vocab_size - 1), 0.0)
        for k in range(1, self.order + 1):
            ctx, keys = ids[k - 1], self._pair_keys[k - 1]
            seen = ctx >= 0
            pair = np.where(seen, ctx, 0) * self.vocab_size + y
            position = np.minimum(np.searchsorted(keys, pair), len(keys) - 1)
            alpha = np.where(seen & (keys[position] == pair), self._alpha[k - 1][position], 0.0)
            gamma = np.where(seen, self._gamma[k - 1][np.where(seen, ctx, 0)], 1.0)
            p = alpha + gamma * p
        return np.where(y > 0, p, 0.0)

    def probabilities(self, window: np.ndarray) -> np.ndarray:
        """``p_n(. | context of each row)`` over the vocabulary (``B x V``, padding 0)."""
        ids = self._context_ids(window)
        p = np.tile(self._unigram, (len(ids[0]), 1))
        V = self.vocab_size
        for k in range(2, self.order + 1):
            rows = np.flatnonzero(ids[k - 1] >= 0)
            ctx = ids[k - 1][rows]
            p[rows] *= self._gamma[k - 1][ctx][:, None]
            start, stop = self._pair_start[k - 1][ctx], self._pair_start[k - 1][ctx + 1]
            lengths = stop - start
            offsets = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            p[np.repeat(rows, lengths), self._pair_keys[k - 1][offsets] % V] += self._alpha[k - 1][offsets]
        return p

    def cross_entropy(self, window: np.ndarray, y: np.ndarray) -> float:
        """``-(1/N) sum_i ln p_n(y_i | context of row i)`` in nats."""
        return float(-np.mean(np.log(self.probability_of(window, y))))

    def __call__(self, window: np.ndarray, training: bool = False) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.probabilities(window))


def choose_order(y_train: np.ndarray, x_train: np.ndarray, y_heldout: np.ndarray, x_heldout: np.ndarray,
                 vocab_size: int, orders: Sequence[int] = ORDERS) -> tuple[int, dict[int, float]]:
    """The Kneser-Ney order of lowest held-out cross-entropy and every order's cross-entropy (nats).

    Each order in ``orders`` is fitted on ``(x_train, y_train)`` and scored on ``(x_heldout, y_heldout)``:
    ``H_k = -(1/N) sum_i ln p_k(y_i | x_i)``; the lowest ``H_k`` wins (the smaller order on a tie). The held-out
    side must be one that no reported number comes from: the dev side where a split has one; until the project's
    splits have one, a carve of the training split (:func:`tuning_carve`, as the objectives study's tuning runs
    carve theirs), never the reported validation split.
    """
    if not orders:
        raise ValueError("choose_order needs at least one order to try")
    scores = {int(k): KneserNeyModel(y_train, x_train, vocab_size, int(k)).cross_entropy(x_heldout, y_heldout)
              for k in orders}
    best = min(scores, key=lambda k: (scores[k], k))
    return best, scores


def best_order_model(y_train: np.ndarray, x_train: np.ndarray, vocab_size: int, *, carve: str = "headline",
                     heldout: tuple[np.ndarray, np.ndarray] | None = None, orders: Sequence[int] = ORDERS
                     ) -> tuple[KneserNeyModel, dict[int, float]]:
    """The Kneser-Ney model of the order chosen by :func:`choose_order`, refitted on the whole training split, and
    every order's held-out cross-entropy. The held-out side is ``heldout = (y, x)`` when given (a dev side; the
    orders are then fitted on the whole training split), else a carve of the training split
    (:func:`tuning_carve` with ``carve``, the split's mode), the orders being fitted on the rest of it: the
    reported validation split never takes part in the choice. A reference row or the decoding study's count
    generator takes its model from here."""
    if heldout is None:
        fit, held = tuning_carve(x_train, y_train, carve)
        order, scores = choose_order(y_train[fit], x_train[fit], y_train[held], x_train[held], vocab_size, orders)
    else:
        order, scores = choose_order(y_train, x_train, heldout[0], heldout[1], vocab_size, orders)
    return KneserNeyModel(y_train, x_train, vocab_size, order), scores


def headline_starts(x: np.ndarray) -> np.ndarray:
    """The rows of prefix sequences that start a headline: the context holds one word (``x[:, -2] == 0`` or a
    one-token window) and its word is not padding; the rows of a headline follow its first in order."""
    x = np.asarray(x)
    one_word = x[:, -2] == 0 if x.shape[1] >= 2 else np.ones(len(x), dtype=bool)
    return one_word & (x[:, -1] != 0)


def tuning_carve(x_train: np.ndarray, y_train: np.ndarray, mode: str = "headline", fraction: float = 0.2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(fit rows, held-out rows)`` of a training split, to choose a count model's order on the held-out rows
    without reading the reported validation split (the rule of :meth:`entropylab.data.corpus.Corpus.split`, on
    the training side's rows alone).

    ``tail``: the first ``floor(N (1 - fraction))`` rows are fitted, the rest held out (time order). ``headline``:
    the rows are grouped into headlines (a headline starts at a row whose context holds one word,
    :func:`headline_starts`), the headlines by their token sequence (copies of a text stay on one side), the groups
    are permuted with ``numpy.random.default_rng(seed)`` and the held-out side takes whole groups until it holds
    at least ``fraction`` of the headlines.

    This carve stands in for a dev side until the project's splits have one (issue 21): it is the same rule as the
    objectives study's tuning carve (:func:`entropylab.training.train.run_split` with ``tuning``), applied to the
    rows alone.
    """
    x, y = np.asarray(x_train), np.asarray(y_train)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the tuning carve's fraction must be between 0 and 1 (exclusive), got {fraction}")
    n = len(y)
    if x.ndim != 2 or len(x) != n or n < 2:
        raise ValueError(f"the tuning carve needs N x width windows and N next words (N >= 2), got {x.shape} and "
                         f"{y.shape}")
    if mode == "tail":
        cut = int(np.floor(n * (1.0 - fraction)))
        fit, heldout = np.arange(cut), np.arange(cut, n)
    elif mode == "headline":
        starts = headline_starts(x)
        starts[0] = True  # a split may begin inside a headline (tail): its rows form a group of their own
        owner = np.cumsum(starts) - 1
        bounds = [*np.flatnonzero(starts).tolist(), n]
        groups: dict[tuple[int, ...], list[int]] = {}
        for h in range(len(bounds) - 1):
            last = bounds[h + 1] - 1
            text = (*(int(t) for t in x[last] if t != 0), int(y[last]))
            groups.setdefault(text, []).append(h)
        members = list(groups.values())
        order = np.random.default_rng(seed).permutation(len(members))
        taken = np.cumsum([len(members[g]) for g in order])
        n_groups = int(np.searchsorted(taken, fraction * (len(bounds) - 1), side="left")) + 1
        held = np.array([h for g in order[:n_groups] for h in members[g]], dtype=np.int64)
        is_held = np.isin(owner, held)
        fit, heldout = np.flatnonzero(~is_held), np.flatnonzero(is_held)
    else:
        raise ValueError(f"unknown carve mode {mode!r}; use tail or headline")
    if len(fit) == 0 or len(heldout) == 0:
        raise ValueError(f"the tuning carve ({mode}, fraction {fraction}) of {n} rows leaves an empty side")
    return fit, heldout
