"""An opt-in record of where one run's time goes: ``phases.json`` in its run folder.

Written only when ``ENTROPYLAB_PHASE_TIMES=1`` is set in the training process (``entropylab bench overhead`` sets
it for its runs); otherwise nothing is timed or written. It only reads clocks: a run's numbers, files and identity
are the same with it or without it (``phases.json`` is written after ``COMPLETE`` and nothing reads it back but the
benchmark).

The clock laps: :meth:`PhaseClock.lap` adds the seconds since the previous lap (or the clock's start) to a named
phase, so the phases of one :func:`entropylab.training.train.run` cover it end to end without overlap. The file
holds ``{"started_at": <Unix time of the clock's start>, "seconds": {phase: seconds}, "counts": {phase: laps},
"total": <sum of seconds>}``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ENVIRONMENT = "ENTROPYLAB_PHASE_TIMES"
PHASES_FILE = "phases.json"
#: The phases :func:`entropylab.training.train.run` laps, in the order they first happen.
RUN_PHASES = ("run_imports", "data", "build", "first_epoch", "later_epochs", "validation", "references",
              "generation", "write_run_folder", "run_other")


class PhaseClock:
    """Seconds per named phase, lapped; a disabled clock (``enabled=False``) records and writes nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started_at = time.time()
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._last = time.perf_counter()

    @classmethod
    def from_environment(cls) -> PhaseClock:
        """Enabled when ``$ENTROPYLAB_PHASE_TIMES`` is ``1``."""
        return cls(enabled=os.environ.get(ENVIRONMENT, "") == "1")

    def lap(self, phase: str, at: float | None = None) -> None:
        """Add the seconds from the previous lap to ``at`` (a ``time.perf_counter()`` reading; default: now) to
        ``phase``."""
        if not self.enabled:
            return
        now = time.perf_counter() if at is None else at
        self.seconds[phase] = self.seconds.get(phase, 0.0) + (now - self._last)
        self.counts[phase] = self.counts.get(phase, 0) + 1
        self._last = now

    def to_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "seconds": dict(self.seconds), "counts": dict(self.counts),
                "total": sum(self.seconds.values())}

    def write(self, run_dir: str | os.PathLike | None) -> None:
        """``<run_dir>/phases.json`` (atomically), when enabled and a folder is given."""
        if not self.enabled or run_dir is None:
            return
        from .store import write_json

        write_json(Path(run_dir) / PHASES_FILE, self.to_dict())


def read_phases(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``phases.json`` of a run folder; a ``FileNotFoundError`` naming the fix when it has none."""
    path = Path(run_dir) / PHASES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the run must be trained (not reused) with {ENVIRONMENT}=1")
    from .store import read_json

    return read_json(path)
