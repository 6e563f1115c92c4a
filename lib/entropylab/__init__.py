"""entropy-lab: reproduce, check and extend entropy-based training and decoding of a small LSTM language model."""

import os

# Quiet TensorFlow's C++ start-up lines (they end up in notebooks and break nbval); set before TF loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# On JAX, deterministic GPU kernels (the embedding's gradient is a scatter-add, whose order XLA may otherwise vary):
# the same config and seed give the same numbers on one GPU. Set before JAX starts; a user's own choice is kept.
if os.environ.get("KERAS_BACKEND") == "jax" and "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    """``entropylab.load_corpus`` and ``entropylab.Corpus`` without importing the data package at start-up."""
    if name in ("Corpus", "load_corpus"):
        from . import data

        return getattr(data, name)
    raise AttributeError(f"module 'entropylab' has no attribute {name!r}")
