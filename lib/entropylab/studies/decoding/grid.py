"""The decoding grid: every model of every setting continued by every decoder cell, measured, written, resumable.

A **job** is one model of one data setting (a finished run of the study's sweep, the hyperfitted model, or a
reference: the unigram and bigram count models of the run's training split and, on the synthetic corpus, the
source itself). It loads the model once and picks its prefixes per **side** (:func:`job_sides`): a run with a test
side (``test_fraction > 0``) has two, ``prefixes`` rows of the **dev** side (``x_val``: every choice of the report,
such as a decoder's matched diversity level, is made on it) and ``prefixes`` rows of the **test** side (``x_test``:
what the report's tables show); a run without one has one side, ``validation``, as before. Each side's rows are
:func:`entropylab.metrics.generation.choose_prefixes` of that side's size with the split seed (the same rows for
every model of a setting). For each cell ``(decoder, value, sampling seed)`` of :meth:`DecodingSpec.cells` and each
side it generates ``words`` words for all of the side's prefixes in one batch
(:func:`entropylab.decoding.continue_prefixes`) and measures (:func:`cell_metrics`); each row of the cells file has
its ``side``:

* ``distinct_1``, ``distinct_2``, ``repeat`` (share of continuations with a repeated word) and ``repetition``
  (mean share of repeated words), ``zipf`` (Zipf coefficient of the generated words), ``word_entropy`` (entropy
  of their frequencies, nats: the diversity axis), ``js_heldout`` (Jensen-Shannon divergence in bits between the
  generated words' frequencies and the same side's next words, ``y_val`` or ``y_test``:
  :mod:`entropylab.metrics.generation`);
* ``surprisal_mean`` and ``surprisal_std``: mean and standard deviation over all generated words of the model's
  own surprisal ``-ln p(w_i | context)`` (nats, unfiltered ``p``);
* on the synthetic corpus, the source's law ``q`` of each word: ``impossible`` (share of the words the source cannot
  emit, ``q = 0``), ``possible_loglik`` (mean ``ln q`` over the words it can emit: the quality axis of the tables)
  and ``true_loglik`` (mean ``ln max(q, 1e-10)`` over all words, kept for continuity; no longer an axis: its floor
  term was most of it) (:mod:`entropylab.metrics.generation`).

Each job writes ``<study folder>/cells/<setting>/<model>.csv`` whole after every cell (atomically), so a killed
study resumes without redoing finished cells (a cell is ``(side, decoder, value, sampling seed)``: a dev cell is
never taken for a test cell), plus the greedy words of the **reported** side (:func:`reported_side`: test, or
validation without a test side; ``<model>-greedy.npy``, for the paired repetition test of the report) and
``<model>-examples.csv`` (continuations of the paper's six seed texts, or the first two words of six held-out
headlines of the reported side on the synthetic corpus, by each decoder at its middle value, seed 0; none for the
hyperfitted model on NYT, whose continuations recite the headlines it was fitted to). The hyperfitted model's
per-epoch validation measures use the dev side's prefix rows.
Jobs run ``workers`` at a time, each in a process of its own under its own lock (:func:`run_jobs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...decoding import DECODERS, GREEDY
from ...training import store
from .spec import DecodingSpec, HyperfitSpec

CELL_KEYS = ("side", "decoder", "value", "sampling_seed")
#: The sides a cell is decoded on: dev and test for a run with a test side, else validation alone.
DEV, TEST, VALIDATION = "dev", "test", "validation"
HYPERFITTED = "hyperfitted"
N_EXAMPLES = 6
#: The version of the decoders' and cell metrics' definitions, part of a job's identity: raised whenever one changes
#: (2: Top-H and the ties at the top as published, the Zipf coefficient by maximum likelihood; 3: the quality column
#: ``possible_loglik``, mean ``ln q`` over the words the source can emit, beside ``impossible`` and ``true_loglik``;
#: 4: cells carry a side, dev and test prefixes for a run with a test side, each side's own held-out words),
#: so that a study never mixes cells of two definitions.
DEFINITIONS = 4


@dataclass(frozen=True)
class Job:
    """One model of one setting to decode: ``kind`` is ``run``, ``hyperfit`` (from ``run_dir``) or a reference
    (``unigram``, ``bigram``, ``source``, built from ``run_dir``'s data)."""

    setting: str
    model: str
    kind: str
    run_dir: str
    out_dir: str
    spec: DecodingSpec
    hyperfit_dir: str | None = None

    @property
    def cells_csv(self) -> Path:
        return Path(self.out_dir) / f"{self.model}.csv"

    @property
    def identity(self) -> dict[str, Any]:
        """What the job's cells depend on besides the cell itself: the model (its run folder, for the hyperfitted
        one its recipe too), the prefixes, the words and the :data:`DEFINITIONS` of the decoders and metrics. Cells
        of another identity are never reused."""
        from dataclasses import asdict

        recipe = asdict(self.spec.hyperfit) if self.kind == "hyperfit" and self.spec.hyperfit else None
        return {"kind": self.kind, "run": Path(self.run_dir).name, "hyperfit": recipe,
                "prefixes": self.spec.prefixes, "words": self.spec.words, "definitions": DEFINITIONS}

    @property
    def identity_json(self) -> Path:
        return Path(self.out_dir) / f"{self.model}.identity.json"

    def files(self) -> list[Path]:
        """Every file the job writes beside its identity: cells, greedy words, examples."""
        out = Path(self.out_dir)
        return [self.cells_csv, out / f"{self.model}-greedy.npy", out / f"{self.model}-examples.csv"]


def sides_of(has_test: bool) -> tuple[str, ...]:
    """The sides a job decodes: ``(dev, test)`` with a test side, else ``(validation,)``."""
    return (DEV, TEST) if has_test else (VALIDATION,)


def reported_side(sides: Iterable[str]) -> str:
    """The side the report reads: test where there is one, else validation."""
    return TEST if TEST in tuple(sides) else VALIDATION


def job_sides(job: Job) -> tuple[str, ...]:
    """The sides of ``job`` from its run's config (read only, no data loaded): :func:`sides_of` its
    ``test_fraction > 0``; validation alone when the config is absent or unreadable (the job itself then fails on
    it, naming the file)."""
    try:
        fraction = store.read_json(Path(job.run_dir) / store.CONFIG).get("test_fraction", 0.0)
    except (OSError, ValueError, AttributeError):
        fraction = 0.0
    return sides_of(float(fraction or 0.0) > 0)


def side_rows(data: Any, prefixes: int, seed: int) -> dict[str, np.ndarray]:
    """Per side of ``data`` (:func:`sides_of`), its prefix rows: ``choose_prefixes`` of that side's size."""
    from ...metrics.generation import choose_prefixes

    if not data.has_test:
        return {VALIDATION: choose_prefixes(len(data.y_val), prefixes, seed)}
    return {DEV: choose_prefixes(len(data.y_val), prefixes, seed),
            TEST: choose_prefixes(len(data.y_test), prefixes, seed)}


def side_data(data: Any, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, index into the capped corpus)`` of one side of ``data``: test, or dev/validation (``x_val``)."""
    if side == TEST:
        return data.x_test, data.y_test, data.test_index
    return data.x_val, data.y_val, data.val_index


def cell_metrics(words: np.ndarray, surprisal: np.ndarray, heldout: np.ndarray,
                 true_probability: np.ndarray | None = None) -> dict[str, float]:
    """The metrics of one cell (module docstring) from its words (``B x n``), their surprisal under the model and
    the held-out word distribution ``heldout``."""
    from ...metrics.generation import (
        distinct_n,
        js_divergence,
        possible_log_likelihood,
        repeat_fraction,
        repetition,
        true_log_likelihood,
        word_entropy,
        word_frequencies,
        zipf_coefficient,
    )

    frequencies = word_frequencies(words, len(heldout))
    row = {"distinct_1": distinct_n(words, 1), "distinct_2": distinct_n(words, 2), "repeat": repeat_fraction(words),
           "repetition": repetition(words), "zipf": zipf_coefficient(words), "word_entropy": word_entropy(frequencies),
           "js_heldout": js_divergence(frequencies, heldout), "surprisal_mean": float(np.mean(surprisal)),
           "surprisal_std": float(np.std(surprisal))}
    if true_probability is not None:
        row["true_loglik"], row["impossible"] = true_log_likelihood(true_probability)
        row["possible_loglik"] = possible_log_likelihood(true_probability)
    return row


def seed_texts(corpus: Any, dataset: str, val_headlines: Iterable[int]) -> list[str]:
    """The paper's six seed texts on NYT; else the first two words of the first six of ``val_headlines`` (the
    held-out headlines of the reported side)."""
    from ..paper.reported import PAPER_SEED_TEXTS

    if dataset == "nyt":
        return list(PAPER_SEED_TEXTS)
    texts: list[str] = []
    cleaned = corpus.cleaned_texts()
    for h in dict.fromkeys(int(i) for i in val_headlines):
        text = " ".join(cleaned[h].split()[:2])
        if text and text not in texts:
            texts.append(text)
        if len(texts) == N_EXAMPLES:
            break
    return texts


def _load(job: Job) -> tuple[Any, str, Any, Any, Any, dict[str, np.ndarray]]:
    """``(model, head, corpus, config, split, prefix rows per side)`` of a job (:func:`side_rows`); the hyperfitted
    model is measured on the dev (or validation) side's rows."""
    from ...metrics.kneser_ney import best_order_model
    from ...metrics.references import CountModel, SourceModel
    from ...training import load_trained
    from ...training.train import run_split

    model, corpus, config = load_trained(job.run_dir)
    data = run_split(corpus, config)
    rows = side_rows(data, job.spec.prefixes, config.split_seed)
    head = config.head
    if job.kind == "hyperfit":
        from .hyperfit import hyperfit

        recipe = job.spec.hyperfit
        assert isinstance(recipe, HyperfitSpec)
        dev_rows = rows[DEV if data.has_test else VALIDATION]
        model, _ = hyperfit(job.run_dir, recipe, job.hyperfit_dir or "", dev_rows, (model, corpus, config, data))
    elif job.kind in ("unigram", "bigram"):
        model, head = CountModel(data.y_train, data.x_train, corpus.vocab_size, 1 if job.kind == "unigram" else 2), \
            "softmax"
    elif job.kind == "kneser_ney":  # the order chosen on dev (on a carve of training for a two-sided run)
        model, _ = best_order_model(data.y_train, data.x_train, corpus.vocab_size, carve=config.split,
                                    heldout=(data.y_val, data.x_val) if data.has_test else None)
        head = "softmax"
    elif job.kind == "source":
        model, head = SourceModel(corpus.true_next), "softmax"
    return model, head, corpus, config, data, rows


