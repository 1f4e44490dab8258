# make demo: a real parameter sweep on the local backend, monitored to completion.
# make test: install everything (Python deps; real services: a single-node Slurm, DiracX servers
# and the classic DIRAC client's venv, an HTCondor pool, a Grid Engine), lint, type-check, run all
# tests: scripts/test-all.sh runs the plain suite while the slow installs run in the background,
# then the service suites in two lanes side by side (Slurm then Grid Engine; DiracX then HTCondor).
PYTHON ?= python3.11
# the plain suite: everything that needs no real service
PLAIN := not slurm and not dirac and not dirac_classic and not condor and not sge
VENV ?= .venv
BIN := $(VENV)/bin
SLURM_DIR ?= /tmp/corral-slurm
DIRAC_RUN ?= /tmp/corral-dirac-test

.PHONY: demo test venv lint typecheck unit slurm-up slurm-down dirac-test bench bench-dirac clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3"

# venv compiles corral's bytecode, as a wheel install has it (with PYTHONDONTWRITEBYTECODE=1
# every command would compile its modules again: a quarter of a cold `corral ls`)
venv: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m compileall -q src

demo: venv
	CORRAL_HOME=$${CORRAL_HOME:-$(CURDIR)/.corral-demo} $(BIN)/corral demo

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "$(PLAIN)"

dirac-test: venv
	DIRAC_RUN=$(DIRAC_RUN) bash scripts/test-dirac.sh all $(BIN)

slurm-up:
	SLURM_DIR=$(SLURM_DIR) bash scripts/start-slurm.sh

slurm-down:
	SLURM_DIR=$(SLURM_DIR) bash scripts/stop-slurm.sh

test: venv lint typecheck
	PLAIN='$(PLAIN)' DIRAC_RUN=$(DIRAC_RUN) SLURM_DIR=$(SLURM_DIR) bash scripts/test-all.sh $(BIN)

bench: venv
	$(BIN)/python bench/local_throughput.py

bench-dirac: venv
	bash scripts/diracx-venv.sh
	bash scripts/dirac-classic-venv.sh
	$(BIN)/python bench/dirac_status.py

clean:
	rm -rf $(VENV) .corral-demo .pytest_cache .mypy_cache .ruff_cache
