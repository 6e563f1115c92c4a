"""Running a study's whole chain on one of its parameter files, as a user would (``python -m entropylab reproduce
--study NAME --params FILE``), into an outputs folder of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from entropylab.paths import project_root

ROOT = project_root(Path(__file__).parent)


def reproduce(study: str, params: Path, output_root: Path) -> subprocess.CompletedProcess:
    """The command's completed process (its output captured)."""
    env = {**os.environ, "ENTROPYLAB_OUTPUTS": str(output_root)}
    return subprocess.run([sys.executable, "-m", "entropylab", "reproduce", "--study", study, "--params",
                           str(params), "--output-root", str(output_root)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def start_reproduce(study: str, params: Path, output_root: Path, log: Path) -> subprocess.Popen:
    """The same command started in the background, its output going to ``log``."""
    env = {**os.environ, "ENTROPYLAB_OUTPUTS": str(output_root)}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "entropylab", "reproduce", "--study", study, "--params",
                                 str(params), "--output-root", str(output_root)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
