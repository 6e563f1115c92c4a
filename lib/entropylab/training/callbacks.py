"""Keras callbacks of a run: stop on a non-finite loss, time each epoch (and, opt-in, its phases), report progress
(to code or to a file), validation metrics compiled again each epoch for a loss that reads the head kernel."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from ..metrics.validation import EpochMetrics


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers that it did."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get("loss")
        if value is not None and not math.isfinite(float(value)):
            self.stopped = True
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch, from ``on_epoch_begin`` to the end of its last training step or, with
    ``to_epoch_end=True`` (put it last in the callbacks), to the end of the epoch's validation work."""

    def __init__(self, to_epoch_end: bool = False) -> None:
        super().__init__()
        self.to_epoch_end = to_epoch_end
        self.seconds: list[float] = []
        self._start = self._end = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = self._end = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        end = time.perf_counter() if self.to_epoch_end else self._end
        self.seconds.append(end - self._start)

    @property
    def last_step_end(self) -> float:
        """The ``time.perf_counter()`` reading at the end of the current epoch's last training step so far."""
        return self._end


class EpochPhases(keras.callbacks.Callback):
    """Laps a :class:`~entropylab.training.phases.PhaseClock` at each epoch's end: up to ``timer``'s last training
    step as ``first_epoch`` (graph tracing and compilation included) or ``later_epochs``, then the rest of the
    epoch (the validation pass of the callbacks before this one) as ``validation``. Put it after them."""

    def __init__(self, clock: Any, timer: EpochTimer) -> None:
        super().__init__()
        self.clock, self.timer = clock, timer

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.clock.lap("first_epoch" if epoch == 0 else "later_epochs", at=self.timer.last_step_end)
        self.clock.lap("validation")


class Progress(keras.callbacks.Callback):
    """Calls ``report(epoch, epochs, step, steps)`` (1-based epoch) at most every ``every_s`` seconds, and at
    each epoch's start and end."""

    def __init__(self, report: Callable[[int, int, int, int], None], every_s: float = 0.25) -> None:
        super().__init__()
        self.report, self.every_s = report, every_s
        self._last = 0.0
        self._epoch = 0

    def _send(self, step: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            self.report(self._epoch + 1, int(self.params.get("epochs") or 1), step, int(self.params.get("steps") or 1))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._send(0, force=True)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._send(batch + 1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._send(int(self.params.get("steps") or 1), force=True)


def progress_file(run_dir: str | Path, every_s: float = 2.0) -> Progress:
    """A :class:`Progress` that writes ``{"epoch", "epochs", "step", "steps"}`` to ``<run_dir>/progress.json``
    (atomically), so that a sweep in another process can show epochs done within its running runs."""
    from .store import PROGRESS, write_json

    path = Path(run_dir) / PROGRESS

    def write(epoch: int, epochs: int, step: int, steps: int) -> None:
        write_json(path, {"epoch": epoch, "epochs": epochs, "step": step, "steps": steps})

    return Progress(write, every_s=every_s)


class BestEpoch(keras.callbacks.Callback):
    """Early stopping on a validation metric (lower is better): keeps the best epoch's weights, stops after
    ``patience`` epochs without a strict improvement, and puts the best weights back when training ends. With
    ``patience=None`` it only records the best epoch (the run trains every epoch and keeps the last weights).

    Put it after the callback that adds ``monitor`` to the epoch's logs. ``best_epoch`` is 1-based (0: no epoch
    had a finite value; the weights are then left as they are).
    """

    def __init__(self, monitor: str = "val_cross_entropy", patience: int | None = None) -> None:
        super().__init__()
        self.monitor, self.patience = monitor, patience
        self.best = math.inf
        self.best_epoch = 0
        self._weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get(self.monitor, math.nan))
        if math.isfinite(value) and value < self.best:
            self.best, self.best_epoch = value, epoch + 1
            if self.patience is not None:  # without early stopping the run keeps its last epoch's weights
                self._weights = self.model.get_weights()
        elif self.patience is not None and epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._weights is not None:
            self.model.set_weights(self._weights)


class RetracedEpochMetrics(EpochMetrics):
    """:class:`~entropylab.metrics.validation.EpochMetrics` with a new evaluator (``make()``) from the second epoch
    on, for a loss that reads the model's head kernel (``needs_kernel``) on JAX.

    The JAX evaluator compiles its pass once, with the weights as arguments of ``stateless_call``, but the loss is
    called outside that call: a kernel variable read there would be frozen into the program as the constant it held
    when it was traced. A new evaluator traces again, so each epoch's ``val_loss`` uses that epoch's kernel (at
    the cost of one compilation per epoch)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        super().__init__(make())
        self.make = make

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch:
            self.evaluator = self.make()
        super().on_epoch_end(epoch, logs)
