# make demo: a real parameter sweep on the local backend, monitored to completion.
# make test: install everything (Python deps, a real single-node Slurm, real DiracX servers), lint,
# type-check, run all tests. DiracX is installed and started in the background while the plain
# suite runs, its tests run next (scripts/test-dirac.sh), then Slurm's.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SLURM_DIR ?= /tmp/corral-slurm
DIRAC_RUN ?= /tmp/corral-dirac-test

.PHONY: demo test venv lint typecheck unit slurm-up slurm-down dirac-test bench bench-dirac clean

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
	$(BIN)/pytest -m "not slurm and not dirac and not condor"

dirac-test: venv
	DIRAC_RUN=$(DIRAC_RUN) bash scripts/test-dirac.sh all $(BIN)

slurm-up:
	SLURM_DIR=$(SLURM_DIR) bash scripts/start-slurm.sh

slurm-down:
	SLURM_DIR=$(SLURM_DIR) bash scripts/stop-slurm.sh

test: venv lint typecheck
	rm -rf $(DIRAC_RUN) && mkdir -p $(DIRAC_RUN).logs
	DIRAC_RUN=$(DIRAC_RUN) bash scripts/test-dirac.sh prepare > $(DIRAC_RUN).logs/prepare.log 2>&1 & \
	CORRAL_REQUIRE_ROOT=1 $(BIN)/pytest -m "not slurm and not dirac and not condor"; status=$$?; \
	DIRAC_RUN=$(DIRAC_RUN) bash scripts/test-dirac.sh run $(BIN) || { status=1; cat $(DIRAC_RUN).logs/prepare.log; }; \
	exit $$status
	SLURM_DIR=$(SLURM_DIR) CORRAL_REQUIRE_SLURM=1 bash scripts/test-slurm.sh $(BIN)
	CORRAL_REQUIRE_CONDOR=1 bash scripts/test-condor.sh $(BIN)

bench: venv
	$(BIN)/python bench/local_throughput.py

bench-dirac: venv
	bash scripts/diracx-venv.sh
	$(BIN)/python bench/dirac_status.py

clean:
	rm -rf $(VENV) .corral-demo .pytest_cache .mypy_cache .ruff_cache