def _read_done(path: Path) -> pd.DataFrame:
    """A job's finished cells; none when its file is absent or damaged (cut, changed: it is redone, not trusted)."""
    if not path.is_file():
        return pd.DataFrame()
    try:
        return store.read_csv(path, fix="its cells are decoded again")
    except store.DamagedFileError as exc:
        print(exc, flush=True)
        return pd.DataFrame()


def _key(side: Any, decoder: str, value: Any, seed: Any) -> tuple[str, str, float, int]:
    """A cell's key ``(side, decoder, value, seed)``; a side that is missing (a cells file from before sides: NaN)
    is validation."""
    number = float(value) if value is not None and not (isinstance(value, float) and np.isnan(value)) else -1.0
    side = VALIDATION if side is None or (isinstance(side, float) and np.isnan(side)) else str(side)
    return side, str(decoder), round(number, 12), int(seed)


def _record_key(record: dict[str, Any]) -> tuple[str, str, float, int]:
    return _key(record.get("side"), record["decoder"], record["value"], record["sampling_seed"])


def job_cells(job: Job) -> list[tuple[str, float | None, int]]:
    """The cells of a job: every decoder for a trained or hyperfitted model, ancestral sampling for a reference."""
    if job.kind in ("run", "hyperfit"):
        return job.spec.cells()
    return [("temperature", 1.0, seed) for seed in job.spec.sampling_seeds]


