"""The decoding study's middle stage, between its sweep (the models) and its report: find the models, hyperfit,
decode the grid (:mod:`.grid`) and collect the cells into ``<outputs>/results/<experiment>-generation.csv``,
``-examples.csv`` and ``-hyperfit.csv``; its own files go to the study folder ``<outputs>/studies/<experiment>/``.

``python -m entropylab reproduce --study decoding`` runs the sweep of ``params/decoding.yaml``, then this, then
``notebooks/08_decoding.ipynb``. What can be checked without a trained model (:func:`check_stage`: the section,
each model one run of the file, ``prefixes`` and ``hyperfit.headlines`` within the runs' splits) is checked
before the sweep, and by ``sweep FILE --dry-run``.

A run with a test side (``test_fraction > 0``) is decoded on ``prefixes`` rows of each of its dev and test sides
(:mod:`.grid`); the report chooses on dev (a decoder's matched diversity level) and reports test (:mod:`.tables`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import paths
from ...experiments.params import ParamsError
from ...experiments.results import results_path
from ...training import store
from .grid import HYPERFITTED, Job, read_words, run_jobs
from .spec import ALL, RERUN, DecodingSpec, ModelSpec, read_spec, slug

OBJECTIVE_WEIGHT_TOLERANCE = 1e-9


def study_dir(experiment: str, output_root: str | os.PathLike | None = None) -> Path:
    """``<outputs>/studies/<experiment>/``: the decoding study's own files."""
    return paths.outputs_dir(output_root) / "studies" / experiment


def setting_of(parameters: dict[str, Any]) -> str:
    return f"{parameters['dataset']}/{parameters['split']}"


def find_run(plan: Any, setting: str, model: ModelSpec) -> Path:
    """The run folder of ``model`` in ``setting`` among the plan's tasks; a clear error when it is not there."""
    found = []
    for task in plan.tasks:
        p = task.parameters
        if setting_of(p) != setting or p["loss"] != model.loss or p.get("seed", 0) != model.seed:
            continue
        if model.weight is not None and abs(float(p.get("weight", 0.0)) - model.weight) > OBJECTIVE_WEIGHT_TOLERANCE:
            continue
        found.append(Path(task.run_dir))
    if len(found) > 1:
        raise ParamsError(f"{plan.params.path}: decoding.models: {model.name!r} matches {len(found)} runs of {setting} "
                          f"({', '.join(f.name for f in found)}); give its weight")
    if found:
        return found[0]
    raise ParamsError(f"{plan.params.path}: decoding.models: no run of {setting} trains {model.loss}"
                      + (f" weight {model.weight:g}" if model.weight is not None else "") + f" seed {model.seed}; "
                      f"add it to the file's runs")


@dataclass(frozen=True)
class SplitSizes:
    """What a run's data split holds: its validation (dev) rows, its test rows (0 without a test side; ``prefixes``
    is at most the smaller side's rows) and the distinct headlines of its training side (the most
    ``hyperfit.headlines``)."""

    validation_rows: int
    training_headlines: int
    test_rows: int = 0

    @property
    def prefix_rows(self) -> int:
        """The most ``prefixes`` a job of this run may ask for per side: its smallest decoded side's rows."""
        return min(self.validation_rows, self.test_rows) if self.test_rows else self.validation_rows


def split_sizes(parameters: dict[str, Any], corpora: dict[str, Any] | None = None) -> SplitSizes:
    """The :class:`SplitSizes` of the run a task's ``parameters`` configure (its config and data split only: no
    trained model is needed); ``corpora`` caches the loaded corpora between calls."""
    from ...experiments.params import SWEEP_OWNED
    from ...training.config import RunConfig
    from ...training.train import load_run_corpus, run_split

    config = RunConfig.from_dict({k: v for k, v in parameters.items() if k not in SWEEP_OWNED})
    corpora = {} if corpora is None else corpora
    key = json.dumps([config.dataset, config.data_dir, config.synthetic], sort_keys=True, default=str)
    if key not in corpora:
        corpora[key] = load_run_corpus(config)
    corpus = corpora[key]
    data = run_split(corpus, config)
    owners = corpus.subset(config.max_sequences).headline_index[data.train_index]
    return SplitSizes(len(data.y_val), len(np.unique(owners)), len(data.y_test) if data.has_test else 0)


