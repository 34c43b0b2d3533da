# Quick start: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What is installed into the environment: the demo needs the agent and its live view only;
# the tests and checks need the development tools too.
DEMO_STAMP := $(VENV)/.demo-stamp
DEV_STAMP := $(VENV)/.dev-stamp
DURATION ?=
DEMO_ARGS := $(if $(DURATION),--duration $(DURATION),)

INTEROP := tests/interop/node_modules/.installed-stamp

.PHONY: demo test lint servers bench clean venv

# A usable environment: Python 3.11 or newer, and a .venv whose interpreter still runs (a
# .venv made by another Python, or moved, is rebuilt).
venv:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Python 3.11 or newer is needed ($(PYTHON) is $$($(PYTHON) --version 2>&1)): set PYTHON=python3.11" >&2; exit 1; }
	@if [ -d $(VENV) ] && ! $(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then \
		echo "$(VENV) is stale (its Python is gone or too old): rebuilding it" >&2; rm -rf $(VENV); fi
	@[ -x $(BIN)/python ] || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --upgrade pip; }

$(DEMO_STAMP): pyproject.toml | venv
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

$(DEV_STAMP): pyproject.toml | venv
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(DEV_STAMP) $(DEMO_STAMP)

demo: venv $(DEMO_STAMP)
	$(BIN)/edge-agent demo $(DEMO_ARGS)

# The servers and the browser the tests start (Debian's influxdb, mosquitto, chromium).
servers:
	bash scripts/ensure-test-servers.sh

# Device implementations from other stacks (npm), for the interop tests.
$(INTEROP): tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(INTEROP)

test: venv $(DEV_STAMP) servers $(INTEROP)
	$(BIN)/python -m pytest -q

lint: venv $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check collectors analytics edge_agent demo dashboards
	$(BIN)/mypy

bench: venv $(DEV_STAMP) servers
	$(BIN)/python benchmarks/sink.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/interop/node_modules
