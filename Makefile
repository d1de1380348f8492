# tunixrt: `make demo` runs the whole pipeline, `make test` runs the tests. Both set up .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# DVC runs stage commands through the shell: put the venv first so `python` is the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test verify lint format install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,ray,dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/dvc repro
	@cat runs/report.md

# The suite on TEST_WORKERS processes (pytest-xdist), a test file to a process so that the
# fixtures a file shares (a pipeline run, a built wheel) are made once; the slowest files first
# (tests/conftest.py), in that order.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The CI reproducibility check: params.yaml vs conf/, a fresh clone's `dvc repro`, dvc.lock hashes,
# repeat runs, model metrics vs the committed ones. VERIFY_ARGS=--data-only skips train/evaluate.
verify: install
	$(BIN)/tunixrt verify $(VERIFY_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf data runs .pytest_cache
