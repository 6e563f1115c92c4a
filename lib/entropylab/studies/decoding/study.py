"""The decoding study's middle stage, between its sweep (the models) and its report: find the models, hyperfit,
decode the grid (:mod:`.grid`) and collect the cells into ``<outputs>/results/<experiment>-generation.csv``,
``-examples.csv`` and ``-hyperfit.csv``; its own files go to the study folder ``<outputs>/studies/<experiment>/``.

``python -m entropylab reproduce --study decoding`` runs the sweep of ``params/decoding.yaml``, then this, then
``notebooks/08_decoding.ipynb``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import paths
from ...experiments.params import ParamsError
from ...experiments.results import results_path
from ...training import store
from .grid import HYPERFITTED, Job, run_jobs
from .spec import DecodingSpec, ModelSpec, read_spec, slug

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


def plan_jobs(plan: Any, spec: DecodingSpec) -> list[Job]:
    """Every job of the study (:class:`.grid.Job`): the models, the hyperfitted one and the references per setting,
    the NYT settings first (their jobs are the longest)."""
    settings = list(dict.fromkeys(setting_of(t.parameters) for t in plan.tasks))
    settings.sort(key=lambda s: not s.startswith("nyt"))
    root = study_dir(plan.experiment, plan.output_root)
    jobs: list[Job] = []
    for setting in settings:
        dataset = setting.split("/")[0]
        out = str(root / "cells" / setting.replace("/", "_"))
        models = [m for m in spec.models if m.dataset in (None, dataset)]
        if not models:
            raise ParamsError(f"{plan.params.path}: decoding.models: none applies to the setting {setting}; add one "
                              f"without 'dataset' or with dataset: {dataset}")
        if spec.hyperfit is not None and spec.hyperfit.model not in {m.name for m in models}:
            raise ParamsError(f"{plan.params.path}: decoding.hyperfit.model: {spec.hyperfit.model!r} is not a model "
                              f"of the setting {setting}; hyperfit a model that every setting has")
        runs = {m.name: find_run(plan, setting, m) for m in models}
        for model in models:
            if not store.is_complete(runs[model.name]):
                raise FileNotFoundError(f"{runs[model.name]} is not a finished run; run the study's sweep first "
                                        f"(python -m entropylab sweep {plan.params.path})")
            jobs.append(Job(setting, model.slug, "run", str(runs[model.name]), out, spec))
        if spec.hyperfit is not None:
            source = str(runs[spec.hyperfit.model])
            jobs.append(Job(setting, HYPERFITTED, "hyperfit", source, out, spec,
                            str(root / "hyperfit" / setting.replace("/", "_"))))
        base = str(runs[models[0].name])
        for reference in spec.references:
            if reference != "source" or dataset == "synthetic":
                jobs.append(Job(setting, reference, reference, base, out, spec))
    return jobs


def collect(experiment: str, output_root: str | os.PathLike | None = None,
            jobs: list[Job] | None = None) -> dict[str, Path]:
    """The cells, examples and hyperfitting histories of ``jobs`` (default: every file of the study folder), each
    gathered into one results CSV; the hyperfitting history carries the model it started from and its headlines."""
    root = study_dir(experiment, output_root)
    written = {}
    if jobs is None:
        every = sorted(root.glob("cells/*/*.csv"))
    else:
        every = [path for job in jobs for path in job.files() if path.suffix == ".csv" and path.is_file()]
    for name, is_examples in (("generation", False), ("examples", True)):
        files = [p for p in every if p.name.endswith("-examples.csv") == is_examples]
        if files:
            written[name] = results_path(f"{experiment}-{name}", output_root)
            store.write_csv(written[name], pd.concat([pd.read_csv(f) for f in files], ignore_index=True))
    histories = []
    for folder in sorted((root / "hyperfit").glob("*")):
        if store.is_complete(folder):
            history = pd.read_csv(folder / store.HISTORY)
            recipe = store.read_json(folder / "hyperfit.json")["identity"]["recipe"]
            history.insert(0, "setting", folder.name.replace("_", "/", 1))
            history.insert(1, "source_model", slug(recipe["model"]))
            history.insert(2, "headlines", recipe["headlines"])
            histories.append(history)
    if histories:
        written["hyperfit"] = results_path(f"{experiment}-hyperfit", output_root)
        store.write_csv(written["hyperfit"], pd.concat(histories, ignore_index=True))
    return written


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
    A model that reproduces the headlines it was fitted to shows it here; the other models are its baseline."""
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
        fitted = set(owners[fit_headlines(owners, spec.hyperfit.headlines)].tolist())
        cleaned = corpus.cleaned_texts()
        texts = {h: corpus.encode(cleaned[h], on_unknown="ignore") for h in set(owners.tolist())}
        known = {scope: {n: ngrams([texts[h] for h in heads], n) for n in COPY_ORDERS}
                 for scope, heads in (("fitted", fitted), ("train", set(texts)))}
        folder = root / "cells" / job.setting.replace("/", "_")
        for path in sorted(folder.glob("*-greedy.npy")):
            words = np.load(path)
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

    if waiting := busy():
        print(f"decoding: {len(waiting)} run(s) of {plan.params.path} are being trained by another sweep "
              f"(first: {waiting[0].name}); waiting for them", flush=True)
    while busy():
        time.sleep(LOCK_POLL_SECONDS)


def missing_cells(jobs: list[Job]) -> list[str]:
    """Per job whose cells file lacks some of its cells: ``"<setting> <model>: k of n cells"``."""
    from .grid import _key, _read_done, job_cells

    missing = []
    for job in jobs:
        done = _read_done(job.cells_csv)
        have = set() if done.empty else {_key(d, v, s) for d, v, s in
                                         zip(done["decoder"], done["value"], done["sampling_seed"], strict=True)}
        wanted = {_key(*cell) for cell in job_cells(job)}
        if not wanted <= have:
            missing.append(f"{job.setting} {job.model}: {len(wanted & have)} of {len(wanted)} cells")
    return missing


def read_status(experiment: str, output_root: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The stage's last :data:`STATUS` (``{"complete": bool, "missing": [...], "errors": [...]}``), if any."""
    path = study_dir(experiment, output_root) / STATUS
    return store.read_json(path) if path.is_file() else None


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
    print(f"decoding: {len(jobs)} models x settings, {len(spec.cells())} cells per model, "
          f"{spec.prefixes} prefixes x {spec.words} words, {spec.workers} at a time", flush=True)
    status = study_dir(plan.experiment, plan.output_root) / STATUS
    store.write_json(status, {"complete": False, "missing": [], "errors": [
        "the stage started and has not finished (it is running, or was stopped)"]})
    with _client(plan, spec.workers) as client:
        errors = run_jobs(jobs, spec.workers, client)
    for error in errors:
        print(f"decoding FAILED: {error}")
    collect(plan.experiment, plan.output_root, jobs)
    if spec.hyperfit is not None and not errors:
        store.write_csv(results_path(f"{plan.experiment}-copying", plan.output_root), copying(plan, spec, jobs))
    missing = missing_cells(jobs)
    store.write_json(status, {"complete": not errors and not missing, "missing": missing, "errors": errors})
    return len(errors) or len(missing)


__all__ = ["collect", "find_run", "missing_cells", "plan_jobs", "read_status", "run_stage", "slug", "stage_outputs",
           "study_dir", "wait_for_runs"]
