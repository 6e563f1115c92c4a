"""The explorer in a real browser: JupyterLab (headless, loopback, token) driven by Debian's Chromium.

It trains a few tiny runs on the synthetic corpus into a temporary outputs folder, starts JupyterLab from
this environment with ``ENTROPYLAB_OUTPUTS`` pointing there (the kernel inherits it), opens a copy of
``notebooks/05_explorer.ipynb``, runs all cells from the command palette, moves the weight slider and the
seed slider with the keyboard, and checks that the header, the numbers and the greedy words shown are
those of the selected run (recomputed here from its folder, ``<slug>-<identity hash>``). A seed without a
run offers **Train**; the test presses it and waits for the new run. Screenshots go to ``outputs/screenshots/``.

A second test opens the explorer on finished paper runs (the KL w=10 run and its control) and checks that
it shows the KL run at once, with its curves, numbers and words, and offers no Train: the project's own
runs (``<outputs>/runs/paper``, written by ``make reproduce``) when they are there, with the screenshot
``outputs/screenshots/explorer-0-project-runs.png``; otherwise two small runs it trains first (on the NYT
data when found, else the synthetic corpus) into a temporary outputs folder, where its screenshot goes too.
Every JupyterLab server, kernel and browser a test starts is stopped by it, also when it fails.

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
# The paper runs the second test shows: the KL run at the objective's default weight and its control, seed 0.
PAPER_EXPERIMENT = "paper"
EXPLORER_EXPERIMENT = "explorer"  # where the explorer trains a missing run (entropylab.explorer.index)
PAPER_RUNS = (("kl_regularized", 10.0), ("mse", 0.0))
# The small stand-ins it trains when the project has no such runs (a few seconds each, NYT or synthetic).
SMALL_PAPER_RUN = {"epochs": 2, "max_sequences": 2000, "lstm_units": 16, "jit_compile": False}
TIMEOUT_MS = 90_000


def tiny_config(loss: str, weight: float, seed: int):
    from entropylab.training import RunConfig

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
    from entropylab.training import run

    outputs = tmp_path_factory.mktemp("explorer-outputs")
    for loss, weight, seed in TINY_RUNS:
        config = tiny_config(loss, weight, seed)
        assert run(config, outputs / "runs" / EXPERIMENT / config.run_name).status == "complete"
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


def _stop(processes: list) -> None:
    """Terminate, then kill, the given processes (``psutil.Process``) that are still running."""
    import psutil

    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
            alive.append(process)
    _, alive = psutil.wait_procs(alive, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=10)


PORT_ATTEMPTS = 3


def _serving(server: subprocess.Popen, base: str, token: str, log_path: Path, last_attempt: bool) -> bool:
    """Wait until the server answers (True); False if it exited because its port was taken (and another try is
    left); else fail the test with its log."""
    deadline = time.monotonic() + 90
    while True:
        if server.poll() is not None:
            text = log_path.read_text(errors="replace")
            if not last_attempt and "already in use" in text:
                return False
            pytest.fail(f"JupyterLab exited ({server.returncode}):\n{text[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer in 90 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def jupyterlab(home: Path, outputs: Path) -> Iterator[dict]:
    """JupyterLab on a loopback port with a token, serving ``home/notebooks`` (a copy of the explorer notebook),
    its kernels seeing ``ENTROPYLAB_OUTPUTS=outputs``. Stopped on exit with its kernels, also on failure."""
    import psutil

    notebooks = home / "notebooks"
    notebooks.mkdir()
    shutil.copy(NOTEBOOK, notebooks / NOTEBOOK.name)  # a copy: the committed notebook stays unexecuted
    _write_lab_settings(home / "settings")
    token = secrets.token_hex(16)
    env = dict(os.environ, ENTROPYLAB_OUTPUTS=str(outputs), TF_CPP_MIN_LOG_LEVEL="2",
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)  # as `make lab`: kernels pick matplotlib's inline backend
    log_path = home / "server.log"
    # a port found free can be taken before the server binds it (a kernel starting in another test process):
    # the server then exits at once, and another port is tried
    server: subprocess.Popen | None = None
    try:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = _free_port()
            command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                       "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
                       "--LabApp.expose_app_in_browser=True", "--allow-root"]
            with open(log_path, "wb") as log:
                server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=notebooks)
            base = f"http://127.0.0.1:{port}"
            if _serving(server, base, token, log_path, last_attempt=attempt == PORT_ATTEMPTS):
                break
        yield {"base": base, "token": token, "outputs": outputs, "log": log_path, "notebooks": notebooks}
    finally:
        if server is not None:
            # Kernels run in sessions of their own: note them now, so that none outlives a server that had to be killed.
            children = []
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(server.pid).children(recursive=True)
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
            _stop(children)


@pytest.fixture(scope="module")
def lab(tiny_outputs, tmp_path_factory) -> Iterator[dict]:
    """JupyterLab over the tiny runs."""
    with jupyterlab(tmp_path_factory.mktemp("jupyterlab"), tiny_outputs) as info:
        yield info


def expected_view_of(runs_root: Path, run_dir: Path, seed_text: str) -> dict:
    """What the explorer must show for the run in ``run_dir`` (under ``runs_root``), recomputed from its files."""
    import pandas as pd

    from entropylab.decoding import continue_text
    from entropylab.training import load_trained

    history = pd.read_csv(run_dir / "history.csv")
    model, corpus, stored = load_trained(run_dir)
    words = continue_text(model, corpus, seed_text, 10, head=stored.head).words
    return {"label": run_dir.relative_to(runs_root).as_posix(),
            "val_loss": [f"{v:.4g}" for v in history["val_loss"]],
            "paper_kl": [f"{v:.4g}" for v in history["paper_kl"]],
            "val_perplexity": [f"{v:.4g}" for v in history["val_perplexity"]],
            "words": "[" + " ".join(words) + "]"}


def expected_view(outputs: Path, loss: str, weight: float, seed: int, seed_text: str) -> dict:
    """What the explorer must show for one of the tiny runs."""
    runs_root = outputs / "runs"
    return expected_view_of(runs_root, runs_root / EXPERIMENT / tiny_config(loss, weight, seed).run_name, seed_text)


def expected_sampled_words(outputs: Path, loss: str, weight: float, seed: int, seed_text: str, top_p: float,
                           sampling_seed: int) -> str:
    """The words the explorer must show for a tiny run decoded by top-p sampling, recomputed with the library."""
    from entropylab.decoding import continue_prefixes
    from entropylab.training import load_trained

    model, corpus, stored = load_trained(outputs / "runs" / EXPERIMENT / tiny_config(loss, weight, seed).run_name)
    ids = continue_prefixes(model, corpus.pad(corpus.encode(seed_text)), 10, head=stored.head, strategy="sample",
                            seed=sampling_seed, top_p=top_p).words[0]
    return "[" + " ".join(corpus.index_word.get(int(i), "").title() for i in ids) + "]"


def wait_for_words(page, expected: str, timeout_s: float = TIMEOUT_MS / 1000) -> str:
    """Wait until the selected run's continuation reads ``expected``; fail with what is shown."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = shown_view(page)
        if view["words"] == expected:
            return view["words"]
        if view["error"] or time.monotonic() > deadline:
            raise AssertionError(f"words: shown {view['words']!r}, the decoder gives {expected!r} {view['error']}")
        page.wait_for_timeout(250)


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


