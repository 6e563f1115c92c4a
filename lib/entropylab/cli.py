"""Command line: ``python -m entropylab {train,decode,sweep,reproduce,bench,data,info} ...`` (``--help`` on each).

Nothing heavy is imported until a command runs (``--help`` answers without loading TensorFlow, Keras or pandas).
A mistake in the arguments or the input is one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import objectives
from .studies.reproduce import STUDIES
from .training.config import BACKENDS, DATASETS, INPUT_PIPELINES, SPLIT_MODES, RunConfig


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: ... (see prog --help)``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- train: one option per RunConfig field -------------------------------------------------------------------

#: What each :class:`~entropylab.training.config.RunConfig` field is, for ``train --help``. Every field gets an
#: option whether or not it is here (``--<field-name>``); the field's default is added unless the text names one.
FIELD_HELP: dict[str, str] = {
    "dataset": "the corpus: the NYT headlines, the seeded bigram world (synthetic) or the seeded topic source "
               "(hidden_state)",
    "data_dir": "folder with the Articles*.csv files (default: search)",
    "loss": "the objective (entropylab.objectives)",
    "weight": "the objective's parameter: a penalty weight, a smoothing amount or an exponent "
              "(default: the objective's own, e.g. 1 for an exponent)",
    "head": "the output head (default: the objective's)",
    "seed": "the model's seed (initialisation, batch order, dropout)",
    "split": "how the validation rows are held out: the last rows or whole headlines",
    "val_fraction": "the validation side's share of the sequences",
    "split_seed": "seed of the headline split (not of the model)",
    "embedding_dim": "width of the word embedding",
    "lstm_units": "units of the LSTM layer",
    "dropout": "dropout rate after the LSTM, in [0, 1)",
    "learning_rate": "Adam's learning rate",
    "max_sequences": "use only the first N sequences (default: all)",
    "jit_compile": "XLA compilation (--no-jit: off)",
    "backend": "the Keras backend; must be this process's (set KERAS_BACKEND before starting Python; "
               "default: $KERAS_BACKEND or tensorflow)",
    "threads": "TensorFlow threads per pool, 0: TensorFlow's default (default: $ENTROPYLAB_THREADS or 0)",
    "synthetic": "options of the synthetic or hidden_state corpus as a JSON object, e.g. '{\"n_headlines\": 500}'",
    "patience": "early stopping: stop after N epochs without a better validation cross-entropy "
                "(default: train every epoch)",
    "tuning": "train and validate on a carve of the training split (parameter tuning; the validation split is "
              "never touched)",
    "generation_prefixes": "validation prefixes continued for the generation metrics (0: none)",
    "input_pipeline": "where the training batches come from (default: tf.data on TensorFlow, numpy on JAX)",
    "init_nudge_ulps": "move each initial weight this many float32 steps up or down (a stand-in for another "
                       "CPU's rounding; default: $ENTROPYLAB_INIT_NUDGE_ULPS or 0)",
    "test_fraction": "the test side's share, read once after training (0: none; then validation is reported, "
                     "else validation is the dev side every choice is made on)",
}
#: Shorter spellings of some fields' options (``--jit`` and ``--no-jit`` for ``jit_compile``).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {"jit_compile": ("--jit",)}


def _field_choices() -> dict[str, tuple[str, ...]]:
    """The fields whose values are names of a table (read from the table, never typed here)."""
    heads = tuple(sorted({objective.head for objective in objectives.OBJECTIVES.values()}))
    return {"dataset": DATASETS, "loss": tuple(objectives.names()), "head": heads, "split": SPLIT_MODES,
            "backend": BACKENDS, "input_pipeline": INPUT_PIPELINES}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"n_headlines\": 500}}', got {text!r}")
    return value


def _value_parser(name: str, annotation: Any) -> Callable[[str], Any]:
    """How the option of the field ``name`` reads its text, from the field's annotation (``int | None``: also
    ``none``); an annotation this cannot read is an error at start-up, so a new field cannot be forgotten."""
    text = str(annotation)
    optional = text.endswith(" | None")
    base = text.removesuffix(" | None")
    readers: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "dict[str, Any]": _json_object}
    parse = readers.get(base)
    if parse is None:
        raise TypeError(f"RunConfig.{name} has the type {text!r}, which entropylab.cli cannot read; teach "
                        f"_value_parser that type")
    if not optional:
        return parse

    def parse_or_none(value: str) -> Any:
        return None if value.lower() in ("none", "null") else parse(value)

    parse_or_none.__name__ = f"{base} (or none)"
    return parse_or_none


def _field_default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default is dataclasses.MISSING else field.default  # type: ignore[misc]


def train_option(name: str) -> str:
    """The option of the RunConfig field ``name``: ``--batch-size`` for ``batch_size``."""
    return "--" + name.replace("_", "-")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run and save it in a run folder",
                       description="Train one run of the paper's LSTM and save its folder "
                                   "(config.json, history.csv, metrics.json, weights, COMPLETE). "
                                   "An option per field of entropylab.training.config.RunConfig.")
    choices = _field_choices()
    for field in dataclasses.fields(RunConfig):
        flags = (train_option(field.name), *FIELD_ALIASES.get(field.name, ()))
        help_text = FIELD_HELP.get(field.name, field.name.replace("_", " "))
        default = _field_default(field)
        if "default" not in help_text and default is not None:
            help_text += f" (default: {default})"
        if str(field.type) == "bool":
            p.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_text)
            continue
        p.add_argument(*flags, dest=field.name, type=_value_parser(field.name, field.type),
                       choices=choices.get(field.name), default=argparse.SUPPRESS, help=help_text,
                       metavar=None if field.name in choices else field.name.upper())
    p.add_argument("--output", default=None,
                   help="experiment folder; the run goes in a sub-folder (default: <outputs>/runs/cli)")
    p.add_argument("--force", action="store_true", help="retrain even if the run folder is complete")


def train_config(args: argparse.Namespace) -> RunConfig:
    """The run ``train`` asked for: the fields given, RunConfig's defaults for the others, and for ``weight`` the
    default of the chosen objective (:attr:`entropylab.objectives.Objective.default`), not RunConfig's 0."""
    defaults = {field.name: _field_default(field) for field in dataclasses.fields(RunConfig)}
    values = {name: getattr(args, name) for name in defaults if hasattr(args, name)}
    values.setdefault("weight", objectives.get(values.get("loss", defaults["loss"])).default)
    return RunConfig.from_dict(values)


