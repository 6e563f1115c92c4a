"""``make reproduce``: the paper's runs on the real data (or, without it, on the synthetic corpus)."""

from __future__ import annotations

from pathlib import Path

from .data import resolve_dataset
from .train import RunConfig, run

PAPER_RUNS = (("mse", 0.0), ("kl_regularized", 10.0))


def main(output_root: str | Path = "outputs") -> int:
    dataset = resolve_dataset("auto")
    failed = 0
    for loss, weight in PAPER_RUNS:
        config = RunConfig(dataset=dataset, loss=loss, weight=weight)
        run_dir = Path(output_root) / "runs" / ("paper" if dataset == "nyt" else "paper-synthetic") / config.slug
        result = run(config, run_dir, verbose=2)
        print(f"{result.status}{' (reused)' if result.reused else ''}: {run_dir}")
        failed += result.status != "complete"
    return 1 if failed else 0
