"""The registered objectives as Keras losses (this module imports Keras; the rest of the package does not).

One generic loss serves every objective: :class:`ObjectiveLoss` ``(objective, weight)`` calls the objective's
registered ``per_example(keras.ops, labels, outputs, weight)`` (:mod:`.registry`) and returns its batch mean
(Keras' default reduction) on integer labels. :class:`FamilyLoss` ``(family, coefficients)`` does the same with a
family's formula, whose coefficients may be traced tensors (a fused group's per-run rows).

An objective that needs the model's head kernel (``needs_kernel``, :mod:`.registry`) gets it through ``kernel``:
the model's kernel *variable* (:func:`entropylab.model.head_kernel`), read at each call, or a tensor (a fused run's
traced kernel). A variable read inside Keras' own train step is the step's current value (the JAX trainer computes
the loss in a ``StatelessScope`` of the traced weights; TensorFlow reads the variable in its graph); a caller that
compiles the loss itself must hand it the current kernel (:func:`entropylab.training.fused.group_loss`) or compile
again when the weights change (:class:`entropylab.training.callbacks.RetracedEpochMetrics`).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from . import registry
from .terms import labels_of


class PerExampleLoss(keras.losses.Loss):
    """Base class: integer labels in, the batch mean of :meth:`per_example` out; ``head`` says what outputs are."""

    head: str = "linear"

    def per_example(self, labels: Any, outputs: Any) -> Any:
        raise NotImplementedError

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self.per_example(labels_of(ops, y_true), y_pred)


@keras.saving.register_keras_serializable(package="entropylab")
class ObjectiveLoss(PerExampleLoss):
    """The registered objective ``objective`` at its parameter ``weight`` (its default when ``None``).

    Per example: the objective's formula (its ``per_example`` docstring); the value is checked against the
    objective's range (:meth:`entropylab.objectives.registry.Objective.check`), which is stated nowhere else.
    """

    def __init__(self, objective: str, weight: float | None = None, name: str | None = None, *,
                 kernel: Any = None, **kwargs: Any) -> None:
        spec = registry.get(objective)
        super().__init__(name=name or objective, **kwargs)
        self.objective = objective
        self.head = spec.head
        self.weight = spec.check(spec.default if weight is None else weight)
        self.needs_kernel = spec.needs_kernel
        self.kernel = kernel if spec.needs_kernel else None  # not kept (nor serialised) for other objectives
        self._per_example = spec.per_example

    def per_example(self, labels: Any, outputs: Any) -> Any:
        if not self.needs_kernel:
            return self._per_example(ops, labels, outputs, self.weight)
        if self.kernel is None:
            raise ValueError(f"objective {self.objective!r} reads the model's head kernel; build its loss with "
                             f"keras_loss({self.objective!r}, kernel=entropylab.model.head_kernel(model))")
        return self._per_example(ops, labels, outputs, self.weight, ops.convert_to_tensor(self.kernel))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "objective": self.objective, "weight": self.weight}


class FamilyLoss(PerExampleLoss):
    """A family's formula at ``coefficients`` (numbers or a traced row): per example ``formula(t, o; c)``."""

    def __init__(self, family: str, coefficients: Any, **kwargs: Any) -> None:
        spec = registry.family(family)
        super().__init__(name=f"{family}_family", **kwargs)
        self.family = family
        self.head = spec.head
        self.coefficients = coefficients
        self._formula = spec.formula

    def per_example(self, labels: Any, outputs: Any) -> Any:
        return self._formula(ops, labels, outputs, self.coefficients)


def keras_loss(name: str, weight: float | None = None, *, kernel: Any = None, **params: Any) -> ObjectiveLoss:
    """The objective ``name`` as a Keras loss, e.g. ``keras_loss("kl_regularized", 10)``.

    ``weight`` is its one parameter (omitted: its default; an objective without one takes only 0); a value outside
    its range, an unknown name or another keyword is a ``ValueError`` that says what is allowed. ``kernel`` is the
    model's head kernel (:func:`entropylab.model.head_kernel`) for an objective that needs it (``needs_kernel``),
    ignored by the others; such a loss called without one is a ``ValueError``.
    """
    if params:
        raise ValueError(f"objective {name!r} takes no parameter(s) {', '.join(sorted(params))}; its one number is "
                         f"'weight' ({registry.parameter_name(name)})")
    return ObjectiveLoss(name, weight, kernel=kernel)


def family_loss(family: str, coefficients: Any) -> FamilyLoss:
    """The family ``family``'s formula at ``coefficients`` as a Keras loss (:class:`FamilyLoss`)."""
    return FamilyLoss(family, coefficients)
