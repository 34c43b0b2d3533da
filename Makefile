# Quick start: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DURATION ?=
DEMO_ARGS := $(if $(DURATION),--duration $(DURATION),)

INTEROP := tests/interop/node_modules/.installed-stamp

.PHONY: demo test lint influxdb bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edge-agent demo $(DEMO_ARGS)

influxdb:
	bash scripts/ensure-influxdb.sh

# Device implementations from other stacks (npm), for the interop tests.
$(INTEROP): tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(INTEROP)

test: $(STAMP) influxdb $(INTEROP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check collectors analytics edge_agent demo
	$(BIN)/mypy

bench: $(STAMP) influxdb
	$(BIN)/python benchmarks/sink.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/interop/node_modules