# -- decode: the decoding modules are used only in this section -----------------------------------------------

def decoder_table() -> dict[str, Any]:
    """The decoders by name (:data:`entropylab.decoding.DECODERS`): ``--decoder``'s choices and ranges."""
    from .decoding import DECODERS

    return DECODERS


def continue_rows(model: Any, contexts: Any, n_words: int, *, head: str, decoder: str, value: float | None,
                  seed: int) -> Any:
    """Word ids (one row of ``n_words`` per row of ``contexts``) by ``decoder`` at ``value``, sampling seeded by
    ``seed`` (:func:`entropylab.decoding.continue_prefixes`)."""
    from .decoding import continue_prefixes

    strategy, params = decoder_table()[decoder].arguments(value)
    return continue_prefixes(model, contexts, n_words, head=head, strategy=strategy, seed=seed, **params).words


def check_decoder_value(decoder: str, value: float | None) -> None:
    """A ``ValueError`` naming the fix when ``value`` is outside ``decoder``'s range (the registry's own check,
    :func:`entropylab.decoding.check_decoder`), not a whole number where one is needed, or given to greedy."""
    from .decoding import check_decoder

    if decoder not in decoder_table():
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(decoder_table())}")
    control = decoder_table()[decoder]
    if value is None:
        return
    if control.parameter is None:
        raise ValueError(f"the decoder {decoder!r} takes no --value; leave it out")
    if control.integer and not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"{decoder}: --value ({control.parameter}) must be a whole number, got {value:g}")
    strategy, params = control.arguments(value)
    try:
        check_decoder(strategy, **params)
    except ValueError as error:
        raise ValueError(f"{decoder}: --value {error}") from None


def _decoder_ranges() -> str:
    from .decoding.registry import get_strategy, parameters_of

    parts = []
    for name, control in decoder_table().items():
        if control.parameter is None:
            parts.append(name)
            continue
        allowed = next(p.allowed for p in parameters_of(get_strategy(control.strategy)) if p.name == control.parameter)
        parts.append(f"{name} ({control.parameter} {allowed}, default {control.default:g})")
    return "; ".join(parts)


def _add_decode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="print continuations from a finished run",
                       description="Continue a text (--prefix) or N validation prefixes of the run's own split "
                                   "(--prefixes, the generation metrics' choice of rows) with a decoder. "
                                   f"Decoders and their --value: {_decoder_ranges()}.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (outputs/runs/<experiment>/<run>)")
    p.add_argument("--decoder", choices=tuple(decoder_table()), default="greedy", help="default: greedy")
    p.add_argument("--value", type=float, default=None, help="the decoder's parameter (default: the decoder's)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--prefix", default=None, metavar="TEXT", help="continue this text")
    which.add_argument("--prefixes", type=int, default=None, metavar="N",
                       help="continue N validation prefixes of the run's split (the default, with N = 5)")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed (default: 0)")
    p.add_argument("--words", type=int, default=10, help="words per continuation (default: 10)")


