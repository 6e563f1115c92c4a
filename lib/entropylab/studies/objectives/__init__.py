"""The objectives study: which entropy-based training objective beats cross-entropy (notebooks/07)."""