def screenshot(page, name: str, folder: Path = SCREENSHOTS) -> Path:
    """The JupyterLab window with the explorer scrolled to the top of the notebook panel."""
    page.evaluate("() => document.querySelector('.entropylab-explorer').scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    path = folder / name
    page.screenshot(path=str(path))
    return path


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
def notebook_page(browser, lab: dict, notebook: str, screenshots: Path = SCREENSHOTS) -> Iterator:
    """A page with ``notebook`` open in JupyterLab and all its cells run (Run All Cells from the command palette);
    on failure, a screenshot (``explorer-failure.png`` in ``screenshots``) and the server log's tail."""
    screenshots.mkdir(parents=True, exist_ok=True)
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
            page.screenshot(path=str(screenshots / "explorer-failure.png"))
        print(Path(lab["log"]).read_text()[-4000:])
        raise
    finally:
        with contextlib.suppress(Exception):  # the kernel goes with the page
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        page.close()


def has_paper_runs(runs_root: Path) -> bool:
    """Whether ``<runs_root>/paper`` holds a finished run of each of :data:`PAPER_RUNS` (seed 0)."""
    from entropylab.explorer import read_finished_runs

    keys = {(r.key.loss, r.key.weight, r.key.seed) for r in read_finished_runs(runs_root / PAPER_EXPERIMENT)}
    return all((loss, weight, 0) in keys for loss, weight in PAPER_RUNS)


def train_small_paper_runs(outputs: Path) -> dict[str, Path]:
    """Small runs of :data:`PAPER_RUNS` in ``<outputs>/runs/paper`` (NYT data when found, else synthetic)."""
    from entropylab.data import find_nyt_dir
    from entropylab.training import RunConfig, run

    dataset = "nyt" if find_nyt_dir() is not None else "synthetic"
    made = {}
    for loss, weight in PAPER_RUNS:
        config = RunConfig(dataset=dataset, loss=loss, weight=weight, seed=0, **SMALL_PAPER_RUN)
        run_dir = outputs / "runs" / PAPER_EXPERIMENT / config.run_name
        result = run(config, run_dir)
        assert result.status == "complete", result.metrics
        made[loss] = run_dir
    return made


def test_explorer_shows_the_project_runs_without_training(browser, tmp_path_factory):
    """On finished paper runs (the project's after ``make reproduce``, else small ones trained here first):
    the explorer shows the KL w=10 run at once, with its curves, numbers and words, and trains nothing."""
    from entropylab.paths import outputs_dir

    project_outputs = outputs_dir()  # $ENTROPYLAB_OUTPUTS or <project>/outputs
    if has_paper_runs(project_outputs / "runs"):
        outputs, own, screenshots = project_outputs, None, SCREENSHOTS
    else:  # CI and fresh checkouts: no `make reproduce` runs; never write over the committed screenshot
        outputs = tmp_path_factory.mktemp("paper-outputs")
        own = train_small_paper_runs(outputs)
        screenshots = outputs / "screenshots"
    runs_root = outputs / "runs"
    def trainable() -> list[Path]:  # where the explorer would train (a sweep running beside the test is not it)
        return sorted(p for experiment in (PAPER_EXPERIMENT, EXPLORER_EXPERIMENT)
                      for p in (runs_root / experiment).rglob("config.json"))

    before = trainable()
    with jupyterlab(tmp_path_factory.mktemp("jupyterlab-paper"), outputs) as lab, \
            notebook_page(browser, lab, NOTEBOOK.name, screenshots) as page:
        page.wait_for_function("""() => {
            const h = document.querySelector('.entropylab-explorer .entropylab-shown');
            const w = document.querySelector('.entropylab-explorer .entropylab-continuation');
            return (h && h.dataset.exact === 'true' && w) || document.querySelector('.entropylab-error b');
        }""", timeout=180_000)
        view = shown_view(page)
        assert not view["error"], view["error"]
        assert view["header"].startswith("Showing kl_regularized weight=10 seed 0 ("), view["header"]
        label = view["header"].rsplit(": ", 1)[1]
        if own is not None:
            assert label == f"{PAPER_EXPERIMENT}/{own['kl_regularized'].name}", view["header"]
        expected = expected_view_of(runs_root, runs_root / label,
                                    page.locator(".entropylab-seed-text input").input_value())
        assert not mismatches(view, expected), mismatches(view, expected)
        assert view["image"], "no curves shown"
        assert page.locator(".entropylab-curves").is_visible()
        assert page.locator(".entropylab-words tr[data-role='control'] .entropylab-continuation").count() == 1, \
            "no words of the control run"
        assert page.locator(".entropylab-numbers tr[data-role='control']").count() == 1, "no control row"
        assert page.locator(".entropylab-train").is_hidden(), "a finished run must not offer Train"
        shot = screenshot(page, "explorer-0-project-runs.png", screenshots)
    assert shot.is_file()
    assert trainable() == before, "showing finished runs must not train"


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

        # Decoder controls: top-p sampling at its default 0.9, then 0.85, then sampling seed 1; the words follow
        # each change in place, then greedy again.
        page.locator(".entropylab-decoder select").select_option("top_p")
        sampled = wait_for_words(page, expected_sampled_words(outputs, "kl_regularized", 100.0, 1, seed_text, 0.9, 0))
        assert sampled != reseeded["words"], "top-p sampling gave the greedy words"
        press(page, ".entropylab-decoder-value .noUi-handle", "ArrowLeft")
        wait_for_words(page, expected_sampled_words(outputs, "kl_regularized", 100.0, 1, seed_text, 0.85, 0))
        press(page, ".entropylab-sampling-seed .noUi-handle", "ArrowRight")
        other_seed = wait_for_words(page, expected_sampled_words(outputs, "kl_regularized", 100.0, 1, seed_text,
                                                                 0.85, 1))
        assert other_seed != sampled, "the sampling seed did not change the words"
        screenshot(page, "explorer-4-decoder.png")
        page.locator(".entropylab-decoder select").select_option("greedy")
        wait_for_view(page, expected_view(outputs, "kl_regularized", 100.0, 1, seed_text))

        # Seed 2 has no run: the explorer says so, keeps showing the nearest run and offers Train.
        press(page, ".entropylab-seed .noUi-handle", "ArrowRight")
        page.wait_for_function("""() => {
            const h = document.querySelector('.entropylab-explorer .entropylab-shown');
            return h && h.dataset.exact === 'false' && h.textContent.startsWith('No finished run');
        }""")
        assert "seed 2" in shown_view(page)["header"]
        train_button = page.locator(".entropylab-train")
        train_button.wait_for(state="visible")
        assert re.search(r"^Train kl_regularized weight=100 seed 2\b", train_button.inner_text().strip())
        train_button.click()
        page.locator(".entropylab-progress").wait_for(state="visible")
        page.wait_for_function("""() => {
            const l = document.querySelector('.entropylab-explorer .entropylab-progress-label');
            return l && /epoch \\d+\\/\\d+, step \\d+\\/\\d+|finished/.test(l.textContent);
        }""")
        # The new run is the one a sweep would make: the template's profile, seed 2, the same identity hash.
        trained = outputs / "runs" / EXPERIMENT / tiny_config("kl_regularized", 100.0, 2).run_name
        page.wait_for_function("""(name) => {
            const h = document.querySelector('.entropylab-explorer .entropylab-shown');
            return h && h.dataset.exact === 'true' && h.textContent.endsWith(name);
        }""", arg=f"{EXPERIMENT}/{trained.name}", timeout=120_000)
        assert (trained / "COMPLETE").is_file()
        wait_for_view(page, expected_view(outputs, "kl_regularized", 100.0, 2, seed_text))
        screenshot(page, "explorer-3-trained.png")
