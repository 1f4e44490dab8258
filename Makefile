# make demo: a real parameter sweep on the local backend, monitored to completion.
# make test: install everything (Python deps, a real single-node Slurm), lint, type-check, run all tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SLURM_DIR ?= /tmp/corral-slurm

.PHONY: demo test venv lint typecheck unit slurm-up slurm-down bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3"

venv: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'

demo: venv
	CORRAL_HOME=$${CORRAL_HOME:-$(CURDIR)/.corral-demo} $(BIN)/corral demo

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "not slurm"

slurm-up:
	SLURM_DIR=$(SLURM_DIR) bash scripts/start-slurm.sh

slurm-down:
	SLURM_DIR=$(SLURM_DIR) bash scripts/stop-slurm.sh

test: venv lint typecheck
	CORRAL_REQUIRE_ROOT=1 $(BIN)/pytest -m "not slurm"
	SLURM_DIR=$(SLURM_DIR) CORRAL_REQUIRE_SLURM=1 bash scripts/test-slurm.sh $(BIN)

bench: venv
	$(BIN)/python bench/local_throughput.py

clean:
	rm -rf $(VENV) .corral-demo .pytest_cache .mypy_cache .ruff_cache
