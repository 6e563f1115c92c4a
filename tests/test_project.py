"""The project's set-up files stay in step with each other."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    """conda users get the same environment: the tested Python and a pip install of this project."""
    import re

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python_pin = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = tuple(int(x) for x in project["requires-python"].removeprefix(">=").split("."))
    pinned = tuple(int(x) for x in python_pin.removeprefix("python=").split(".")[:2])
    assert pinned >= minimum
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    installs = [m for line in pip_lines if (m := re.fullmatch(r'-e "?\.(?:\[([\w,]+)\])?"?', line))]
    assert installs, "environment.yml must pip-install this project (-e .)"
    extras = set((installs[0].group(1) or "").split(",")) - {""}
    assert extras <= set(project["optional-dependencies"])
    # nothing else is pinned there, so the dependencies cannot drift apart from pyproject.toml
    assert len(pip_lines) == 1


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_no_data_file_is_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if Path(f).name.startswith("Articles") and f.endswith(".csv")]
