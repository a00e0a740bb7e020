# Every target does its own set-up: a fresh clone needs only python3 and make.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup test lint diagnostics metrics report bench chaos clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## The test command the README gives and CI runs: lint, types, then the suite.
test: lint
	$(PY) -m pytest -q

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
