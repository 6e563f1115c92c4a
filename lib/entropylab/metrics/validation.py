"""Per-epoch metrics on the validation split, in one batched pass (never a V-wide array for the whole set).

The paper's (means over the validation examples, ``c = clip(o, eps, 1)``):

* ``paper_entropy``: mean ``H_paper(o) = -sum_j c_j log c_j``;
* ``paper_kl``: mean ``KL_paper(t, o) = -log c_t + eps sum_{j != t} (log eps - log c_j)``;
* ``val_loss``: mean of the training objective (``loss`` is Keras' running mean over the training epoch).

Ours, on the normalised distribution ``p`` (``softmax(z)`` for the softmax head, ``c / sum_j c_j`` for the
linear head). The model's **prediction** is one argmax for every metric, ``y_i = argmax_j o_ij`` of the raw outputs
(the first index on a tie), and example ``i`` is **correct** when ``y_i = t_i``; its **confidence** is the
probability of its prediction, ``c_i = p_{i, y_i}``. That is ``max_j p_ij`` for both heads: ``log p`` is a
non-decreasing function of ``o`` (softmax), and for the linear head the argmax of ``o`` is always among the
maximisers of ``clip(o, eps, 1)`` (outputs above 1 tie after clipping, and the argmax of ``log p`` would then take
the first of them, not the model's prediction):

* ``val_cross_entropy``: mean ``-log p_t`` in nats; ``val_perplexity = exp(val_cross_entropy)``;
* ``val_accuracy``: mean ``[y_i = t_i]`` (``y_i = argmax_j o_ij``, as above);
* ``val_entropy``: mean ``H(p) = -sum_j p_j log p_j``;
* ``val_entropy_gap = val_entropy - val_cross_entropy``: below 0 the model is over-confident (it expects less
  surprise than it gets), above 0 under-confident; 0 in expectation for a calibrated-in-entropy model;
* ``val_brier``: mean ``sum_j (p_j - [j = t])^2 = sum_j p_j^2 - 2 p_t + 1`` (Brier 1950), in ``[0, 2]``;
* ``val_ece``: expected calibration error of the confidence ``c_i`` with ``K = 15`` equal-width bins
  ``B_k = [(k-1)/K, k/K)`` (the last one closed): ``ECE = sum_k |B_k|/N |acc(B_k) - conf(B_k)|
  = (1/N) sum_k |sum_{i in B_k} ([y_i = t_i] - c_i)|`` (Guo, Pleiss, Sun & Weinberger 2017). A flat model (every
  ``c_i < 1/K``, as on the NYT corpus) has one non-empty bin, and then ``val_ece = |val_accuracy - mean c_i|``;
* ``val_ece_adaptive``: the same sum over ``K = 15`` bins of **equal count** (adaptive binning, Nguyen & O'Connor
  2015; the "adaptive calibration error" of Nixon et al. 2019): the ``N`` examples sorted by ``c_i`` (a stable sort:
  ties stay in validation order) are cut into ``K`` contiguous groups ``A_1 .. A_K`` of near-equal size (the first
  ``N mod K`` groups one larger, as ``numpy.array_split``), and ``ECE_adaptive = (1/N) sum_k |sum_{i in A_k}
  ([y_i = t_i] - c_i)|``. It needs every example's ``c_i`` and correct flag: the batches return them (``N``
  float32 values each, :data:`EXAMPLE_KEYS`), the other metrics return sums;
* per word-frequency band ``b`` (:mod:`entropylab.metrics.bands`: ``frequent``, ``middle``, ``rare``, ``unseen``,
  fixed once per run from its training labels), when the evaluator is given the bands: ``val_ce_<b>``, the mean
  ``-log p_t`` in nats over the examples whose label ``t`` is in band ``b`` (NaN when none is), and
  ``val_share_<b>``, their share of the ``N`` examples (the shares add up to 1: padding is never a label). The
  batches return two sums of :data:`BAND_KEYS` per band (``band_count``, ``band_cross_entropy``), from one lookup of
  each label's band in a ``V``-long vector;
* synthetic corpus only, with the exact next-word law ``q``: ``true_kl`` = mean ``sum_j q_j log(q_j / p_j)``
  and ``entropy_floor`` = mean ``H(q)``, the cross-entropy floor (``val_cross_entropy >= entropy_floor``
  in expectation, with equality only for ``p = q``).

The calibration bins of the last evaluation are kept (:attr:`ValidationEvaluator.bins`) for a reliability diagram:
per equal-width bin (:data:`BIN_KEYS`) ``bin_count`` ``|B_k|``, ``bin_confidence`` ``sum_{i in B_k} c_i`` and
``bin_correct`` ``sum_{i in B_k} [y_i = t_i]``; per adaptive bin (:data:`ADAPTIVE_BIN_KEYS`) the same sums
``adaptive_count``, ``adaptive_confidence`` and ``adaptive_correct`` over ``A_k``, and ``adaptive_edges``, ``K + 1``
values: the lowest confidence of all, then each bin's highest (bin ``k``'s confidences lie in
``[adaptive_edges[k], adaptive_edges[k + 1]]``; an empty bin, only when ``N < K``, repeats the edge before it).

Only one batch of ``B x V`` values exists at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
from keras import ops

from ..objectives import EPSILON, paper_entropy, paper_kl
from ..objectives.keras_losses import PerExampleLoss
from .bands import BANDS

EVAL_BATCH_SIZE = 512
#: A fused group's evaluation batch is at most this many rows over all its runs (runs x batch x V float32 values
#: per array: 4096 rows of the NYT vocabulary's 11,265 words are 185 MB), so that memory does not grow with the group.
GROUP_EVAL_ROWS = 4096
#: Bins of the confidence for the expected calibration errors (equal-width and equal-count).
CALIBRATION_BINS = 15
#: The equal-width bins' sums (``val_ece``), returned by :func:`batch_sums` and added over the batches.
BIN_KEYS = ("bin_count", "bin_confidence", "bin_correct")
#: The equal-count bins (``val_ece_adaptive``), made from every example's confidence and correct flag.
ADAPTIVE_BIN_KEYS = ("adaptive_count", "adaptive_confidence", "adaptive_correct", "adaptive_edges")
#: Per-example values of :func:`batch_sums` (one per row of the batch): concatenated over the batches, not added.
EXAMPLE_KEYS = ("confidence", "correct")
#: The per-band sums of :func:`batch_sums` (one value per band of :data:`entropylab.metrics.bands.BANDS`), when it
#: is given the bands: how many labels fall in each band and the sum of their ``-log p_t``.
BAND_KEYS = ("band_count", "band_cross_entropy")


def log_distribution(outputs: Any, head: str) -> Any:
    """``log p`` of the normalised distribution of a batch of outputs."""
    if head == "softmax":
        return ops.log_softmax(outputs, axis=-1)
    log_c = ops.log(ops.clip(outputs, EPSILON, 1.0))
    return log_c - ops.logsumexp(log_c, axis=-1, keepdims=True)


def batch_sums(outputs: Any, labels: Any, loss: PerExampleLoss, head: str, true_probs: Any = None,
               bands: Any = None) -> dict:
    """Sums over one batch of every per-example metric (see the module docstring), and each example's confidence
    and correct flag (:data:`EXAMPLE_KEYS`, float32 arrays of the batch's length). ``bands``: each vocabulary id's
    band index (:func:`entropylab.metrics.bands.word_bands`, ``V`` int32 values) adds the :data:`BAND_KEYS` sums."""
    labels = ops.cast(labels, "int32")
    log_p = log_distribution(outputs, head)
    log_p_t = ops.squeeze(ops.take_along_axis(log_p, ops.expand_dims(labels, -1), axis=-1), -1)
    probs = ops.exp(log_p)
    prediction = ops.cast(ops.argmax(outputs, axis=-1), "int32")  # the one argmax (module docstring)
    confidence = ops.squeeze(ops.take_along_axis(probs, ops.expand_dims(prediction, -1), axis=-1), -1)
    correct = ops.cast(ops.equal(prediction, labels), "float32")
    bins = ops.minimum(ops.cast(ops.floor(confidence * CALIBRATION_BINS), "int32"), CALIBRATION_BINS - 1)
    in_bin = ops.one_hot(bins, CALIBRATION_BINS)
    sums = {
        "paper_entropy": ops.sum(paper_entropy(ops, outputs)),
        "paper_kl": ops.sum(paper_kl(ops, labels, outputs)),
        "val_loss": ops.sum(loss.per_example(labels, outputs)),
        "val_cross_entropy": ops.sum(-log_p_t),
        "val_accuracy": ops.sum(correct),
        "val_entropy": ops.sum(-ops.sum(probs * log_p, axis=-1)),
        "val_brier": ops.sum(ops.sum(probs * probs, axis=-1) - 2.0 * ops.exp(log_p_t) + 1.0),
        "bin_count": ops.sum(in_bin, axis=0),
        "bin_confidence": ops.sum(in_bin * confidence[:, None], axis=0),
        "bin_correct": ops.sum(in_bin * correct[:, None], axis=0),
        "confidence": ops.cast(confidence, "float32"),
        "correct": correct,
    }
    if bands is not None:
        label_band = ops.take(ops.convert_to_tensor(bands, "int32"), labels)  # padding's -1 is in no band
        in_band = ops.cast(ops.equal(ops.expand_dims(label_band, -1), ops.arange(len(BANDS), dtype="int32")),
                           "float32")
        sums["band_count"] = ops.sum(in_band, axis=0)
        sums["band_cross_entropy"] = ops.sum(in_band * ops.expand_dims(-log_p_t, -1), axis=0)
    if true_probs is not None:
        q = true_probs
        log_q = ops.log(ops.maximum(q, 1e-30))
        sums["true_kl"] = ops.sum(ops.sum(ops.where(q > 0, q * (log_q - log_p), 0.0), axis=-1))
        sums["entropy_floor"] = ops.sum(-ops.sum(ops.where(q > 0, q * log_q, 0.0), axis=-1))
    return sums


class ValidationEvaluator:
    """Computes every per-epoch metric of a model on fixed validation arrays, batch by batch; with ``bands`` (each
    vocabulary id's band, :func:`entropylab.metrics.bands.word_bands` of the run's training labels) the per-band
    cross-entropies and shares too."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, loss: PerExampleLoss, head: str,
                 true_next: Callable[[np.ndarray], np.ndarray] | None = None,
                 batch_size: int = EVAL_BATCH_SIZE, bands: np.ndarray | None = None) -> None:
        self.x_val, self.y_val = x_val, y_val
        self.loss, self.head, self.true_next = loss, head, true_next
        self.batch_size = batch_size
        self.bands = None if bands is None else np.asarray(bands, dtype=np.int32)
        self._compiled: dict[int, Callable] = {}
        self.bins: dict[str, np.ndarray] = {}

    def _function(self, model: keras.Model) -> Callable:
        key = id(model)
        if key not in self._compiled:
            def evaluate_batch(x: Any, y: Any, q: Any = None) -> dict:
                return batch_sums(model(x, training=False), y, self.loss, self.head, q, self.bands)

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                evaluate_batch = tf.function(evaluate_batch, reduce_retracing=True)
            elif keras.backend.backend() == "jax":
                evaluate_batch = _jax_evaluate_batch(model, self.loss, self.head, self.bands)
            self._compiled = {key: evaluate_batch}
        return self._compiled[key]

    def evaluate(self, model: keras.Model) -> dict[str, float]:
        """Every scalar metric (means over the validation examples); the calibration bins go to :attr:`bins`."""
        function = self._function(model)
        totals: dict[str, Any] = {}
        examples: dict[str, list[np.ndarray]] = {key: [] for key in EXAMPLE_KEYS}
        for x, y, q in validation_batches(self.x_val, self.y_val, self.batch_size, self.true_next):
            for key, value in function(x, y, q).items():
                if key in examples:
                    examples[key].append(np.asarray(ops.convert_to_numpy(value), dtype=np.float32))
                else:
                    totals[key] = totals.get(key, 0.0) + np.asarray(ops.convert_to_numpy(value), dtype=np.float64)
        means, self.bins = means_from_totals(totals, len(self.y_val),
                                             {key: np.concatenate(parts) for key, parts in examples.items()})
        return means



