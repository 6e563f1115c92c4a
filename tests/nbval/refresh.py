"""Regenerate the nbval reference notebooks (``make nbval-refresh``).

Executes ``notebooks/00..04`` and ``06`` in order with papermill on the smoke profile (the ``defaults`` and
``threads`` of ``params/smoke.yaml``: a few hundred sequences, 1 epoch, XLA off, 1 TensorFlow thread; experiment
``smoke``) into a fresh temporary outputs folder, once per corpus: the NYT headlines (references in
``tests/nbval/nyt/``, checked where the NYT files are) and the project's synthetic corpus (``tests/nbval/synthetic/``,
checked where they are not, so a fresh clone checks its notebooks too). Each executed notebook keeps only the
outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` (the ones nbval compares in ``--nbval-lax`` mode). Figures,
logs and paths of the other cells are dropped, so the references hold nothing machine-specific and no figure of
the data.

``python tests/nbval/refresh.py [NAME ...] [--dataset nyt|synthetic]`` refreshes only the named notebooks (e.g.
``04_predictions``) of one corpus (default: both, or only the synthetic one without the NYT files), but executes
every notebook before them too, since later notebooks read the runs of earlier ones (except the
:data:`INDEPENDENT` ones, such as the objectives study's training notebook, which read none).

Checked cells must not depend on the last digits of one CPU: every notebook is executed a second time with every
run's initial weights nudged by :data:`entropylab.analysis.checked.ROBUSTNESS_NUDGE_ULPS` float32 steps (a stand-in
for another CPU model's rounding), and a reference whose checked cells change under the nudge is not written (the
lines that moved are printed; exit status 1). ``--no-robustness-check`` skips that second pass.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOTEBOOKS = ("00_data", "01_control", "02_entropy_regularization", "03_kl_regularization", "04_predictions",
             "06_results", "07_objectives_train")
#: Notebooks that read no earlier notebook's runs: refreshing one of them executes only itself.
INDEPENDENT = ("07_objectives_train",)
#: Parameters of the smoke profile that only some notebooks have.
EXTRA_PARAMETERS = {"07_objectives_train": {"generation_prefixes": 20, "patience": 1}}
CHECK_MARKER = "NBVAL_CHECK_OUTPUT"
CHECK_TAG = "nbval-check-output"
NUDGE_ENV_VAR = "ENTROPYLAB_INIT_NUDGE_ULPS"  # entropylab.training.config.NUDGE_ENV_VAR
FALLBACK_SMOKE = {"epochs": 1, "batch_size": 32, "split": "tail", "seed": 0, "max_sequences": 400,
                  "jit_compile": False}


def _smoke_file() -> dict:
    import yaml

    path = ROOT / "params" / "smoke.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


DATASETS = ("nyt", "synthetic")


def smoke_parameters(dataset: str = "nyt") -> dict:
    """The smoke profile: ``params/smoke.yaml``'s defaults, experiment ``smoke``, the given dataset."""
    defaults = {**FALLBACK_SMOKE, **(_smoke_file().get("defaults") or {})}
    return {**defaults, "experiment": "smoke", "dataset": dataset}


def smoke_threads() -> int:
    """TensorFlow threads per run (``params/smoke.yaml``'s ``threads``, else 1): the numbers depend on the thread
    count, so the references and every nbval run use the same, whatever the machine's cores."""
    return int(_smoke_file().get("threads") or 1)


def is_checked(cell: dict) -> bool:
    """A cell whose outputs nbval compares (comment marker or tag); ``cell`` is a notebook cell (a dict)."""
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    marked = any(line.strip().lstrip("#").strip() == CHECK_MARKER for line in source.splitlines()
                 if line.strip().startswith("#"))
    return marked or CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def strip(notebook, name: str):
    """Keep only the checked cells' outputs; drop papermill's timings; refuse stderr or errors in checked cells."""
    checked = 0
    for cell in notebook.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"  # papermill draws a random id: keep the diffs of a refresh quiet
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            checked += 1
            bad = [o for o in cell.outputs if o.output_type == "error"
                   or (o.output_type == "stream" and o.name == "stderr")]
            if bad:
                raise SystemExit(f"{name}: a checked cell wrote to stderr or failed; fix the notebook so that its "
                                 f"checked cells print only results:\n{cell.source}\n{bad}")
        else:
            cell.outputs = []
            cell.execution_count = None
    if "papermill" in notebook.metadata:
        notebook.metadata["papermill"] = {"parameters": notebook.metadata["papermill"].get("parameters", {})}
    if not checked:
        print(f"  warning: {name} has no cell marked # {CHECK_MARKER}; nbval will only check that it runs")
    return notebook