def decode(run_dir: str | Path, decoder: str = "greedy", value: float | None = None, *, prefix: str | None = None,
           prefixes: int | None = None, seed: int = 0, words: int = 10) -> tuple[str, list[tuple[str, list[str]]]]:
    """``(heading, [(prefix text, continuation words), ...])`` from the finished run in ``run_dir``.

    Every argument is checked before the model is loaded; a mistake is a one-line ``ValueError`` (a folder that
    holds no finished run: ``FileNotFoundError``)."""
    check_decoder_value(decoder, value)
    for name, number, low in (("--words", words, 1), ("--prefixes", prefixes, 1), ("--seed", seed, 0)):
        if number is not None and number < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {number}")
    if prefix is not None and not prefix.strip():
        raise ValueError("--prefix is empty; give at least one word to continue (e.g. --prefix 'New York')")
    from .training import store

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no folder {run_dir}; give a run folder such as outputs/runs/<experiment>/<run>")
    if not store.is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no finished run (no {store.COMPLETE} marker); train it first")
    from .data import clean_headline, tokenize
    from .training.train import load_run_corpus, load_trained, run_split

    corpus = load_run_corpus(RunConfig.from_dict(store.read_json(run_dir / store.CONFIG)))
    if prefix is not None:
        unknown = [w for w in tokenize(clean_headline(prefix)) if w not in corpus.word_index]
        if unknown:
            examples = ", ".join(word for word, _ in sorted(corpus.word_index.items(), key=lambda kv: kv[1])[:5])
            raise ValueError(f"--prefix: {', '.join(map(repr, unknown))} not in the run's {corpus.name} vocabulary; "
                             f"use its words (the most frequent: {examples})")
    model, corpus, config = load_trained(run_dir, corpus=corpus)
    if prefix is not None:
        contexts = corpus.pad(corpus.encode(prefix))
    else:
        from .metrics.generation import choose_prefixes

        data = run_split(corpus, config)
        contexts = data.x_val[choose_prefixes(len(data.y_val), prefixes or 5, config.split_seed)]
    ids = continue_rows(model, contexts, words, head=config.head, decoder=decoder, value=value, seed=seed)
    rows = [(" ".join(corpus.decode(context)), [w.title() for w in corpus.decode(row)])
            for context, row in zip(contexts, ids, strict=True)]
    heading = (f"{run_dir.name}: {objectives.get(config.loss).describe(config.weight)}, decoder "
               f"{decoder_table()[decoder].describe(value)}, seed {seed}, {words} words")
    return heading, rows


# -- the other commands ---------------------------------------------------------------------------------------

