"""Running a test's script in a JAX process of its own (one CPU thread) and reading the ``RESULT=<json>`` line it
prints: the fused engine's evaluator is compared with the one-run evaluator there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_jax_script(script: str) -> Any:
    """The JSON value the script printed after ``RESULT=``; an ``AssertionError`` with its stderr if it failed."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "ENTROPYLAB_THREADS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))[len("RESULT="):])
