"""The explorer in a real browser: JupyterLab (headless, loopback, token) driven by Debian's Chromium.

It trains a few tiny runs on the synthetic corpus into a temporary outputs folder, starts JupyterLab from
this environment with ``ENTROPYLAB_OUTPUTS`` pointing there (the kernel inherits it), opens a copy of
``notebooks/05_explorer.ipynb``, runs all cells from the command palette, moves the weight slider and the
seed slider with the keyboard, and checks that the header, the numbers and the greedy words shown are
those of the selected run (recomputed here from its folder). A seed without a run offers **Train**; the test
presses it and waits for the new run. When the project's outputs folder (``$ENTROPYLAB_OUTPUTS`` or
``outputs/``) holds finished runs, a second test opens the explorer on them and checks that one is shown,
with its numbers and words, and that nothing is trained. Screenshots go to ``outputs/screenshots/``.

Skipped (with the reason) when Chromium or Playwright is missing; ``.ci/install-browser.sh`` installs
Chromium with apt-get and ``.ci/run`` then sets ``ENTROPYLAB_REQUIRE_BROWSER=1``, which turns a skip into a
failure. ``ENTROPYLAB_CHROMIUM`` overrides the browser path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_explorer.ipynb"
SCREENSHOTS = ROOT / "outputs" / "screenshots"
CHROMIUM = Path(os.environ.get("ENTROPYLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SYNTHETIC = {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}
# (loss, weight, seed) of the runs the test trains; the slider starts on w=1 and moves to w=100.
TINY_RUNS = (("mse", 0.0, 0), ("mse", 0.0, 1), ("kl_regularized", 1.0, 0), ("kl_regularized", 100.0, 0),
             ("kl_regularized", 100.0, 1))
EXPERIMENT = "browser"
TIMEOUT_MS = 90_000


def tiny_config(loss: str, weight: float, seed: int):
    from entropylab.train import RunConfig

    return RunConfig(dataset="synthetic", loss=loss, weight=weight, seed=seed, epochs=2, lstm_units=8,
                     jit_compile=False, synthetic=dict(SYNTHETIC))


@pytest.fixture(scope="module")
def chromium() -> Path:
    required = os.environ.get("ENTROPYLAB_REQUIRE_BROWSER") == "1"  # set by .ci/run once Chromium is installed
    missing = None
    if not CHROMIUM.is_file():
        missing = f"{CHROMIUM} not found: install Debian's chromium (.ci/install-browser.sh) or set ENTROPYLAB_CHROMIUM"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright for Python is not installed (pip install -e '.[test]')"
    if missing and required:
        pytest.fail(f"ENTROPYLAB_REQUIRE_BROWSER=1 but {missing}")
    if missing:
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture(scope="module")
def tiny_outputs(chromium, tmp_path_factory) -> Path:
    """An outputs folder holding the finished tiny runs (1-2 seconds each)."""
    from entropylab.train import run

    outputs = tmp_path_factory.mktemp("explorer-outputs")
    for loss, weight, seed in TINY_RUNS:
        config = tiny_config(loss, weight, seed)
        assert run(config, outputs / "runs" / EXPERIMENT / config.slug).status == "complete"
    return outputs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_lab_settings(settings_dir: Path) -> None:
    """No news or update checks (there is no network) and no extension manager."""
    notification = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@pytest.fixture(scope="module")
def lab(tiny_outputs, tmp_path_factory) -> Iterator[dict]:
    """JupyterLab on a loopback port with a token, serving a folder with a copy of the explorer notebook."""
    home = tmp_path_factory.mktemp("jupyterlab")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    shutil.copy(NOTEBOOK, notebooks / NOTEBOOK.name)  # a copy: the committed notebook stays unexecuted
    _write_lab_settings(home / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, ENTROPYLAB_OUTPUTS=str(tiny_outputs), TF_CPP_MIN_LOG_LEVEL="2",
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)  # as `make lab`: kernels pick matplotlib's inline backend
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
               "--LabApp.expose_app_in_browser=True", "--allow-root"]
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=notebooks)
    base = f"http://127.0.0.1:{port}"
    info = {"base": base, "token": token, "outputs": tiny_outputs, "log": log_path, "notebooks": notebooks}
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield info
    finally:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                             headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(request, timeout=10).close()
            server.wait(timeout=30)
        except Exception:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def expected_view_of(run_dir: Path, seed_text: str) -> dict:
    """What the explorer must show for the run in ``run_dir``, recomputed here from its files."""
    import pandas as pd

    from entropylab import train
    from entropylab.generate import continue_text

    history = pd.read_csv(run_dir / "history.csv")
    model, corpus, stored = train.load_trained(run_dir)
    words = continue_text(model, corpus, seed_text, 10, head=stored.head).words
    return {"label": f"{run_dir.parent.name}/{run_dir.name}",
            "val_loss": [f"{v:.4g}" for v in history["val_loss"]],
            "paper_kl": [f"{v:.4g}" for v in history["paper_kl"]],
            "val_perplexity": [f"{v:.4g}" for v in history["val_perplexity"]],
            "words": "[" + " ".join(words) + "]"}


def expected_view(outputs: Path, loss: str, weight: float, seed: int, seed_text: str) -> dict:
    """What the explorer must show for one of the tiny runs."""
    return expected_view_of(outputs / "runs" / EXPERIMENT / tiny_config(loss, weight, seed).slug, seed_text)


def shown_view(page) -> dict:
    """Header, the selected run's rows of the numbers table and its greedy words, as the page shows them."""
    return page.evaluate("""() => {
        const root = document.querySelector('.entropylab-explorer');
        const header = root.querySelector('.entropylab-shown');
        const rows = [...root.querySelectorAll("table.entropylab-numbers tr[data-role='selected']")]
            .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim()));
        const words = root.querySelector("table.entropylab-words tr[data-role='selected'] .entropylab-continuation");
        const img = root.querySelector('.entropylab-curves');
        const error = root.querySelector('.entropylab-error');
        return {header: header ? header.textContent : '', exact: header ? header.dataset.exact : '',
                rows, words: words ? words.textContent.trim() : '', image: img ? img.getAttribute('src') : '',
                error: error ? error.textContent.trim() : ''};
    }""")


