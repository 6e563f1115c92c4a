"""One grid point as a training notebook runs it: resolve the dataset and experiment, train (or reuse) the run."""

from __future__ import annotations

import os
from typing import Any


def train_point(notebook: str, *, experiment: str, output_root: str | os.PathLike | None = None,
                dataset: str = "auto", data_dir: str | None = None, verbose: int = 2, **config: Any) -> Any:
    """Train the run of one grid point into ``<outputs>/runs/<experiment>/<run name>`` and return its
    :class:`~entropylab.training.train.RunResult` (a finished folder of the same config is reused).

    ``notebook`` is the calling notebook's file name (it refuses an objective it does not follow);
    ``dataset="auto"`` is the NYT corpus when its files are found, else the synthetic corpus (said in one
    line) with the experiment ``<experiment>-synthetic``; ``config`` are the other
    :class:`~entropylab.training.config.RunConfig` fields. A failed run raises ``RuntimeError`` with its reason.
    """
    from ..training import RunConfig
    from .params import check_notebook_loss, resolve_experiment

    if "loss" in config:
        check_notebook_loss(notebook, config["loss"])
    dataset, experiment = resolve_experiment(experiment, dataset, data_dir)
    run_config = RunConfig(dataset=dataset, data_dir=data_dir, **config)
    print(f"run {run_config.run_name} of experiment {experiment!r} on the {dataset} corpus")
    return train_in_experiment(run_config, experiment, output_root, verbose)


def train_in_experiment(config: Any, experiment: str, output_root: str | os.PathLike | None = None,
                        verbose: int = 0) -> Any:
    """Train (or reuse) ``config`` in ``<outputs>/runs/<experiment>/<run name>``; a failure raises ``RuntimeError``
    with its reason and folder."""
    from .. import paths
    from ..training import run

    run_dir = paths.runs_dir(experiment, output_root) / config.run_name
    result = run(config, run_dir, verbose=verbose)
    if result.status != "complete":
        raise RuntimeError(f"run {config.run_name} failed: {result.metrics.get('reason')}; see {run_dir}")
    return result