def job_keys(job: Job, sides: Iterable[str] | None = None) -> set[tuple[str, str, float, int]]:
    """The keys of every cell of ``job`` on every side (``sides``, by default :func:`job_sides`)."""
    return {_key(side, *cell) for side in (job_sides(job) if sides is None else sides) for cell in job_cells(job)}


def _reusable_cells(job: Job) -> pd.DataFrame:
    """The job's finished cells that may be kept: all of them when its identity file matches the job's (or, for a
    cells file written before identity files, when its prefixes and words match); otherwise every file of the
    job is removed and nothing is kept. The identity file is then (re)written."""
    done = _read_done(job.cells_csv)
    try:
        stored = store.read_json(job.identity_json) if job.identity_json.is_file() else None
    except store.DamagedFileError as exc:  # cut: whose cells they are is unknown, so they are decoded again
        print(f"{exc.path} is damaged ({exc.what}); the cells of {job.setting} {job.model} are decoded again",
              flush=True)
        stored = {"damaged": True}
    same = stored == job.identity if stored is not None else (
        len(done) > 0 and set(done["prefixes"]) == {job.spec.prefixes} and set(done["words"]) == {job.spec.words})
    if not same:
        for path in job.files():
            path.unlink(missing_ok=True)
        done = pd.DataFrame()
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    store.write_json(job.identity_json, job.identity)
    return done


