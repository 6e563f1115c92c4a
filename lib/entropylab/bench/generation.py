"""``python -m entropylab bench generation``: continuing N validation prefixes by 10 words from a finished run,
one sequence at a time (one model call per word per sequence, as :func:`entropylab.decoding.continue_text` does)
against the batch (:func:`entropylab.decoding.continue_prefixes`: one model call per word for all of them).

The two are run alternately, ``repeats`` times each, in this process (the model loaded once, one warm-up call
each); the medians go to ``<outputs>/benchmarks/generation_<time>.csv``. Both give the same greedy words, which is
checked before timing. The goal of the decoding study: 1,000 continuations of 10 words in at most 10 s.

``--decoders`` times the decoders whose transforms order each row (``top_p``, ``typical_p``, Top-H, beam search) on
the batch two ways, alternated: sorting only each row's leading candidates
(:func:`entropylab.decoding.transforms.leading`, the default) and a full stable sort of every row
(``entropylab.decoding.transforms.PARTIAL_SORT = False``); both give the same words, which is checked. The medians
go to ``<outputs>/benchmarks/decoders_<time>.csv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths

GOAL_SECONDS = 10.0


def default_run(output_root: str | os.PathLike | None = None) -> Path:
    """The newest finished cross-entropy run of the paper's experiment (``make reproduce`` makes it)."""
    from ..experiments.results import find_run

    found = find_run("paper", output_root, loss="cross_entropy", dataset="nyt")
    if found is None:
        raise FileNotFoundError("no finished NYT cross-entropy run in <outputs>/runs/paper; run `make reproduce` "
                                "first or give one with --run outputs/runs/<experiment>/<run>")
    return found


def validation_contexts(run_dir: str | os.PathLike, prefixes: int) -> tuple[Any, Any, Any, np.ndarray]:
    """``(model, corpus, config, contexts)``: a finished run loaded and ``prefixes`` of its validation rows."""
    from ..metrics.generation import choose_prefixes
    from ..training.train import load_trained, run_split

    model, corpus, config = load_trained(run_dir)
    data = run_split(corpus, config)
    return model, corpus, config, data.x_val[choose_prefixes(len(data.y_val), prefixes, config.split_seed)]


def per_sequence(model: Any, contexts: np.ndarray, n_words: int, head: str) -> np.ndarray:
    """Greedy words of each row, one row at a time: ``len(contexts) * n_words`` model calls of batch 1."""
    from ..decoding import continue_prefixes

    return np.concatenate([continue_prefixes(model, row[None, :], n_words, head=head).words for row in contexts])


def batched(model: Any, contexts: np.ndarray, n_words: int, head: str) -> np.ndarray:
    """Greedy words of all rows at once: ``n_words`` model calls."""
    from ..decoding import continue_prefixes

    return continue_prefixes(model, contexts, n_words, head=head).words


def measure(run_dir: str | os.PathLike, prefixes: int = 1000, n_words: int = 10, repeats: int = 3,
            per_sequence_prefixes: int = 100) -> list[dict[str, Any]]:
    """Median seconds of both ways (the per-sequence one on ``per_sequence_prefixes`` rows, scaled linearly to
    ``prefixes``: it is ``prefixes * n_words`` identical batch-1 calls) and their words' agreement."""
    model, corpus, config, contexts = validation_contexts(run_dir, prefixes)
    few = contexts[:per_sequence_prefixes]
    if not np.array_equal(per_sequence(model, few, n_words, config.head), batched(model, few, n_words, config.head)):
        raise AssertionError("the batched greedy words differ from the per-sequence ones")
    times: dict[str, list[float]] = {"per_sequence": [], "batched": []}
    for _ in range(repeats):
        for name, rows in (("per_sequence", few), ("batched", contexts)):
            function = per_sequence if name == "per_sequence" else batched
            started = time.perf_counter()
            function(model, rows, n_words, config.head)
            times[name].append(time.perf_counter() - started)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    rows = []
    for name, seconds in times.items():
        measured = len(few) if name == "per_sequence" else len(contexts)
        median = statistics.median(seconds)
        rows.append({"way": name, "run": Path(run_dir).name, "vocab_size": corpus.vocab_size, "prefixes": len(contexts),
                     "words": n_words, "measured_prefixes": measured, "median_seconds_measured": median,
                     "seconds_for_prefixes": median * len(contexts) / measured,
                     "model_calls": (measured * n_words) if name == "per_sequence" else n_words,
                     "repeats": repeats, "goal_seconds": GOAL_SECONDS, "machine": machine})
    return rows


#: The decoders ``--decoders`` times, each at one setting: ``(decoder of entropylab.decoding.DECODERS, value)``.
ORDERING_DECODERS = (("top_p", 0.8), ("typical_p", 0.5), ("top_h", 0.4), ("beam", 4))


def measure_decoders(run_dir: str | os.PathLike, prefixes: int = 500, n_words: int = 10,
                     repeats: int = 2) -> list[dict[str, Any]]:
    """Median seconds of each of :data:`ORDERING_DECODERS` with partial and with full sorting (module docstring)."""
    from ..decoding import continue_prefixes, get_decoder, transforms
    model, corpus, config, contexts = validation_contexts(run_dir, prefixes)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    rows = []
    for decoder, value in ORDERING_DECODERS:
        name = f"{decoder} {value:g}"
        strategy, params = get_decoder(decoder).arguments(value)
        times: dict[bool, list[float]] = {True: [], False: []}
        words: dict[bool, np.ndarray] = {}
        try:
            for _ in range(repeats):
                for partial in (True, False):
                    transforms.PARTIAL_SORT = partial
                    started = time.perf_counter()
                    words[partial] = continue_prefixes(model, contexts, n_words, head=config.head, strategy=strategy,
                                                       seed=0, **params).words
                    times[partial].append(time.perf_counter() - started)
        finally:
            transforms.PARTIAL_SORT = True
        if not np.array_equal(words[True], words[False]):
            raise AssertionError(f"{name}: partial and full sorting gave different words")
        for partial in (True, False):
            rows.append({"decoder": name, "sorting": "leading candidates" if partial else "full",
                         "run": Path(run_dir).name, "vocab_size": corpus.vocab_size, "prefixes": len(contexts),
                         "words": n_words, "median_seconds": statistics.median(times[partial]), "repeats": repeats,
                         "machine": machine})
    return rows


def main(args: argparse.Namespace) -> int:
    """``entropylab bench generation`` (its options: :mod:`entropylab.cli`): measure and write the CSV."""
    import pandas as pd

    run_dir = Path(args.run) if args.run else default_run()
    folder = Path(args.output_dir) if args.output_dir else paths.outputs_dir() / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    if args.decoders:
        table = pd.DataFrame(measure_decoders(run_dir, min(args.prefixes, 500), args.words, args.repeats))
        path = folder / f"decoders_{time.strftime('%Y-%m-%d_%H%M%S')}.csv"
        columns = ["decoder", "sorting", "prefixes", "words", "median_seconds"]
    else:
        table = pd.DataFrame(measure(run_dir, args.prefixes, args.words, args.repeats, args.per_sequence_prefixes))
        path = folder / f"generation_{time.strftime('%Y-%m-%d_%H%M%S')}.csv"
        columns = ["way", "prefixes", "words", "model_calls", "seconds_for_prefixes", "goal_seconds"]
    table.to_csv(path, index=False)
    print(table[columns].to_string(index=False))
    print(f"written to {path}")
    return 0
