"""entropy-lab: reproduce, check and extend entropy-based training and decoding of a small LSTM language model."""

import os

# Quiet TensorFlow's C++ start-up lines (they end up in notebooks and break nbval); set before TF loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# On JAX, deterministic GPU kernels (the embedding's gradient is a scatter-add, whose order XLA may otherwise vary):
# the same config and seed give the same numbers on one GPU. Set before JAX starts; a user's own choice is kept.
# A sweep gives the processes it starts on JAX the same flags (experiments.execute.kernel_environment).


def deterministic_xla_flags(flags: str) -> str:
    """``$XLA_FLAGS``'s value ``flags`` with XLA's deterministic GPU kernels asked for (kept as is if it names them)."""
    return flags if "xla_gpu_deterministic_ops" in flags else f"{flags} --xla_gpu_deterministic_ops=true".strip()


if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ["XLA_FLAGS"] = deterministic_xla_flags(os.environ.get("XLA_FLAGS", ""))

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    """``entropylab.load_corpus`` and ``entropylab.Corpus`` without importing the data package at start-up."""
    if name in ("Corpus", "load_corpus"):
        from . import data

        return getattr(data, name)
    raise AttributeError(f"module 'entropylab' has no attribute {name!r}")