def _tuned_later(plan: Any, setting: str, model: ModelSpec) -> bool:
    """Whether a tuned entry of the plan's file may add ``model``'s run to ``setting`` once its tuning has run."""
    dataset, split = setting.split("/")
    return any(p.parameters["loss"] == model.loss and p.parameters["split"] == split
               and p.parameters["dataset"] in ("auto", dataset) for p in plan.params.tuning_points)


def match_runs(plan: Any, spec: DecodingSpec, *, before_tuning: bool = False
               ) -> dict[str, tuple[list[ModelSpec], dict[str, Path]]]:
    """Per setting of the plan (the NYT settings first: their jobs are the longest), its models and each one's run
    folder (:func:`find_run`); a :class:`ParamsError` when a setting has no model, lacks the hyperfitted model or a
    model matches no run or several. Nothing needs to be trained: with ``before_tuning``, a model that a tuned entry
    of the file may still add is left out instead of refused."""
    settings = list(dict.fromkeys(setting_of(t.parameters) for t in plan.tasks))
    settings.sort(key=lambda s: not s.startswith("nyt"))
    matched = {}
    for setting in settings:
        dataset = setting.split("/")[0]
        models = [m for m in spec.models if m.dataset in (None, dataset)]
        if not models:
            raise ParamsError(f"{plan.params.path}: decoding.models: none applies to the setting {setting}; add one "
                              f"without 'dataset' or with dataset: {dataset}")
        if spec.hyperfit is not None and spec.hyperfit.model not in {m.name for m in models}:
            raise ParamsError(f"{plan.params.path}: decoding.hyperfit.model: {spec.hyperfit.model!r} is not a model "
                              f"of the setting {setting}; hyperfit a model that every setting has")
        runs = {}
        for model in models:
            try:
                runs[model.name] = find_run(plan, setting, model)
            except ParamsError:
                if not (before_tuning and _tuned_later(plan, setting, model)):
                    raise
        matched[setting] = (models, runs)
    return matched


def check_sizes(plan: Any, spec: DecodingSpec, matched: dict[str, tuple[list[ModelSpec], dict[str, Path]]]
                ) -> dict[Path, SplitSizes]:
    """The :class:`SplitSizes` of every matched run; a :class:`ParamsError` naming the most there are per setting
    when ``prefixes`` is more than a setting's validation rows or ``hyperfit.headlines`` more than the training
    headlines of the run it fits (never capped silently: ``all`` asks for every one). With a test side,
    ``prefixes`` is per side, so at most the smaller of its dev and test rows."""
    by_dir = {Path(task.run_dir): task for task in plan.tasks}
    corpora: dict[str, Any] = {}
    sizes = {run: split_sizes(by_dir[run].parameters, corpora) for _, runs in matched.values() for run in runs.values()}
    limits: dict[str, dict[str, int]] = {"prefixes": {}, "hyperfit.headlines": {}}
    for setting, (_, runs) in matched.items():
        if runs:
            limits["prefixes"][setting] = min(sizes[run].prefix_rows for run in runs.values())
        if spec.hyperfit is not None and spec.hyperfit.model in runs:
            limits["hyperfit.headlines"][setting] = sizes[runs[spec.hyperfit.model]].training_headlines
    asked = {"prefixes": spec.prefixes, "hyperfit.headlines": spec.hyperfit.headlines if spec.hyperfit else None}
    what = {"prefixes": "held-out rows of a side (validation, or the smaller of dev and test)",
            "hyperfit.headlines": "training headlines"}
    for key, wanted in asked.items():
        over = {setting: most for setting, most in limits[key].items() if wanted is not None and wanted > most}
        if over:
            raise ParamsError(
                f"{plan.params.path}: decoding.{key}: got {wanted}, more than the {what[key]} there are ("
                + ", ".join(f"{most} in {setting}" for setting, most in over.items())
                + f"); give at most {min(limits[key].values())}, or {ALL} for all the {what[key]} of each setting")
    return sizes


def resolve(spec: DecodingSpec, sizes: SplitSizes) -> DecodingSpec:
    """``spec`` with ``all`` (None) replaced by the numbers of a run's split, so that a job's identity and what it
    records say the number used (with a test side, :attr:`SplitSizes.prefix_rows`, the smaller side's rows: the
    most a number may ask for, so that ``all`` and that number are the same job)."""
    hyperfit = spec.hyperfit
    if hyperfit is not None and hyperfit.headlines is None:
        hyperfit = dataclasses.replace(hyperfit, headlines=sizes.training_headlines)
    prefixes = sizes.prefix_rows if spec.prefixes is None else spec.prefixes
    return dataclasses.replace(spec, prefixes=prefixes, hyperfit=hyperfit)


