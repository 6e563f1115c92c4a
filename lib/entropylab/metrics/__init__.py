"""Metrics of a model: per-epoch validation metrics in one batched pass (:mod:`.validation`, with calibration),
the diversity and true quality of what it generates (:mod:`.generation`), and the count models it is set against
(:mod:`.references`)."""

from .validation import (
    ADAPTIVE_BIN_KEYS,
    BIN_KEYS,
    CALIBRATION_BINS,
    EVAL_BATCH_SIZE,
    EXAMPLE_KEYS,
    EpochMetrics,
    ValidationEvaluator,
    adaptive_bins,
    batch_sums,
    log_distribution,
    means_from_totals,
)

__all__ = ["ADAPTIVE_BIN_KEYS", "BIN_KEYS", "CALIBRATION_BINS", "EVAL_BATCH_SIZE", "EXAMPLE_KEYS", "EpochMetrics",
           "ValidationEvaluator", "adaptive_bins", "batch_sums", "log_distribution", "means_from_totals"]
