# Every target does its own set-up: a fresh clone needs only python3 and make.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup test lint diagnostics metrics report bench chaos clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

## The test command the README gives and CI runs: lint, types, then the suite.
## Three xdist workers, on two cores too: a test mostly waits on the processes it starts (conftest.py: how tests are shared out).
test: lint
	$(PY) -m pytest -q -n 3

lint: $(STAMP)
	$(VENV)/bin/ruff check mcp_core tests bin bench
	$(VENV)/bin/mypy

## The main job: this repository's diagnostics run on the bundled local executor.
diagnostics: $(STAMP)
	MCP_RUNNER_SERVER=local scripts/run-mcp-diagnostics.sh

metrics: $(STAMP)
	scripts/mcp-runner-metrics.js

## A self-contained HTML page of the task's runs: .runs/<task>/report.html
report: $(STAMP)
	scripts/mcp-runner-report.sh

## Every benchmark at full size (BENCHMARKS.md); not in CI, which runs them at a smoke size.
bench: $(STAMP)
	$(PY) bench/run_all.py

## Fault injection and the soak at a larger size than CI (README, "Guarantees"); figures on CHAOS-FIGURES lines.
## Each size can be overridden from the environment, e.g. CHAOS_KILLS=100 make chaos
chaos: export CHAOS_DRIVERS ?= 4
chaos: export CHAOS_KILLS ?= 40
chaos: export CHAOS_SAVE_KILLS ?= 200
chaos: export CHAOS_SERVERS ?= local,tiny
chaos: export SOAK_RUNS ?= 16
chaos: export SOAK_SECONDS ?= 45
chaos: export SOAK_POLLERS ?= 4
chaos: $(STAMP)
	$(PY) -m pytest tests/chaos -q -s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