def check_stage(plan: Any) -> DecodingSpec:
    """Every check of :func:`run_stage` that needs no trained model, for before the study's sweep: the file's
    ``decoding`` section (:func:`read_spec`), each model matching exactly one run of the plan, the hyperfitted
    model in every setting, and ``prefixes`` and ``hyperfit.headlines`` within the runs' data splits."""
    spec = read_spec(plan.params)
    check_sizes(plan, spec, match_runs(plan, spec, before_tuning=True))
    return spec


def plan_jobs(plan: Any, spec: DecodingSpec) -> list[Job]:
    """Every job of the study (:class:`.grid.Job`): the models, the hyperfitted one and the references per setting,
    the NYT settings first (their jobs are the longest). Each job's spec has ``all`` resolved to its run's split
    (:func:`resolve`)."""
    matched = match_runs(plan, spec)
    sizes = check_sizes(plan, spec, matched)
    root = study_dir(plan.experiment, plan.output_root)
    jobs: list[Job] = []
    for setting, (models, runs) in matched.items():
        dataset = setting.split("/")[0]
        out = str(root / "cells" / setting.replace("/", "_"))
        for model in models:
            if not store.is_complete(runs[model.name]):
                raise FileNotFoundError(f"{runs[model.name]} is not a finished run; run the study's sweep first "
                                        f"(python -m entropylab sweep {plan.params.path})")
            run = runs[model.name]
            jobs.append(Job(setting, model.slug, "run", str(run), out, resolve(spec, sizes[run])))
        if spec.hyperfit is not None:
            source = runs[spec.hyperfit.model]
            jobs.append(Job(setting, HYPERFITTED, "hyperfit", str(source), out, resolve(spec, sizes[source]),
                            str(root / "hyperfit" / setting.replace("/", "_"))))
        base = runs[models[0].name]
        for reference in spec.references:
            if reference != "source" or dataset == "synthetic":
                jobs.append(Job(setting, reference, reference, str(base), out, resolve(spec, sizes[base])))
    return jobs


def collect(experiment: str, output_root: str | os.PathLike | None = None,
            jobs: list[Job] | None = None) -> dict[str, Path]:
    """The cells, examples and hyperfitting histories of ``jobs`` (default: every file of the study folder), each
    gathered into one results CSV; the hyperfitting history carries the model it started from and its headlines.
    With ``jobs``, a results CSV that they have nothing for is removed (a model or a hyperfitting since taken out of
    the file must not stay in the report)."""
    root = study_dir(experiment, output_root)
    written = {}
    fits = None if jobs is None else {Path(j.hyperfit_dir).resolve() for j in jobs
                                      if j.kind == "hyperfit" and j.hyperfit_dir}
    if jobs is None:
        every = sorted(root.glob("cells/*/*.csv"))
    else:
        every = [path for job in jobs for path in job.files() if path.suffix == ".csv" and path.is_file()]
    for name, is_examples in (("generation", False), ("examples", True)):
        files = [p for p in every if p.name.endswith("-examples.csv") == is_examples]
        if files:
            written[name] = results_path(f"{experiment}-{name}", output_root)
            store.write_csv(written[name], pd.concat([store.read_csv(f, fix=RERUN) for f in files],
                                                     ignore_index=True), checked=True)
    histories = []
    for folder in sorted((root / "hyperfit").glob("*")):
        if store.is_complete(folder) and (fits is None or folder.resolve() in fits):
            history = store.read_csv(folder / store.HISTORY, fix=RERUN)
            recipe = store.read_json(folder / "hyperfit.json")["identity"]["recipe"]
            history.insert(0, "setting", folder.name.replace("_", "/", 1))
            history.insert(1, "source_model", slug(recipe["model"]))
            history.insert(2, "headlines", recipe["headlines"])
            histories.append(history)
    if histories:
        written["hyperfit"] = results_path(f"{experiment}-hyperfit", output_root)
        store.write_csv(written["hyperfit"], pd.concat(histories, ignore_index=True), checked=True)
    if jobs is not None:
        for name in ("generation", "examples", "hyperfit"):
            if name not in written:
                remove_table(results_path(f"{experiment}-{name}", output_root))
    return written