def decode_job(job: Job) -> str:
    """Run every unfinished cell of ``job`` (module docstring); returns the cells CSV's path."""
    from ...decoding import continue_prefixes
    from ...metrics.generation import word_frequencies

    model, head, corpus, config, data, rows = _load(job)
    sides = tuple(rows)
    reported = reported_side(sides)
    contexts, heldout = {}, {}
    for side in sides:
        x, y, _ = side_data(data, side)
        contexts[side], heldout[side] = x[rows[side]], word_frequencies(y, corpus.vocab_size)
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = _reusable_cells(job)
    cells = job_cells(job)
    wanted = job_keys(job, sides)
    records = [r for r in done.to_dict("records") if _record_key(r) in wanted]
    if read_words(out_dir / f"{job.model}-greedy.npy", job.spec.words) is None:  # absent or damaged: greedy again
        records = [r for r in records if not (r["decoder"] == GREEDY and _record_key(r)[0] == reported)]
    finished = {_record_key(r) for r in records}
    for number, (decoder, value, seed) in enumerate(cells, start=1):
        for side in sides:  # each cell on every side in turn: a resumed job may hold a cell on dev and not on test
            if _key(side, decoder, value, seed) in finished:
                continue
            strategy, params = DECODERS[decoder].arguments(value)
            started = time.perf_counter()
            result = continue_prefixes(model, contexts[side], job.spec.words, head=head, strategy=strategy,
                                       seed=seed, true_next=corpus.true_next, **params)
            row = {"setting": job.setting, "model": job.model, "kind": job.kind, "side": side, "decoder": decoder,
                   "value": np.nan if value is None else float(value), "sampling_seed": seed,
                   "prefixes": len(rows[side]), "words": job.spec.words,
                   **cell_metrics(result.words, result.surprisal, heldout[side], result.true_probability),
                   "seconds": time.perf_counter() - started}
            if decoder == GREEDY and side == reported:
                _save_words(out_dir / f"{job.model}-greedy.npy", result.words)
            records.append(row)
            store.write_csv(job.cells_csv, pd.DataFrame(records), checked=True)
            print(f"{job.setting} {job.model}: cell {number}/{len(cells)} {side} {decoder} "
                  f"{'' if value is None else f'{value:g} '}seed {seed} in {row['seconds']:.1f} s", flush=True)
    if job.kind in ("run", "hyperfit"):
        held_out = side_data(data, reported)[2]
        _examples(job, model, head, corpus, corpus.subset(config.max_sequences).headline_index[held_out])
    return str(job.cells_csv)


def read_words(path: Path, words: int | None = None, *, fix: str | None = None) -> np.ndarray | None:
    """The greedy words saved in ``path`` (prefixes x ``words``); ``None`` when it is absent or damaged (cut, not an
    array of that many words per prefix), or with ``fix`` a :class:`~entropylab.training.store.DamagedFileError`
    naming it and ``fix`` when it is damaged."""
    if not path.is_file():
        return None
    try:
        array = np.load(path)
        if array.ndim != 2 or (words is not None and array.shape[1] != words):
            raise ValueError(f"an array of shape {array.shape}, not prefixes x {words or 'words'}")
    except (OSError, ValueError, EOFError) as exc:
        if fix is None:
            return None
        raise store.DamagedFileError(path, " ".join(str(exc).split()) or type(exc).__name__, fix) from None
    return array


def _save_words(path: Path, words: np.ndarray) -> None:
    """``words`` as int32 in ``path``, written beside it first and renamed over it; nothing partial is left when the
    write fails (a full disk), and the error names ``path``."""
    partial = path.with_name(f".{path.stem}.partial.npy")
    try:
        np.save(partial, words.astype(np.int32))
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise store.naming_path(exc, path) from exc


