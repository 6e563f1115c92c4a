"""Metrics of a model: per-epoch validation metrics in one batched pass (:mod:`.validation`, with calibration and
the cross-entropy per word-frequency band of :mod:`.bands`),
the diversity and true quality of what it generates (:mod:`.generation`), and the count models it is set against
(:mod:`.references`)."""

from .bands import BANDS, band_summary, word_bands
from .validation import (
    ADAPTIVE_BIN_KEYS,
    BAND_KEYS,
    BIN_KEYS,
    CALIBRATION_BINS,
    EVAL_BATCH_SIZE,
    EXAMPLE_KEYS,
    EpochMetrics,
    ValidationEvaluator,
    adaptive_bins,
    band_means,
    batch_sums,
    log_distribution,
    means_from_totals,
)

__all__ = ["ADAPTIVE_BIN_KEYS", "BANDS", "BAND_KEYS", "BIN_KEYS", "CALIBRATION_BINS", "EVAL_BATCH_SIZE", "EXAMPLE_KEYS",
           "EpochMetrics", "ValidationEvaluator", "adaptive_bins", "band_means", "band_summary", "batch_sums",
           "log_distribution", "means_from_totals", "word_bands"]