def remove_table(path: Path) -> None:
    """Remove a results CSV and its checksum, if there."""
    path.unlink(missing_ok=True)
    store.checksum_path(path).unlink(missing_ok=True)


#: The n-gram orders of the copying table.
COPY_ORDERS = (2, 4)


def ngrams(rows: Any, n: int) -> set[tuple[int, ...]]:
    """Every ``n``-gram of word ids (padding 0 excluded) within each row of ``rows``."""
    grams = set()
    for row in rows:
        words = [int(w) for w in row if w != 0]
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams


def copy_share(words: Any, known: set[tuple[int, ...]], n: int) -> float:
    """The share of the ``n``-grams of the continuations ``words`` (counted with repeats) found in ``known``."""
    grams = [tuple(int(w) for w in row[i:i + n]) for row in words for i in range(len(row) - n + 1)]
    return sum(g in known for g in grams) / len(grams) if grams else float("nan")


def copying(plan: Any, spec: DecodingSpec, jobs: list[Job]) -> pd.DataFrame:
    """Per setting and model, how much of its greedy text is copied: the share of its word ``n``-grams
    (:data:`COPY_ORDERS`) that occur in the hyperfitting headlines and in any headline of the training split.
    A model that reproduces the headlines it was fitted to shows it here; the other models are its baseline. Only the
    models of ``jobs`` count (the greedy words of a model since removed from the file may still be in its folder)."""
    from ...training.config import RunConfig
    from ...training.train import load_run_corpus, run_split
    from .hyperfit import fit_headlines

    rows = []
    root = study_dir(plan.experiment, plan.output_root)
    for job in jobs:
        if job.kind != "hyperfit":
            continue
        config = RunConfig.from_dict(store.read_json(Path(job.run_dir) / store.CONFIG))
        corpus = load_run_corpus(config)
        data = run_split(corpus, config)
        owners = corpus.subset(config.max_sequences).headline_index[data.train_index]
        assert job.spec.hyperfit is not None
        fitted = set(owners[fit_headlines(owners, job.spec.hyperfit.headlines)].tolist())
        cleaned = corpus.cleaned_texts()
        texts = {h: corpus.encode(cleaned[h], on_unknown="ignore") for h in set(owners.tolist())}
        known = {scope: {n: ngrams([texts[h] for h in heads], n) for n in COPY_ORDERS}
                 for scope, heads in (("fitted", fitted), ("train", set(texts)))}
        folder = root / "cells" / job.setting.replace("/", "_")
        models = {j.model for j in jobs if j.setting == job.setting and j.kind in ("run", "hyperfit")}
        greedy = [folder / f"{model}-greedy.npy" for model in models]  # not a model the file no longer has
        for path in sorted((p for p in greedy if p.is_file()), key=lambda p: p.name):
            words = read_words(path, fix=RERUN)
            row: dict[str, Any] = {"setting": job.setting, "model": path.name.removesuffix("-greedy.npy")}
            for scope in known:
                for n in COPY_ORDERS:
                    row[f"{scope}_{n}gram_share"] = copy_share(words, known[scope][n], n)
            rows.append(row)
    return pd.DataFrame(rows)


#: The stage's record of its last pass, beside its files: whether every job finished, and what is missing.
STATUS = "status.json"


def wait_for_runs(plan: Any) -> None:
    """Wait while another sweep trains a run of ``plan`` (its run lock is held and the run is unfinished): two
    studies started together share the training, and the second decodes the models once the first has made them."""
    from ...experiments.execute import LOCK
    from ...experiments.steps import LOCK_POLL_SECONDS, is_locked

    def busy() -> list[Path]:
        return [Path(t.run_dir) for t in plan.tasks
                if not store.is_complete(t.run_dir) and is_locked(Path(t.run_dir) / LOCK)]

    def holder(run_dir: Path) -> str:
        with contextlib.suppress(OSError):
            return (run_dir / LOCK).read_text().strip() or "?"
        return "?"

    if waiting := busy():  # no time limit (a run may train for hours): the line says who holds it and how to stop
        print(f"decoding: {len(waiting)} run(s) of {plan.params.path} are being trained by another sweep "
              f"(first: {waiting[0].name}, whose lock process {holder(waiting[0])} holds); waiting for them "
              f"(Ctrl-C stops waiting; the same command later goes on from there)", flush=True)
    while busy():
        time.sleep(LOCK_POLL_SECONDS)