def mismatches(view: dict, expected: dict) -> list[str]:
    """How the shown view differs from the expected run (empty when it is that run)."""
    problems = []
    if not view["header"].endswith(expected["label"]):
        problems.append(f"header {view['header']!r} does not name {expected['label']!r}")
    # numbers table columns: epoch, entropy, KL, training loss, validation loss, perplexity, accuracy
    for column, index in (("paper_kl", 2), ("val_loss", 4), ("val_perplexity", 5)):
        shown = [row[index] if len(row) > index else None for row in view["rows"]]
        if shown != expected[column]:
            problems.append(f"{column}: shown {shown}, run has {expected[column]}")
    if view["words"] != expected["words"]:
        problems.append(f"words: shown {view['words']!r}, run gives {expected['words']!r}")
    if view["error"]:
        problems.append(f"the widget shows an error: {view['error']}")
    return problems


def wait_for_view(page, expected: dict, timeout_s: float = TIMEOUT_MS / 1000) -> dict:
    """Wait until the explorer shows exactly the expected run (header, numbers and words); fail with the diff."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = shown_view(page)
        problems = mismatches(view, expected)
        if not problems:
            return view
        if view["error"] or time.monotonic() > deadline:
            raise AssertionError("the explorer does not show the selected run:\n" + "\n".join(problems))
        page.wait_for_timeout(250)


def press(page, selector: str, key: str, times: int = 1) -> None:
    handle = page.locator(selector)
    handle.focus()
    for _ in range(times):
        handle.press(key)
        page.wait_for_timeout(150)


def screenshot(page, name: str) -> None:
    """The JupyterLab window with the explorer scrolled to the top of the notebook panel."""
    page.evaluate("() => document.querySelector('.entropylab-explorer').scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / name))


def kernel_idle(page) -> bool:
    return page.evaluate("""() => {
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return !!k && k.status === 'idle';
    }""")


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def notebook_page(browser, lab: dict, notebook: str) -> Iterator:
    """A page with ``notebook`` open in JupyterLab and all its cells run (Run All Cells from the command palette);
    on failure, a screenshot and the server log's tail."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        workspace = Path(notebook).stem  # a fresh workspace per notebook: no tabs restored from another page
        page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={lab['token']}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
        page.wait_for_function("() => !!window.jupyterapp")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not kernel_idle(page):
            assert time.monotonic() < deadline, "the kernel did not become idle"
            page.wait_for_timeout(250)
        page.locator(".jp-NotebookPanel .jp-Notebook").click()
        page.keyboard.press("Control+Shift+C")
        palette = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-input")
        palette.wait_for(state="visible")
        palette.fill("Run All Cells")
        page.locator(".jp-ModalCommandPalette .lm-CommandPalette-itemLabel",
                     has_text=re.compile(r"^Run All Cells$")).first.click()
        page.wait_for_selector(".entropylab-explorer", state="visible")
        yield page
        tracebacks = [t for t in page.locator(".jp-OutputArea-output").all_inner_texts() if "Traceback" in t]
        assert not tracebacks, tracebacks
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(SCREENSHOTS / "explorer-failure.png"))
        print(Path(lab["log"]).read_text()[-4000:])
        raise
    finally:
        with contextlib.suppress(Exception):  # the kernel goes with the page
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        page.close()


