"""The project's set-up files stay in step with each other."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock_pins() -> dict[str, str]:
    """requirements.lock as {normalised name: version}; every line that names a package pins it with ``==``."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock line {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(name)] = version.split(";", 1)[0].strip()
    return pins


def _declared(project: dict) -> list[Requirement]:
    """pyproject.toml's base dependencies and its `test` extra: what `make setup` installs."""
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def test_lock_pins_every_dependency_at_a_version_pyproject_allows():
    """The lock `make setup` installs holds each base and `test` dependency, at a version within its bounds."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock_pins()
    declared = _declared(project)
    assert {"tensorflow-cpu", "keras", "numpy", "jax", "pytest"} <= {canonicalize_name(r.name) for r in declared}
    missing = [r.name for r in declared if canonicalize_name(r.name) not in pins]
    assert not missing, f"requirements.lock lacks {missing}: run `make lock` and commit requirements.lock"
    outside = [f"{r.name}=={pins[canonicalize_name(r.name)]} (pyproject: {r.specifier})" for r in declared
               if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"requirements.lock pins versions pyproject.toml excludes: {outside}; run `make lock`"


def test_make_setup_installs_the_lock():
    """`make setup` installs the lock's exact versions, then the project without resolving anything again."""
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK := requirements.lock" in makefile
    assert "$(STAMP): pyproject.toml $(LOCK)" in makefile
    assert "pip install -q -r $(LOCK)" in makefile and "pip install -q --no-deps -e ." in makefile


def test_environment_yml_matches_pyproject():
    """conda users get the same environment: the tested Python, the lock, and a pip install of this project."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python_pin = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = tuple(int(x) for x in project["requires-python"].removeprefix(">=").split("."))
    pinned = tuple(int(x) for x in python_pin.removeprefix("python=").split(".")[:2])
    assert pinned >= minimum
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # the lock's exact versions and the project itself; nothing else, so the two cannot drift apart
    assert pip_lines == ["-r requirements.lock", "-e ."]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_no_data_file_is_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if Path(f).name.startswith("Articles") and f.endswith(".csv")]
