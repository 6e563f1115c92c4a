# entropy-lab: `make reproduce` runs the paper's protocol, `make test` runs every check.
# Both create .venv (Python 3.11) and install the project into it when needed, at the exact versions of
# requirements.lock (the ones that made the committed results); `make lock` refreshes that file.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# `make lock` resolves with uv, installed in its own venv (not the project's); UPGRADE=1 lets every pin move
LOCK_VENV ?= .venv-lock
UV_VERSION ?= 0.13.9
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0
export MPLBACKEND ?= Agg
# pytest's processes in `make test` (pytest-xdist, one test file per process at a time); 1 runs the suite in one
TEST_WORKERS ?= 2

.PHONY: setup lock reproduce objectives decoding scale test nbval-refresh test-browser lint lab sweep bench bench-quick gpu-check gpu-wheels data info clean-runs

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

# The lock: pyproject.toml's dependencies and its `test` extra (JAX included) for Python 3.11 on x86-64 Linux.
# A refresh keeps every pin already in the file (new dependencies get the newest version that fits) unless UPGRADE=1.
lock:
	@test -x $(LOCK_VENV)/bin/uv || { { $(PYTHON) -m venv $(LOCK_VENV) || python3 -m venv $(LOCK_VENV); } && \
		$(LOCK_VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"; }
	$(LOCK_VENV)/bin/uv pip compile --quiet pyproject.toml --extra test --python-version 3.11.5 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) \
		-o $(LOCK)

reproduce: setup
	$(PY) -m entropylab reproduce

# the objectives study: params/objectives.yaml (tuning, then 3 seeds; resumable), then notebooks/07_objectives.ipynb
objectives: setup
	$(PY) -m entropylab reproduce --study objectives

# the decoding study: the models of params/decoding.yaml, hyperfitting, the decoder grid (resumable), then
# notebooks/08_decoding.ipynb
decoding: setup
	$(PY) -m entropylab reproduce --study decoding

# the scale study: params/scale.yaml (each cell's dropout on dev), then every cell's objectives (resumable), then
# notebooks/09_scale.ipynb
scale: setup
	$(PY) -m entropylab reproduce --study scale

# nbval re-executes tests/nbval/{nyt,synthetic}/*.ipynb (the smoke profile; the NYT set where the data is, else
# the synthetic one) in an empty outputs folder and compares the cells
# marked NBVAL_CHECK_OUTPUT; `make nbval-refresh` rewrites those references after a notebook changes.
test: setup lint
	$(PY) -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) --durations=15
	d=$$(mktemp -d) && ENTROPYLAB_OUTPUTS=$$d $(PY) -m pytest --nbval-lax tests/nbval --nbval-sanitize-with tests/nbval/sanitize.cfg -p no:cacheprovider; s=$$?; rm -rf $$d; exit $$s

nbval-refresh: setup
	$(PY) tests/nbval/refresh.py $(NOTEBOOKS)

lint: setup
	$(PY) -m ruff check lib tests notebooks

# Kernels get matplotlib's inline backend (not the Agg above); --allow-root only as root; LAB_ARGS="--port=8899" etc.
lab: setup
	env -u MPLBACKEND $(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test-browser: setup
	$(PY) -m pytest -m browser

sweep: setup
	$(PY) -m entropylab sweep $(PARAMS)

bench: setup
	$(PY) -m pip install -q -e ".[jax]" || echo "JAX not installed: the benchmark skips ours-jax"
	$(PY) -m entropylab bench
	$(PY) -m entropylab bench generation || echo "generation benchmark skipped: it needs a finished run (make reproduce)"
	$(PY) -m entropylab bench generation --decoders || echo "decoder benchmark skipped: it needs a finished run"
	$(PY) -m entropylab bench overhead params/overhead.yaml

bench-quick: setup
	$(PY) -m pip install -q -e ".[jax]" || echo "JAX not installed: the benchmark skips ours-jax"
	$(PY) -m entropylab bench --quick

# The fused engine's device check (docs/performance.md, "On a GPU"): one run, fused groups of 1/15/45, the paper's
# protocol and the seeds grid, on JAX, on the NYT data (GPU_ARGS="--data-dir DIR"), into
# outputs/benchmarks/gpu_<device>_<time>.csv. It needs no venv: on a machine with JAX and CUDA but no Keras, the
# wheels that `make gpu-wheels` puts in .whl/ are installed beside it. It first checks every package it imports.
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	@$(GPU_PY) -c "import keras" 2>/dev/null || $(GPU_PY) -m pip install -q --no-index --no-deps --no-compile \
		--upgrade --target .whl/site .whl/*.whl
	@PYTHONPATH=lib:.whl/site $(GPU_PY) -c "import jax, keras, h5py, yaml, pandas, absl, rich, optree, namex" || \
		{ echo "error: a package above is missing; pip install -e '.[gpu]', or carry its wheel in .whl/"; exit 2; }
	PYTHONPATH=lib:.whl/site KERAS_BACKEND=jax $(GPU_PY) -m entropylab.bench gpu $(GPU_ARGS)

# Keras and the two packages it needs beyond a JAX image's usual ones (absl-py, rich, h5py, pandas, pyyaml are
# there on the lent GPU machines), as wheels for CPython 3.12 on x86-64 Linux
gpu-wheels: setup
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0

data: setup
	$(PY) -m pip install -q -e ".[download]"
	$(PY) -m entropylab data

info: setup
	$(PY) -m entropylab info