def main(argv: list[str]) -> int:
    flags = {"--no-robustness-check"}
    names = [a for a in argv if not a.startswith("--dataset") and a not in flags]
    chosen = [a.split("=", 1)[1] for a in argv if a.startswith("--dataset=")]
    unknown = [n for n in names if n not in NOTEBOOKS] + [d for d in chosen if d not in DATASETS]
    if unknown:
        print(f"unknown notebook(s) or dataset(s) {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)} and "
              f"--dataset={'|'.join(DATASETS)}", file=sys.stderr)
        return 2
    from entropylab.data import find_nyt_dir

    datasets = chosen or [d for d in DATASETS if d != "nyt" or find_nyt_dir(None) is not None]
    if "nyt" in datasets and find_nyt_dir(None) is None:
        print("the NYT references need the NYT files (see the README's data section)", file=sys.stderr)
        return 2
    fragile = 0
    for dataset in datasets:
        fragile += refresh(names, dataset, check="--no-robustness-check" not in argv)
    return 1 if fragile else 0


def execute_chain(chain: list[str], wanted: set[str], dataset: str, nudge_ulps: int = 0) -> dict:
    """Execute the notebooks of ``chain`` in order on the smoke profile of ``dataset`` in a fresh outputs folder,
    every run's initial weights nudged by ``nudge_ulps``; returns the stripped executed notebooks of ``wanted``."""
    import nbformat
    import papermill

    smoke = smoke_parameters(dataset)
    folder = HERE / dataset
    outputs = Path(tempfile.mkdtemp(prefix="entropylab-nbval-"))
    os.environ.update({"ENTROPYLAB_OUTPUTS": str(outputs), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0",
                       "ENTROPYLAB_THREADS": str(smoke_threads()), NUDGE_ENV_VAR: str(nudge_ulps)})
    os.environ.pop("MPLBACKEND", None)
    label = f", initial weights nudged by {nudge_ulps} ulps" if nudge_ulps else ""
    print(f"smoke profile {smoke}, {smoke_threads()} TensorFlow thread(s){label}; outputs in {outputs}")
    executed: dict = {}
    try:
        for name in chain:
            source = ROOT / "notebooks" / f"{name}.ipynb"
            if not source.is_file():
                print(f"  {name}: not in notebooks/, skipped")
                executed[name] = None
                continue
            declared = papermill.inspect_notebook(str(source))
            parameters = {k: v for k, v in {**smoke, **EXTRA_PARAMETERS.get(name, {})}.items() if k in declared}
            started = time.perf_counter()
            notebook = papermill.execute_notebook(str(source), None, parameters=parameters, cwd=str(folder),
                                                  kernel_name="python3", progress_bar=False, log_output=False)
            print(f"  {name}: executed ({time.perf_counter() - started:.0f} s)")
            if name in wanted:
                executed[name] = strip(nbformat.from_dict(notebook), name)
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
        os.environ.pop(NUDGE_ENV_VAR, None)
    return executed


def checked_outputs(notebook) -> list[str]:
    """The text of every checked cell's outputs, in order."""
    texts = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and is_checked(cell):
            texts.append("".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs))
    return texts


def fragile_lines(reference, nudged) -> list[str]:
    """The checked lines that differ between the reference run and the nudged one (``-`` reference, ``+`` nudged)."""
    import difflib

    found = []
    for index, (a, b) in enumerate(zip(checked_outputs(reference), checked_outputs(nudged), strict=True)):
        if a != b:
            diff = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            found += [f"checked cell {index + 1}: {line}" for line in diff if line[:1] in "+-"
                      and not line.startswith(("+++", "---"))]
    return found


def refresh(names: list[str], dataset: str, check: bool = True) -> int:
    """Execute the notebooks on the smoke profile of ``dataset`` and write the references of ``names`` (all).

    With ``check``, execute them a second time with every run's initial weights nudged by
    :data:`entropylab.analysis.checked.ROBUSTNESS_NUDGE_ULPS` (a stand-in for another CPU's rounding) and write
    only the references whose checked cells do not change; returns how many notebooks were refused."""
    import nbformat

    from entropylab.analysis.checked import ROBUSTNESS_NUDGE_ULPS

    wanted = set(names or NOTEBOOKS)
    last = max((NOTEBOOKS.index(n) for n in wanted if n not in INDEPENDENT), default=-1)
    chain = [n for i, n in enumerate(NOTEBOOKS) if n in wanted or (i <= last and n not in INDEPENDENT)]
    references = execute_chain(chain, wanted, dataset)
    nudged = execute_chain(chain, wanted, dataset, ROBUSTNESS_NUDGE_ULPS) if check else {}
    refused = 0
    for name, notebook in references.items():
        target = HERE / dataset / f"{name}.ipynb"
        if notebook is None:
            target.unlink(missing_ok=True)
            continue
        fragile = fragile_lines(notebook, nudged[name]) if check else []
        if fragile:
            refused += 1
            print(f"  {name}: NOT written: a checked cell changes when the initial weights move by "
                  f"{ROBUSTNESS_NUDGE_ULPS} ulps (print it coarser, or show it in an unchecked cell; "
                  f"entropylab.analysis.checked):\n    " + "\n    ".join(fragile), file=sys.stderr)
            continue
        partial = target.with_suffix(".ipynb.tmp")
        nbformat.write(notebook, str(partial))
        os.replace(partial, target)
        print(f"  {name}: {target.relative_to(ROOT)}" + (" (robust to the nudge)" if check else ""))
    return refused


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