def _middle_values(job: Job) -> list[tuple[str, float | None]]:
    """Each decoder of the job's spec at its middle value (the examples' settings)."""
    return [(d, values[len(values) // 2] if values else None) for d, values in job.spec.decoders.items()]


def _examples_written(path: Path, middle: list[tuple[str, float | None]]) -> bool:
    """Whether ``path`` holds the examples of exactly these decoder settings (a damaged file does not)."""
    if not path.is_file():
        return False
    written = _read_done(path)  # empty when damaged: written again
    return not written.empty and {_key(None, d, v, 0) for d, v in zip(written["decoder"], written["value"],
                                                                       strict=True)} \
        == {_key(None, d, v, 0) for d, v in middle}


def done_cells(job: Job) -> set[tuple[str, str, float, int]]:
    """The keys ``(side, decoder, value, seed)`` of the cells in the job's cells file (none when it is absent or
    damaged; a file without a ``side`` column holds validation cells)."""
    done = _read_done(job.cells_csv)
    return set() if done.empty else {_record_key(r) for r in done.to_dict("records")}


def job_is_finished(job: Job) -> bool:
    """Whether every file of ``job`` is there and of its identity (read only, no model loaded): the identity file,
    every cell, the greedy words that load, the examples and, for the hyperfitted model, its finished folder. A
    finished job is not started again (a second run of a study then costs no process per job)."""
    try:
        if not job.identity_json.is_file() or store.read_json(job.identity_json) != job.identity:
            return False
    except store.DamagedFileError:
        return False
    cells = job_cells(job)
    if not job_keys(job) <= done_cells(job):
        return False
    out = Path(job.out_dir)
    if any(decoder == GREEDY for decoder, _, _ in cells):
        try:
            np.load(out / f"{job.model}-greedy.npy")
        except (OSError, ValueError):
            return False
    if job.kind == "hyperfit" and not store.is_complete(job.hyperfit_dir or ""):
        return False
    if job.kind in ("run", "hyperfit") and not (job.kind == "hyperfit" and job.setting.startswith("nyt")):
        return _examples_written(out / f"{job.model}-examples.csv", _middle_values(job))
    return True


def _examples(job: Job, model: Any, head: str, corpus: Any, val_owners: np.ndarray) -> None:
    """Continuations of the seed texts by each decoder at its middle value, sampling seed 0; ``val_owners`` are the
    headlines of the reported side's rows (the synthetic corpus's seed texts are drawn from them)."""
    import warnings

    from ...decoding import continue_prefixes

    if job.kind == "hyperfit" and corpus.true_next is None:
        return  # on NYT it recites the headlines it was fitted to, and no text of the data goes into the project
    path = Path(job.out_dir) / f"{job.model}-examples.csv"
    middle = _middle_values(job)
    if _examples_written(path, middle):
        return
    texts = seed_texts(corpus, "nyt" if corpus.true_next is None else "synthetic", val_owners)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        contexts = np.concatenate([corpus.pad(corpus.encode(t)) for t in texts])
    rows = []
    for decoder, value in middle:
        strategy, params = DECODERS[decoder].arguments(value)
        words = continue_prefixes(model, contexts, job.spec.words, head=head, strategy=strategy,
                                  seed=job.spec.sampling_seeds[0], **params).words
        for text, ids in zip(texts, words, strict=True):
            rows.append({"setting": job.setting, "model": job.model, "decoder": decoder,
                         "value": np.nan if value is None else float(value), "seed_text": text,
                         "continuation": " ".join(corpus.index_word.get(int(i), "") for i in ids)})
    store.write_csv(path, pd.DataFrame(rows), checked=True)


def job_step(job: Job) -> Any:
    """The job as a step of the study (:class:`entropylab.experiments.steps.Step`): :func:`decode_job` under the
    lock ``<cells folder>/.<model>.lock``, on the Keras backend its model was trained on (so hyperfitting and
    decoding run where the training did)."""
    from ...experiments.steps import Step
    from ...training import store

    try:
        backend = store.read_json(Path(job.run_dir) / store.CONFIG).get("backend")
    except (OSError, ValueError, AttributeError):  # the job itself then fails on it, with the file named
        backend = None
    return Step(f"{job.setting} {job.model}", str(Path(job.out_dir) / f".{job.model}.lock"),
                "entropylab.studies.decoding.grid:decode_job", job, {"KERAS_BACKEND": backend} if backend else {})


def run_jobs(jobs: list[Job], workers: int, client: Any = None) -> list[str]:
    """Every job, each in a process of its own, ``workers`` at a time (on ``client``'s Dask cluster when given),
    with the study steps' guarantees (:mod:`entropylab.experiments.steps`: a lock per job, a killed job fails
    alone, no process outlives the study); a job whose files are all there (:func:`job_is_finished`) is not
    started. The failed jobs' errors (the others go on)."""
    from ...experiments.steps import run_steps

    def report(outcome: Any) -> None:
        if outcome.status == "done":
            print(f"decoded {outcome.name}", flush=True)

    todo = []
    for job in jobs:
        if job_is_finished(job):
            print(f"{job.setting} {job.model}: every cell done, kept", flush=True)
        else:
            todo.append(job)
    outcomes = run_steps([job_step(job) for job in todo], workers, client, report)
    return [f"{o.name}: {o.error}" for o in outcomes if o.status != "done"]
