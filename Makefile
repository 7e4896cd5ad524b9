# The two set-up commands: `make run` starts everything on embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
# `make run UP_ARGS=--demo`: the same system, with a labelled demo shop played against it
UP_ARGS ?=
BIN    := $(VENV)/bin

.PHONY: install run test lint bench soak chaos check-deploy dashboards contract check-contract settings-doc clean

install: $(VENV)/.installed

# Re-installs only when the dependency list changes; the package itself is installed editable.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/orderguard up $(UP_ARGS)

# pytest exits 5 when it collects no tests: that is not a failure of the suite.
test: install
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

# mypy reads the packages under their import names (orderguard.shared, ...): it cannot follow the
# editable install's finder, so the folders are linked into $(VENV)/mypy/orderguard/ as package-dir says.
lint: install
	$(BIN)/ruff check cli scenario shared services tests bench
	$(BIN)/ruff format --check cli scenario shared services tests bench
	mkdir -p $(VENV)/mypy/orderguard
	for d in cli scenario shared services; do ln -sfn ../../../$$d $(VENV)/mypy/orderguard/$$d; done
	cd $(VENV)/mypy && ../bin/mypy --config-file ../../pyproject.toml

# Regenerate the committed contract (AsyncAPI, JSON Schemas) from the event models.
contract: install
	$(BIN)/orderguard contract asyncapi --out docs/contract/asyncapi.yaml
	$(BIN)/orderguard contract schemas --out docs/contract/schemas

# Fails when docs/contract is stale or a change would break a published event version.
check-contract: install
	$(BIN)/orderguard contract check

# Regenerate docs/settings.md (every setting, from the settings models; a unit test fails when stale).
settings-doc: install
	$(BIN)/orderguard settings table --out docs/settings.md

# Offline checks of Dockerfile, compose and deploy/k8s (installs its own pinned tools).
check-deploy: install
	bash deploy/check.sh

# Regenerates the dashboards, their Kubernetes copies and the PrometheusRule from deploy/monitoring/.
dashboards:
	$(PYTHON) deploy/monitoring/dashboards.py

# Ten minutes of load while processes are killed with SIGKILL; prints the figures and the
# invariants broken (none, or it exits 1). CHAOS_ARGS="--duration 120 --seed 7" to vary.
chaos: install
	$(BIN)/python tests/chaos.py $(CHAOS_ARGS)

# Every performance row of issue 11 in one table (bench/system.py); BENCH_ARGS=--quick for a fast look.
BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/system.py $(BENCH_ARGS)

# Orders at a constant rate for half an hour on one `up`: does it stay as quick (bench/soak.py)?
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