def test_explorer_shows_the_project_runs_without_training(browser, lab):
    """With the project's own finished runs (``make reproduce``, the sweep), when there are any: the explorer
    shows one at once, with that run's numbers and words, and trains nothing."""
    from entropylab.explorer import read_finished_runs
    from entropylab.paths import outputs_dir

    project_outputs = outputs_dir()  # $ENTROPYLAB_OUTPUTS or <project>/outputs
    runs_root = project_outputs / "runs"
    if not read_finished_runs(runs_root):
        pytest.skip(f"no finished runs in {runs_root} yet (make reproduce or the sweep writes them)")
    before = sorted(runs_root.rglob("config.json"))
    notebook = json.loads(NOTEBOOK.read_text())
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    parameters["source"] = [f"output_root = {str(project_outputs)!r}"]
    (lab["notebooks"] / "05_explorer_project_runs.ipynb").write_text(json.dumps(notebook))
    with notebook_page(browser, lab, "05_explorer_project_runs.ipynb") as page:
        page.wait_for_function("""() => {
            const h = document.querySelector('.entropylab-explorer .entropylab-shown');
            const w = document.querySelector('.entropylab-explorer .entropylab-continuation');
            return (h && h.dataset.exact === 'true' && w) || document.querySelector('.entropylab-error b');
        }""", timeout=180_000)
        view = shown_view(page)
        assert not view["error"], view["error"]
        run_dir = runs_root / view["header"].rsplit(": ", 1)[1]
        expected = expected_view_of(run_dir, page.locator(".entropylab-seed-text input").input_value())
        assert not mismatches(view, expected), mismatches(view, expected)
        screenshot(page, "explorer-0-project-runs.png")
    assert sorted(runs_root.rglob("config.json")) == before, "showing finished runs must not train"


def test_explorer_in_jupyterlab(browser, lab):
    outputs = lab["outputs"]
    with notebook_page(browser, lab, NOTEBOOK.name) as page:
        # The widget renders with the run chosen by default (KL, w=1, seed 0) and its words.
        seed_text = page.locator(".entropylab-seed-text input").input_value()
        first = wait_for_view(page, expected_view(outputs, "kl_regularized", 1.0, 0, seed_text))
        assert first["exact"] == "true"
        screenshot(page, "explorer-1-start.png")

        # Weight slider: four steps of half a decade to the right, 1 -> 100.
        press(page, ".entropylab-weight .noUi-handle", "ArrowRight", 4)
        moved = wait_for_view(page, expected_view(outputs, "kl_regularized", 100.0, 0, seed_text))
        assert moved["image"] != first["image"], "the curves did not change with the weight"
        assert moved["words"] != first["words"] or moved["rows"] != first["rows"]

        # Seed slider: 0 -> 1.
        press(page, ".entropylab-seed .noUi-handle", "ArrowRight")
        reseeded = wait_for_view(page, expected_view(outputs, "kl_regularized", 100.0, 1, seed_text))
        assert reseeded["image"] != moved["image"], "the curves did not change with the seed"
        screenshot(page, "explorer-2-weight-and-seed.png")

        # Seed 2 has no run: the explorer says so, keeps showing the nearest run and offers Train.
        press(page, ".entropylab-seed .noUi-handle", "ArrowRight")
        page.wait_for_function("""() => {
            const h = document.querySelector('.entropylab-explorer .entropylab-shown');
            return h && h.dataset.exact === 'false' && h.textContent.startsWith('No finished run');
        }""")
        assert "seed 2" in shown_view(page)["header"]
        train_button = page.locator(".entropylab-train")
        train_button.wait_for(state="visible")
        assert re.search(r"Train KL w=100 seed 2", train_button.inner_text())
        train_button.click()
        page.locator(".entropylab-progress").wait_for(state="visible")
        page.wait_for_function("""() => {
            const l = document.querySelector('.entropylab-explorer .entropylab-progress-label');
            return l && /epoch \\d+\\/\\d+, step \\d+\\/\\d+|finished/.test(l.textContent);
        }""")
        trained = outputs / "runs" / EXPERIMENT / "kl_regularized_w100_seed2"
        page.wait_for_function("""(name) => {
            const h = document.querySelector('.entropylab-explorer .entropylab-shown');
            return h && h.textContent.endsWith(name);
        }""", arg=f"{EXPERIMENT}/{trained.name}", timeout=120_000)
        assert (trained / "COMPLETE").is_file()
        wait_for_view(page, expected_view(outputs, "kl_regularized", 100.0, 2, seed_text))
        screenshot(page, "explorer-3-trained.png")
