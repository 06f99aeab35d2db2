# devicemon: `make run` (local stack + demo) and `make test` (lint + all tests) set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export DEVICEMON_ARTIFACTS ?= $(CURDIR)/.artifacts

.PHONY: prereqs setup run stack test lint lint-infra format bench chaos clean

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml | prereqs
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json | prereqs
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# First, in seconds: what the goals need from the machine (Chromium, Node.js, a C compiler...).
# As root with apt it installs what is missing, otherwise it stops with the command to run.
# The list lives in local/prereqs.py, shared with .ci/run.
prereqs:
	@$(PYTHON) -m local.prereqs $(MAKECMDGOALS)

setup: $(PY_STAMP) $(NODE_STAMP)

run: setup
	$(PY) -m local.demo

# The local stack with a small seeded tenant, left up for the CLI (docs/cli.md) until Ctrl-C.
stack: setup
	$(PY) -m local.up

lint: $(PY_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

# The IaC scanner lives in its own venv: its pins conflict with the test tools'.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(CHECKOV_STAMP): infra/requirements-lint.txt | $(PY_STAMP)
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r infra/requirements-lint.txt
	touch $@

lint-infra: $(PY_STAMP) $(CHECKOV_STAMP)
	$(PY) infra/lint_checkov.py --checkov $(CHECKOV_VENV)/bin/checkov

# Two workers, each with its own local stack: the suite waits on I/O far more than it computes
# (one worker: 15.7 min, two: 8.8 min on this 2-core machine; docs/local-stack.md).
TEST_WORKERS ?= 2

test: setup lint lint-infra
	$(PY) -m pytest -n $(TEST_WORKERS)

format: $(PY_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: setup
	$(PY) -m bench

# Fault matrix (docs/reliability.md): the 200-device mass event under one fault per row, on the
# local stack (loopback only); ~10-15 minutes. Not part of `make test`.
chaos: setup
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) node_modules .artifacts .pytest_cache .mypy_cache .ruff_cache