def validation_batches(x_val: np.ndarray, y_val: np.ndarray, batch_size: int,
                       true_next: Callable[[np.ndarray], np.ndarray] | None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(x, y, q)`` of each evaluation batch (``q``: the true next-word law, or ``None``)."""
    for start in range(0, len(y_val), batch_size):
        x = x_val[start:start + batch_size]
        yield x, y_val[start:start + batch_size], None if true_next is None else true_next(x)


def adaptive_bins(confidence: np.ndarray, correct: np.ndarray,
                  n_bins: int = CALIBRATION_BINS) -> dict[str, np.ndarray]:
    """The equal-count bins of :data:`ADAPTIVE_BIN_KEYS` (module docstring) from every example's confidence and
    correct flag, in validation order: a stable sort by confidence, cut as ``numpy.array_split`` cuts."""
    confidence = np.asarray(confidence, dtype=np.float32).reshape(-1)
    correct = np.asarray(correct, dtype=np.float32).reshape(-1)
    order = np.argsort(confidence, kind="stable")
    groups = np.array_split(order, n_bins)
    sorted_confidence = confidence[order].astype(np.float64)
    edges = np.empty(n_bins + 1, dtype=np.float64)
    edges[0] = sorted_confidence[0] if len(order) else np.nan
    for k, group in enumerate(groups):
        edges[k + 1] = float(confidence[group[-1]]) if len(group) else edges[k]
    return {
        "adaptive_count": np.array([len(g) for g in groups], dtype=np.float64),
        "adaptive_confidence": np.array([confidence[g].astype(np.float64).sum() for g in groups]),
        "adaptive_correct": np.array([correct[g].astype(np.float64).sum() for g in groups]),
        "adaptive_edges": edges,
    }


def means_from_totals(totals: dict[str, Any], n: int, examples: dict[str, np.ndarray] | None = None
                      ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The epoch's metrics from the sums over ``n`` validation examples: the means (with perplexity, entropy gap,
    both ECEs and, where the sums hold :data:`BAND_KEYS`, each band's cross-entropy and share) and the calibration
    bins.

    ``examples`` holds every example's :data:`EXAMPLE_KEYS` values (``n`` each, in validation order); they may be in
    ``totals`` instead. Without them there is no ``val_ece_adaptive`` and no adaptive bins."""
    totals = dict(totals)
    examples = dict(examples or {})
    for key in EXAMPLE_KEYS:
        if key in totals:
            examples[key] = totals.pop(key)
    bins = {key: totals.pop(key) for key in BIN_KEYS}
    band_sums = {key: np.asarray(totals.pop(key), dtype=np.float64) for key in BAND_KEYS if key in totals}
    means = {key: float(value) / n for key, value in totals.items()}
    means["val_perplexity"] = math.exp(min(means["val_cross_entropy"], 700.0))
    means["val_entropy_gap"] = means["val_entropy"] - means["val_cross_entropy"]
    means["val_ece"] = float(np.abs(bins["bin_correct"] - bins["bin_confidence"]).sum()) / n
    if all(key in examples for key in EXAMPLE_KEYS):
        if len(examples["confidence"]) != n:
            raise ValueError(f"{len(examples['confidence'])} confidences for {n} validation examples")
        bins.update(adaptive_bins(examples["confidence"], examples["correct"]))
        means["val_ece_adaptive"] = float(np.abs(bins["adaptive_correct"]
                                                 - bins["adaptive_confidence"]).sum()) / n
    if band_sums:
        means.update(band_means(band_sums["band_count"], band_sums["band_cross_entropy"], n))
    return means, bins


def band_means(count: np.ndarray, cross_entropy: np.ndarray, n: int) -> dict[str, float]:
    """``val_ce_<band>`` (``cross_entropy / count`` per band, NaN for an empty band) and ``val_share_<band>``
    (``count / n``) from the per-band sums over ``n`` examples."""
    if len(count) != len(BANDS) or len(cross_entropy) != len(BANDS):
        raise ValueError(f"per-band sums need one value per band {BANDS}, got {len(count)} and {len(cross_entropy)}")
    means = {f"val_ce_{band}": float(cross_entropy[i] / count[i]) if count[i] > 0 else math.nan
             for i, band in enumerate(BANDS)}
    means.update({f"val_share_{band}": float(count[i]) / n for i, band in enumerate(BANDS)})
    return means


def _jax_evaluate_batch(model: keras.Model, loss: PerExampleLoss, head: str,
                        bands: np.ndarray | None = None) -> Callable:
    """:func:`batch_sums` compiled with ``jax.jit``; the weights are arguments (``stateless_call``), so the
    compiled function always sees the current ones (closed-over weights would be frozen at tracing). The bands are
    fixed for the run: a constant of the compiled function."""
    import jax

    @jax.jit
    def compiled(trainable: list, non_trainable: list, x: Any, y: Any, q: Any) -> dict:
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return batch_sums(outputs, y, loss, head, q, bands)

    def evaluate_batch(x: Any, y: Any, q: Any = None) -> dict:
        return compiled([v.value for v in model.trainable_variables],
                        [v.value for v in model.non_trainable_variables], x, y, q)

    return evaluate_batch


class EpochMetrics(keras.callbacks.Callback):
    """Adds the validation metrics to each epoch's logs and keeps every epoch's row and calibration bins."""

    def __init__(self, evaluator: ValidationEvaluator) -> None:
        super().__init__()
        self.evaluator = evaluator
        self.rows: list[dict[str, float]] = []
        self.bins: list[dict[str, list[float]]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        values = self.evaluator.evaluate(self.model)
        logs.update(values)
        row = {"epoch": epoch + 1, "loss": float(logs.get("loss", math.nan)), **values}
        self.rows.append(row)
        self.bins.append({key: value.tolist() for key, value in self.evaluator.bins.items()})


class GroupEvaluator:
    """:class:`ValidationEvaluator`'s metrics for every run of a fused group at once (JAX backend).

    The runs' stacked weights go through one ``jax.jit`` of a ``jax.vmap`` of :func:`batch_sums`, batch by batch;
    run ``r``'s objective (its ``val_loss``) is ``loss_at(rows[r])``, the group's loss at the run's own row of
    coefficients (:func:`entropylab.training.fused.group_loss`). ``bands`` as :class:`ValidationEvaluator`'s (the
    group's runs share one training split, so one vector).
    """

    def __init__(self, model: keras.Model, x_val: np.ndarray, y_val: np.ndarray,
                 loss_at: Callable[[Any], PerExampleLoss], head: str,
                 true_next: Callable[[np.ndarray], np.ndarray] | None = None,
                 batch_size: int = EVAL_BATCH_SIZE, runs: int = 1, bands: np.ndarray | None = None) -> None:
        import jax

        self.n = len(y_val)
        # one evaluation batch holds runs x batch rows of V outputs: at most GROUP_EVAL_ROWS rows, whatever the group
        batch_size = max(16, min(batch_size, GROUP_EVAL_ROWS // max(1, runs)))
        self.batches = list(validation_batches(x_val, y_val, batch_size, true_next))  # q computed once, not per epoch
        bands = None if bands is None else np.asarray(bands, dtype=np.int32)  # the group's runs share one split

        def run_sums(trainable: list, non_trainable: list, row: Any, x: Any, y: Any, q: Any) -> dict:
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return batch_sums(outputs, y, loss_at(row), head, q, bands)

        self._sums = jax.jit(jax.vmap(run_sums, in_axes=(0, 0, 0, None, None, None)))

    def evaluate(self, trainable: list, non_trainable: list,
                 rows: Any) -> list[tuple[dict[str, float], dict[str, np.ndarray]]]:
        """``(means, bins)`` of each run (the stacked arrays' leading axis), as :meth:`ValidationEvaluator.evaluate`.

        The batches' sums stay on the device until the last one is queued (no wait per batch), then are added in
        float64 on the host, as the one-run evaluator does; the per-example values (:data:`EXAMPLE_KEYS`, runs x
        batch) are concatenated along the examples' axis."""
        parts = [self._sums(trainable, non_trainable, rows, x, y, q) for x, y, q in self.batches]
        totals = {key: np.sum([np.asarray(part[key], dtype=np.float64) for part in parts], axis=0)
                  for key in parts[0] if key not in EXAMPLE_KEYS}
        examples = {key: np.concatenate([np.asarray(part[key], dtype=np.float32) for part in parts], axis=1)
                    for key in EXAMPLE_KEYS}
        return [means_from_totals({key: value[r] for key, value in totals.items()}, self.n,
                                  {key: value[r] for key, value in examples.items()}) for r in range(len(rows))]
