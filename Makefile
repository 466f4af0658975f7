# EatCloud developer and CI entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=24'
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]' -c constraints.txt
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Make .venv and install EatCloud with its test and dev tools

# helm for the chart tests, built from the Go module proxy (no other way to fetch it here).
HELM_VERSION := v3.22.0
HELM := .stack/tools/helm-$(HELM_VERSION)/helm

$(HELM):
	@command -v go >/dev/null || { echo "go is needed to build helm for the chart tests" >&2; exit 1; }
	GOBIN=$(CURDIR)/$(dir $(HELM)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: tools
tools: $(HELM) ## Build the test tools (helm, for the chart tests) into .stack/tools

.PHONY: stack-up
stack-up: install ## Start the local stack (Kafka, PostgreSQL+PostGIS, Redis, Kinesis emulator)
	$(BIN)/eatcloud stack up

.PHONY: stack-down
stack-down: install ## Stop what stack-up started
	$(BIN)/eatcloud stack down

.PHONY: stack-status
stack-status: install ## Show each local service and whether it answers
	$(BIN)/eatcloud stack status

.PHONY: run
run: install ## Start the stack, the worker and the API (a dead one is restarted); Ctrl-C stops them
	$(BIN)/eatcloud run

.PHONY: test
test: stack-up tools ## Run the whole test suite against the local stack
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: chaos
chaos: stack-up tools ## Faults under load, long form (EATCLOUD_CHAOS_ROUNDS, default 10); writes docs/reliability.md
	EATCLOUD_CHAOS_ROUNDS=$${EATCLOUD_CHAOS_ROUNDS:-10} EATCLOUD_CHAOS_REPORT=docs/reliability.md \
		$(BIN)/pytest -s -m faults tests/chaos

.PHONY: soak
soak: stack-up ## 10 minutes at half the HTTP peak, watched for growth (SOAK_ARGS); writes docs/reliability.md
	$(BIN)/python bench/soak.py --chart docs/soak.png --report docs/reliability.md $(SOAK_ARGS)

.PHONY: bench
bench: stack-up ## Saga benchmark (BENCH_ARGS="--orders 8000 --rate 0 --workers 1"); see docs/benchmarks.md
	$(BIN)/python bench/saga.py $(BENCH_ARGS)

.PHONY: bench-edge
bench-edge: stack-up ## HTTP checkout and outbox relay benchmark (BENCH_ARGS="--seconds 10"); see docs/benchmarks.md
	$(BIN)/python bench/edge.py $(BENCH_ARGS)

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check eatcloud tests bench
	$(BIN)/ruff format --check eatcloud tests bench
	$(BIN)/mypy

.PHONY: constraints
constraints: install ## Re-pin constraints.txt from the current .venv
	{ head -n 3 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^eatcloud'; } > constraints.new
	mv constraints.new constraints.txt

.PHONY: clean
clean: ## Remove caches (not the stack's data: see stack-down)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info
