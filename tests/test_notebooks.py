"""The report notebooks and their nbval references stay in step (no execution here: nbval does that)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBVAL = ROOT / "tests" / "nbval"
REPORT_NOTEBOOKS = {
    "00_data.ipynb": {"experiment", "dataset", "data_dir", "output_root", "val_fraction", "split_seed"},
    "04_predictions.ipynb": {"experiment", "seed", "epochs", "batch_size", "split", "val_fraction", "split_seed",
                             "learning_rate", "max_sequences", "dataset", "data_dir", "output_root", "jit_compile"},
    "06_results.ipynb": {"experiment", "dataset", "data_dir", "output_root"},
}


def _refresh_module():
    spec = importlib.util.spec_from_file_location("nbval_refresh", NBVAL / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("name", sorted(REPORT_NOTEBOOKS))
def test_report_notebooks_have_their_parameters_and_no_outputs(name):
    from papermill import inspect_notebook

    from entropylab.studies.reproduce import REPORT_PARAMETERS

    path = ROOT / "notebooks" / name
    declared = set(inspect_notebook(str(path)))
    assert declared == REPORT_NOTEBOOKS[name]
    assert set(REPORT_PARAMETERS) <= declared  # make reproduce passes these
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert not [c for c in code if c.get("outputs") or c.get("execution_count")], "commit notebooks without outputs"
    checked = [c for c in code if "# NBVAL_CHECK_OUTPUT" in _source(c)]
    assert checked, "mark the cells whose outputs matter with # NBVAL_CHECK_OUTPUT"
    for cell in checked:  # checked cells print plain text only: no figures, no paths
        assert not re.search(r"plt\.|show\(|display\(|save_figure", _source(cell)), _source(cell)


@pytest.mark.parametrize("dataset", ["nyt", "synthetic"])
def test_nbval_references_match_the_notebooks(dataset):
    """A notebook edited without `make nbval-refresh` would leave nbval checking the old code."""
    refresh = _refresh_module()
    for name in refresh.NOTEBOOKS:
        source, reference = ROOT / "notebooks" / f"{name}.ipynb", NBVAL / dataset / f"{name}.ipynb"
        if not source.is_file():
            assert not reference.is_file(), f"{reference} has no notebook any more; run `make nbval-refresh`"
            continue
        assert reference.is_file(), f"no nbval reference for {name}; run `make nbval-refresh`"
        cells = [c for c in _cells(reference) if "injected-parameters" not in c["metadata"].get("tags", [])]
        assert [_source(c) for c in cells] == [_source(c) for c in _cells(source)], \
            f"tests/nbval/{dataset}/{name}.ipynb is stale; run `make nbval-refresh NOTEBOOKS={name}` (or all)"


def test_nbval_references_ran_the_smoke_profile_and_keep_only_checked_outputs():
    refresh = _refresh_module()
    smoke = refresh.smoke_parameters()
    assert smoke["experiment"] == "smoke" and smoke["epochs"] == 1 and smoke["max_sequences"] <= 1000
    references = sorted(NBVAL.glob("*/*.ipynb"))
    assert {r.parent.name for r in references} == {"nyt", "synthetic"}
    for reference in references:
        cells = _cells(reference)
        injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        assert len(injected) == 1, reference.name
        assert 'experiment = "smoke"' in _source(injected[0])
        assert f'dataset = "{reference.parent.name}"' in _source(injected[0])
        for cell in cells:
            if cell["cell_type"] == "code" and cell.get("outputs"):
                assert refresh.is_checked(cell), f"{reference.name}: outputs of an unchecked cell were kept"
                assert not [o for o in cell["outputs"] if o.get("name") == "stderr" or o["output_type"] == "error"]


def test_sanitize_patterns_keep_numbers_and_hide_paths():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((NBVAL / "sanitize.cfg").read_text())
    assert len(patterns) >= 3

    def sanitize(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert sanitize("p 0.0025, loss 8.97e-05, 51770 sequences") == "p 0.0025, loss 8.97e-05, 51770 sequences"
    assert sanitize("tables written to /tmp/entropylab-nbval-abc/tables") == "tables written to <TMP>"
    assert sanitize("8/8 - 1s - 187ms/step") == "8/8 - <TIME> - <TIME>"


def test_make_test_runs_nbval_in_a_fresh_outputs_folder():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    line = next(line for line in target.splitlines() if "--nbval-lax" in line)
    assert "ENTROPYLAB_OUTPUTS=" in line and "mktemp -d" in line and "sanitize.cfg" in line
    assert "\nnbval-refresh:" in makefile
