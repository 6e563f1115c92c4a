"""``python -m entropylab.bench {child,ab,profile,scaling,gpu}``: the benchmark's child process and developer tools.

The generation and overhead benchmarks are modes of the command line's benchmark: ``python -m entropylab bench
generation`` and ``python -m entropylab bench overhead``."""

from __future__ import annotations

import argparse
import sys

from . import __doc__ as package_doc
from .pipelines import PIPELINES, QUICK_EPOCHS, Settings, parse_pipelines


def module_main(argv: list[str] | None = None) -> int:
    """``python -m entropylab.bench {child,ab,profile,scaling,gpu}``: the child process and the developer tools."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "child":
        from .runner import child_main

        return child_main(argv[1:])
    if argv and argv[0] == "generation":
        print("error: the generation benchmark moved: python -m entropylab bench generation [--decoders] "
              "(see its --help)", file=sys.stderr)
        return 2
    if argv and argv[0] == "gpu":
        from .gpu import main as gpu_main

        return gpu_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m entropylab.bench", description=package_doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ab = sub.add_parser("ab", help="run pipelines alternately and print median seconds per epoch")
    ab.add_argument("pipelines", help=f"comma-separated, the first is the base; from {', '.join(PIPELINES)}")
    ab.add_argument("--repeats", type=int, default=3)
    ab.add_argument("--epochs", type=int, default=QUICK_EPOCHS)
    ab.add_argument("--max-sequences", type=int, default=12000)
    ab.add_argument("--data-dir", default=None)
    prof = sub.add_parser("profile", help="time the parts of one training step (TensorFlow, this process)")
    prof.add_argument("--steps", type=int, default=200, help="steps per timing")
    prof.add_argument("--repeats", type=int, default=5)
    prof.add_argument("--vocab-size", type=int, default=11265)
    scaling = sub.add_parser("scaling", help="a grid on a loopback Dask cluster and on the local pool, back to back")
    scaling.add_argument("params", help="a parameter file, e.g. params/smoke.yaml")
    scaling.add_argument("--workers", type=int, default=2)
    sub.add_parser("gpu", help="the fused engine's device check: one run, fused groups, the paper's protocol (JAX)")
    args = parser.parse_args(argv)
    if args.command == "scaling":
        from .scaling import measure

        print(measure(args.params, args.workers))
        return 0
    if args.command == "ab":
        from .runner import alternate

        settings = Settings(data_dir=args.data_dir, max_sequences=args.max_sequences, epochs=args.epochs,
                            quick=True)
        alternate(parse_pipelines(args.pipelines), settings, args.repeats)
        return 0
    from .profile import format_breakdown, step_breakdown

    print(format_breakdown(step_breakdown(vocab_size=args.vocab_size, steps=args.steps, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(module_main())
