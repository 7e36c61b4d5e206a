# logmesh — the two commands: `make dev` runs the mesh locally, `make test` runs every test.
# A fresh machine needs only python3 (3.11): the first target bootstraps uv into .tools/ and
# installs the locked environment into .venv/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

SEEDS ?= 200
SEED_START ?= 100000
STORAGE ?= memory

.PHONY: help env proto proto-check lint fmt test test-fast sim bench bench-log dev clean

help:
	@echo "make dev         run the logmesh mesh locally"
	@echo "make test        create the environment, check generated code, run every test"
	@echo "make lint        ruff + mypy --strict"
	@echo "make sim SEEDS=N SEED_START=S [STORAGE=engine]   run N more simulator seeds from S"
	@echo "make bench-log   log engine benchmark (JSON lines)"
	@echo "make bench       cluster benchmark (JSON lines)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard services/*/pyproject.toml)
	$(UV) sync --locked --all-packages --quiet
	@touch $@

env: $(VENV)/.synced

proto: env
	$(BIN)/python tools/genproto.py

proto-check: env
	$(BIN)/python tools/genproto.py --check

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy logmesh services/storage/src services/gateway/src services/authz/src services/discovery/src

fmt: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# pytest exits 5 when it collects no test at all; that is a failure here, not a pass.
test: env proto-check
	$(BIN)/pytest -q

sim: env
	$(BIN)/python tests/simulation/cli.py --seeds $(SEEDS) --seed-start $(SEED_START) --storage $(STORAGE)

bench-log: env
	@mkdir -p bench-results
	$(BIN)/python services/storage/bench/bench_log.py --out bench-results/log.jsonl

bench: env
	@mkdir -p bench-results
	$(BIN)/python tests/bench/bench_cluster.py --out bench-results/cluster.jsonl

dev: env
	$(BIN)/logmesh dev

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis bench-results
