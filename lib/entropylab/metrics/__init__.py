"""Metrics of a model: per-epoch validation metrics in one batched pass (:mod:`.validation`, with calibration)
and the diversity and true quality of what it generates (:mod:`.generation`)."""

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
