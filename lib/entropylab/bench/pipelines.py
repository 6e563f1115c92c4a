"""The pipelines the benchmark can measure and the settings every pipeline of one benchmark shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

QUICK_SEQUENCES = 6000
QUICK_EPOCHS = 3
FULL_EPOCHS = 2
BATCH_SIZE = 32


@dataclass(frozen=True)
class Pipeline:
    """One way of training: ``kind`` "naive" (the reference) or "ours" (:func:`entropylab.training.train.run`)."""

    name: str
    kind: str
    backend: str = "tensorflow"
    jit: bool = True
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""


PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline("naive", "naive", jit=False,
             description="REFERENCE, the Kaggle guide's way: to_categorical float64 one-hot labels, "
                         "fit on NumPy arrays with validation_split=0.2, Keras MSE, no XLA"),
    Pipeline("ours", "ours", description="entropylab.training.run: integer labels, tf.data, XLA, metrics in one pass"),
    Pipeline("ours-noxla", "ours", jit=False, description="ours without XLA (TensorFlow op determinism on)"),
    Pipeline("ours-jax", "ours", backend="jax", description="ours on Keras' JAX backend (KERAS_BACKEND=jax, jit)"),
    # for `ab` only: thread settings (ENTROPYLAB_THREADS sets TensorFlow's intra- and inter-op pools)
    Pipeline("ours-threads1", "ours", env={"ENTROPYLAB_THREADS": "1"}, description="ours, 1 thread per pool"),
    Pipeline("ours-threads2", "ours", env={"ENTROPYLAB_THREADS": "2"}, description="ours, 2 threads per pool"),
)}
DEFAULT_PIPELINES = ("naive", "ours", "ours-noxla", "ours-jax")


@dataclass
class Settings:
    """What every pipeline of one benchmark shares."""

    dataset: str = "auto"
    data_dir: str | None = None
    max_sequences: int | None = None
    epochs: int = FULL_EPOCHS
    batch_size: int = BATCH_SIZE
    seed: int = 0
    quick: bool = False
    lstm_units: int = 100


def parse_pipelines(spec: str | None) -> list[Pipeline]:
    """``"naive,ours"`` -> the named pipelines (default: :data:`DEFAULT_PIPELINES`); unknown names are errors."""
    names = [n.strip() for n in spec.split(",") if n.strip()] if spec else list(DEFAULT_PIPELINES)
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        raise ValueError(f"unknown pipeline(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(PIPELINES)}")
    return [PIPELINES[n] for n in names]


def backend_available(backend: str) -> bool:
    """Whether Keras' ``backend`` can be used here (JAX is the optional extra ``.[jax]``)."""
    if backend == "tensorflow":
        return True
    try:
        metadata.version(backend)
    except metadata.PackageNotFoundError:
        return False
    return True
