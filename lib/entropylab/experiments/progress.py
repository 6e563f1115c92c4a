"""A sweep's progress bar: epochs done over planned (running runs read from their ``progress.json``), finished
runs as a second number."""

from __future__ import annotations

import sys
from typing import Any

from ..training import store
from .execute import Task


class EpochProgress:
    """A progress bar over the epochs of a sweep (done over planned), with finished runs as a second number."""

    def __init__(self, plan: Any, done: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.total_runs = len(plan.tasks)
        self.runs_done = done
        self._epochs = {t.run_dir: t.epochs for t in plan.tasks}
        self._finished_epochs = 0
        self._running: set[str] = set()
        self.bar = tqdm(total=sum(self._epochs.values()), unit="epoch", desc=plan.experiment, disable=not enabled,
                        file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs "
                        "[{elapsed}<{remaining}{postfix}]")

    def skip(self, task: Task) -> None:
        self._finished_epochs += task.epochs

    def start(self, task: Task) -> None:
        self._running.add(task.run_dir)

    def finish(self, task: Task) -> None:
        self._running.discard(task.run_dir)
        self._finished_epochs += task.epochs
        self.runs_done += 1
        self.refresh()

    def refresh(self) -> None:
        running = sum(min(store.read_progress(d), self._epochs[d]) for d in self._running)
        self.bar.n = round(self._finished_epochs + running, 2)
        self.bar.set_postfix_str(f"runs {self.runs_done}/{self.total_runs}", refresh=False)
        self.bar.refresh()

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
