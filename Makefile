# Two entry points: `make serve` (serve the bundled generator) and `make test` (ruff + pytest).
# Each creates .venv when missing and installs what it needs; torch is pinned to the CPU build.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
HOST ?= 127.0.0.1
TORCH_PIN ?= torch==2.13.0
export BENTOML_DO_NOT_TRACK := true
export ORT_DISABLE_TELEMETRY := 1

.PHONY: serve test lint build clean browser container container-test

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Serving needs no torch: the base install is bentoml + onnxruntime + numpy + pydantic + pillow.
$(VENV)/.serve-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.serve-installed

serve: $(VENV)/.serve-installed
	$(VENV)/bin/bentoml serve service.app:GeneratorService --host $(HOST) --port $(PORT)

# The playground's browser tests drive Debian's headless Chromium (they fail, never skip, without it)
# and run the page's "copy as curl" command: installed here when missing (apt, as root or via sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v curl >/dev/null || \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver curl; }

# One thread per process: two busy thread pools on two cores slow each other down badly.
test: $(VENV)/.dev-installed browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 GAN_ORT_THREADS=1 $(VENV)/bin/pytest

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

build: $(VENV)/.dev-installed
	$(VENV)/bin/bentoml build

# The serving image, built offline (deploy/container.sh: podman, installed via apt as root when no
# container tool is there, or docker when its daemon answers), and its test against the running image.
container: $(VENV)/.serve-installed
	PY=$(PY) deploy/container.sh build

container-test: $(VENV)/.dev-installed
	CONTAINER_TOOL=podman PY=$(PY) deploy/container.sh build
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 GAN_ORT_THREADS=1 $(PY) -m pytest -p tests.conftest deploy/test_container.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