def missing_cells(jobs: list[Job]) -> list[str]:
    """Per job whose cells file lacks some of its cells (a cell on each of its sides):
    ``"<setting> <model>: k of n cells"``."""
    from .grid import done_cells, job_keys

    missing = []
    for job in jobs:
        have = done_cells(job)
        wanted = job_keys(job)
        if not wanted <= have:
            missing.append(f"{job.setting} {job.model}: {len(wanted & have)} of {len(wanted)} cells")
    return missing


def read_status(experiment: str, output_root: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The stage's last :data:`STATUS` (``{"complete": bool, "missing": [...], "errors": [...]}``), if any."""
    path = study_dir(experiment, output_root) / STATUS
    return store.read_json(path) if path.is_file() else None


def stage_not_run(plan: Any, reasons: list[str]) -> None:
    """Record in the stage's :data:`STATUS` that it did not run this time (``reasons``: its sweep's failed runs), so
    that a report made from the files of an earlier pass says on its first line that it is incomplete."""
    status = study_dir(plan.experiment, plan.output_root) / STATUS
    store.write_json(status, {"complete": False, "missing": [],
                              "errors": [f"the stage did not run: {reason}" for reason in reasons]
                              or ["the stage did not run: the study's sweep failed"]})


def stage_outputs(plan: Any) -> list[Path]:
    """Every file the stage writes that the report reads: the collected results CSVs, the saved greedy words and
    the stage's status (what a report's fingerprint covers, with the parameter file)."""
    root = study_dir(plan.experiment, plan.output_root)
    names = ("generation", "examples", "hyperfit", "copying")
    return [results_path(f"{plan.experiment}-{name}", plan.output_root) for name in names] + \
        sorted(root.glob("cells/*/*-greedy.npy")) + [root / STATUS]


def _client(plan: Any, workers: int) -> Any:
    """The Dask cluster of the file's ``cluster`` key, as a context manager (``None`` without one)."""
    import contextlib

    cluster = getattr(plan.params, "cluster", None)
    if not cluster:
        return contextlib.nullcontext(None)
    from ...experiments.engines import dask_client

    return dask_client(None if cluster == "local" else cluster, workers)


def run_stage(plan: Any) -> int:
    """Decode every job of ``plan``'s file (each in a process of its own under its lock:
    :func:`.grid.run_jobs`) and collect the results; the number of failed jobs. The stage's :data:`STATUS` says
    whether every cell of every job is there, and which are missing."""
    spec = read_spec(plan.params)
    wait_for_runs(plan)
    jobs = plan_jobs(plan, spec)
    prefixes = spec.prefixes if spec.prefixes is not None else \
        f"{ALL} ({', '.join(sorted({f'{j.spec.prefixes} in {j.setting}' for j in jobs}))})"
    print(f"decoding: {len(jobs)} models x settings, {len(spec.cells())} cells per model, "
          f"{prefixes} prefixes x {spec.words} words, {spec.workers} at a time", flush=True)
    status = study_dir(plan.experiment, plan.output_root) / STATUS
    store.write_json(status, {"complete": False, "missing": [], "errors": [
        "the stage started and has not finished (it is running, or was stopped)"]})
    with _client(plan, spec.workers) as client:
        errors = run_jobs(jobs, spec.workers, client)
    for error in errors:
        print(f"decoding FAILED: {error}")
    collect(plan.experiment, plan.output_root, jobs)
    copying_csv = results_path(f"{plan.experiment}-copying", plan.output_root)
    if spec.hyperfit is not None and not errors:
        store.write_csv(copying_csv, copying(plan, spec, jobs), checked=True)
    else:  # never an earlier pass's table (of a hyperfitting since changed or taken out of the file)
        remove_table(copying_csv)
    missing = missing_cells(jobs)
    store.write_json(status, {"complete": not errors and not missing, "missing": missing, "errors": errors})
    return len(errors) or len(missing)


__all__ = ["SplitSizes", "check_sizes", "check_stage", "collect", "find_run", "match_runs", "missing_cells",
           "plan_jobs", "read_status", "resolve", "run_stage", "slug", "split_sizes", "stage_not_run", "stage_outputs",
           "study_dir", "wait_for_runs"]