def _add_sweep(sub: argparse._SubParsersAction) -> None:
    from .experiments.params import ENGINES

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
    p.add_argument("--engine", default=None, choices=ENGINES,
                   help="fused: train runs that differ only in seed, weight and objective family as one program (JAX; "
                        "for a GPU); pool: worker processes; auto (default, or the file's engine): fused where "
                        "JAX sees a GPU")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the naive Keras pipeline against ours (or, mode generation, decoding; "
                                     "mode overhead, a run's phases)",
                       description="Without MODE: train the paper's model once per pipeline and compare their "
                                   "time and memory (docs/performance.md). MODE generation: time continuing "
                                   "validation prefixes of a finished run (see `entropylab bench generation --help`). "
                                   "MODE overhead: where a run's time goes (see `entropylab bench overhead --help`).")
    p.add_argument("--quick", action="store_true", help="a few thousand sequences: minutes, for development")
    p.add_argument("--epochs", type=int, default=None, help="epochs per pipeline (default: 2; 3 with --quick)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--pipelines", default=None, help="comma-separated subset of the pipelines to measure")
    p.add_argument("--output-dir", default=None, help="default: <outputs>/benchmarks")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=False)
    g = modes.add_parser("generation", help="continuing validation prefixes one by one against the batch "
                                            "(--decoders: partial against full sorting)",
                         description="Continue N validation prefixes of a finished run by --words words one sequence "
                                     "at a time and as one batch, alternately, and write the medians to "
                                     "<outputs>/benchmarks/generation_<time>.csv (the goal: 1,000 continuations of "
                                     "10 words in 10 s). --decoders: time the decoders that order each row (top_p, "
                                     "typical_p, top_h, beam) sorting only the leading candidates against a full "
                                     "sort, to <outputs>/benchmarks/decoders_<time>.csv.")
    g.add_argument("--run", default=None, help="a finished run folder (default: the paper's cross-entropy run)")
    g.add_argument("--prefixes", type=int, default=1000, help="validation prefixes continued (default: 1000)")
    g.add_argument("--words", type=int, default=10, help="words per continuation (default: 10)")
    g.add_argument("--repeats", type=int, default=3, help="timings of each way (default: 3)")
    g.add_argument("--per-sequence-prefixes", type=int, default=100,
                   help="rows the per-sequence loop really runs (its time is scaled to --prefixes; default: 100)")
    g.add_argument("--output-dir", default=None, help="default: <outputs>/benchmarks")
    g.add_argument("--decoders", action="store_true",
                   help="time the ordering decoders with partial against full sorting instead (500 prefixes at most)")
    o = modes.add_parser("overhead", help="where one run's time goes, outside its epochs and inside them",
                         description="Execute the first --runs grid points of PARAMS as a sweep does (a worker "
                                     "process and a papermill notebook each, then the results collected) in a "
                                     "temporary outputs folder, cut each run's wall time into phases (process and "
                                     "kernel start, imports, data, model build, each epoch, validation, references, "
                                     "generation metrics, writing, collection) and write the medians to "
                                     "<outputs>/benchmarks/overhead_<time>.csv (docs/performance.md).")
    o.add_argument("params", help="a parameter file of training notebooks, e.g. params/overhead.yaml")
    o.add_argument("--runs", type=int, default=3, help="grid points executed, the first ones (default: 3)")
    o.add_argument("--output-dir", default=None, help="default: <outputs>/benchmarks")


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="a study's whole protocol and its report (`make reproduce`: the paper's)")
    p.add_argument("--output-root", default=None, help="outputs folder (default: $ENTROPYLAB_OUTPUTS or outputs)")
    studies = "; ".join(f"{name}: {params.as_posix()}, then {', '.join(notebooks)}"
                        for name, (params, notebooks) in STUDIES.items())
    p.add_argument("--study", default="paper", choices=tuple(STUDIES), help=f"default: paper. {studies}")
    p.add_argument("--params", default=None, help="another parameter file of the study (e.g. its smoke file)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="entropylab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_decode(sub)
    _add_sweep(sub)
    _add_bench(sub)
    p = sub.add_parser("data", help="download the NYT Articles*.csv files with kagglehub")
    p.add_argument("--dest", default="data/nyt-comments")
    _add_reproduce(sub)
    p = sub.add_parser("info", help="print the corpus summary (the loader's regression numbers)")
    p.add_argument("--dataset", choices=DATASETS, default="nyt")
    p.add_argument("--data-dir", default=None)
    return parser


def _train(args: argparse.Namespace) -> int:
    from . import paths
    from .training import run

    config = train_config(args)
    run_dir = Path(args.output or paths.runs_dir("cli")) / config.run_name
    result = run(config, run_dir, force=args.force, verbose=2)
    print(result.history.to_string(index=False))
    print(f"{result.status}: {run_dir}" + (" (already finished, reused)" if result.reused else ""))
    return 0 if result.status == "complete" else 1


def _decode(args: argparse.Namespace) -> int:
    heading, rows = decode(args.run_dir, args.decoder, args.value, prefix=args.prefix, prefixes=args.prefixes,
                           seed=args.seed, words=args.words)
    print(heading)
    for number, (prefix, words) in enumerate(rows, 1):
        print(f"{number}. {prefix} [{' '.join(words)}]")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        return _train(args)
    if args.command == "decode":
        return _decode(args)
    if args.command == "sweep":
        from .experiments.sweep import main as sweep_main

        return sweep_main(args)
    if args.command == "bench" and args.mode == "overhead":
        from .bench.overhead import main as overhead_main

        return overhead_main(args)
    if args.command == "bench" and args.mode == "generation":
        from .bench.generation import main as generation_main

        return generation_main(args)
    if args.command == "bench":
        from .bench.runner import main as bench_main

        return bench_main(args)
    if args.command == "data":
        from .data.download import download_nyt

        print(download_nyt(args.dest))
        return 0
    if args.command == "reproduce":
        from .studies.reproduce import main as reproduce_main

        try:
            return reproduce_main(args.output_root, args.study, args.params)
        except KeyboardInterrupt:  # its runs and steps are stopped; what they finished is kept
            print("reproduce stopped; run the same command again to finish it (finished runs and cells are kept)",
                  file=sys.stderr)
            return 130
    if args.command == "info":
        from .data import load_corpus

        print(json.dumps(load_corpus(args.dataset, args.data_dir).summary(), indent=2))
        return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # str() of a KeyError is its repr: print the message itself
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written: one line with the path and the fix
        from .experiments.execute import write_error
        from .paths import outputs_dir

        where = getattr(args, "output", None) or (outputs_dir(args.output_root) if hasattr(args, "output_root")
                                                  else "the outputs folder")
        print(f"error: {write_error(exc, where)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
