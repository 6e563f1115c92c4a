"""Metrics of a model: per-epoch validation metrics in one batched pass (:mod:`.validation`, with calibration),
the diversity and true quality of what it generates (:mod:`.generation`), and the count models it is set against
(:mod:`.references`)."""

from .validation import (
    BIN_KEYS,
    CALIBRATION_BINS,
    EVAL_BATCH_SIZE,
    EpochMetrics,
    ValidationEvaluator,
    batch_sums,
    log_distribution,
)

__all__ = ["BIN_KEYS", "CALIBRATION_BINS", "EVAL_BATCH_SIZE", "EpochMetrics", "ValidationEvaluator", "batch_sums",
           "log_distribution"]
