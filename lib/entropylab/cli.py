"""Command line: ``python -m entropylab {train,sweep,reproduce,bench,data,info} ...`` (``--help`` on each).

Nothing heavy is imported until a command runs (``--help`` answers without loading TensorFlow)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import objectives
from .training.config import DATASETS, SPLIT_MODES


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run and save it in a run folder",
                       description="Train one run of the paper's LSTM and save its folder "
                                   "(config.json, history.csv, metrics.json, weights, COMPLETE).")
    p.add_argument("--dataset", choices=DATASETS, default="nyt")
    p.add_argument("--data-dir", default=None, help="folder with the Articles*.csv files (default: search)")
    p.add_argument("--loss", choices=objectives.names(), default=objectives.CONTROL)
    p.add_argument("--weight", type=float, default=0.0,
                   help="the objective's parameter: a penalty weight, a smoothing amount or an exponent")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=SPLIT_MODES, default="tail")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the headline split (not of the model)")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--max-sequences", type=int, default=None, help="use only the first N sequences")
    p.add_argument("--no-jit", action="store_true", help="turn XLA compilation off")
    p.add_argument("--output", default=None,
                   help="experiment folder; the run goes in a sub-folder (default: <outputs>/runs/cli)")
    p.add_argument("--force", action="store_true", help="retrain even if the run folder is complete")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a params/*.yaml grid with papermill (resumable)")
    p.add_argument("params", help="a parameter file, e.g. params/paper.yaml")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: from the file, else 1)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow threads per run (default: cores // workers)")
    p.add_argument("--output-root", default=None, help="outputs folder (default: $ENTROPYLAB_OUTPUTS or outputs)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done")
    p.add_argument("--scheduler", default=None,
                   help="run the points on the Dask cluster of this scheduler (tcp://HOST:PORT; docs/scaling.md)")
    p.add_argument("--cluster", default=None, choices=["local"],
                   help="start a Dask LocalCluster of --workers processes here and run the points on it")
    p.add_argument("--engine", default=None, choices=["auto", "fused", "pool"],
                   help="fused: train runs that differ only in seed, weight and objective family as one program (JAX; "
                        "for a GPU); pool: one process per run; auto (default, or the file's engine): fused where "
                        "JAX sees a GPU")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the naive Keras pipeline against ours, side by side")
    p.add_argument("--quick", action="store_true", help="a few thousand sequences: minutes, for development")
    p.add_argument("--epochs", type=int, default=None, help="epochs per pipeline (default: 2; 3 with --quick)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--pipelines", default=None, help="comma-separated subset of the pipelines to measure")
    p.add_argument("--output-dir", default=None, help="default: <outputs>/benchmarks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entropylab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_sweep(sub)
    _add_bench(sub)
    p = sub.add_parser("data", help="download the NYT Articles*.csv files with kagglehub")
    p.add_argument("--dest", default="data/nyt-comments")
    p = sub.add_parser("reproduce", help="a study's whole protocol and its report (`make reproduce`: the paper's)")
    p.add_argument("--output-root", default=None, help="outputs folder (default: $ENTROPYLAB_OUTPUTS or outputs)")
    p.add_argument("--study", default="paper", choices=("paper", "objectives", "decoding"),
                   help="the paper's protocol (default), the objectives study (params/objectives.yaml, notebook 07) "
                        "or the decoding study (params/decoding.yaml, notebook 08)")
    p.add_argument("--params", default=None, help="another parameter file of the study (e.g. its smoke file)")
    p = sub.add_parser("info", help="print the corpus summary (the loader's regression numbers)")
    p.add_argument("--dataset", choices=DATASETS, default="nyt")
    p.add_argument("--data-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            from . import paths
            from .training import RunConfig, run

            config = RunConfig(dataset=args.dataset, data_dir=args.data_dir, loss=args.loss, weight=args.weight,
                               epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, split=args.split,
                               val_fraction=args.val_fraction, split_seed=args.split_seed,
                               learning_rate=args.learning_rate, max_sequences=args.max_sequences,
                               jit_compile=not args.no_jit)
            run_dir = Path(args.output or paths.runs_dir("cli")) / config.run_name
            result = run(config, run_dir, force=args.force, verbose=2)
            print(result.history.to_string(index=False))
            print(f"{result.status}: {run_dir}" + (" (already finished, reused)" if result.reused else ""))
            return 0 if result.status == "complete" else 1
        if args.command == "sweep":
            from .experiments.sweep import main as sweep_main

            return sweep_main(args)
        if args.command == "bench":
            from .bench.runner import main as bench_main

            return bench_main(args)
        if args.command == "data":
            from .data.download import download_nyt

            print(download_nyt(args.dest))
            return 0
        if args.command == "reproduce":
            from .studies.reproduce import main as reproduce_main

            return reproduce_main(args.output_root, args.study, args.params)
        if args.command == "info":
            from .data import load_corpus

            print(json.dumps(load_corpus(args.dataset, args.data_dir).summary(), indent=2))
            return 0
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written: one line with the path and the fix
        from .experiments.execute import write_error

        print(f"error: {write_error(exc, getattr(args, 'output', None) or getattr(args, 'output_root', None) or '?')}",
              file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
