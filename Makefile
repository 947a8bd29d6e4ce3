# Two commands on a fresh machine: `make serve` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The base dependencies alone (the offline verifier), at the versions of $(LOCK).
VERIFIER_LOCK := requirements-verifier.lock
# Base and server (no dev tools), at the versions of $(LOCK): what the container installs.
SERVER_LOCK := requirements-server.lock
UV_VERSION := 0.13.8

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# Installs come from the committed lock only: every package pinned with its hashes, the build
# backend included (hence --no-build-isolation), so a fresh machine gets what CI tested.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# pdqhash ships as source only. Its build tools (Cython, numpy, setuptools) come from the
	@# lock first, so the whole lock then installs without build isolation: nothing unpinned
	@# is fetched to build it.
	awk '/^[^ #]/ { keep = ($$1 ~ /^(cython|numpy|setuptools)==/) } keep' $(LOCK) > $(VENV)/build.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/build.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps --no-build-isolation -r $(LOCK)
	@# setuptools warns about editable installs in general; nothing to act on.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

serve: $(STAMP) ## Run the service (embedded PostgreSQL unless REGISTRY_DATABASE_URL is set)
	$(BIN)/registry serve

lint: $(STAMP) ## ruff, mypy (strict), import-linter contracts, OpenAPI drift
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/registry openapi --check

browser: ## Debian's Chromium for the browser tests (apt-get, when missing and run as root)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "could not install chromium: the browser tests will be skipped"; \
	else echo "chromium is missing and this user cannot install it: the browser tests will be skipped"; fi

test: lint browser ## Lint, then the whole test suite (browser tests included) on a real PostgreSQL
	$(BIN)/pytest

bench: $(STAMP) ## Benchmarks, each row next to its floor; HTTP rows with wrk (apt-get, as root)
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) \
		|| echo "could not install wrk: the HTTP rows will be skipped"; \
	else echo "wrk is missing and this user cannot install it (as root: apt-get install -y wrk): the HTTP rows will be skipped"; fi
	$(BIN)/python -m bench

openapi: $(STAMP) ## Regenerate openapi/openapi.json
	$(BIN)/registry openapi

format: $(STAMP) ## Apply ruff's formatter and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

LOCK_FLAGS = --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' $(UPGRADE) --quiet

lock: ## Re-resolve requirements.lock (base, server, client, dev), -verifier.lock (base), -server.lock
	@test -x $(VENV)-lock/bin/uv || ($(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet uv==$(UV_VERSION))
	$(VENV)-lock/bin/uv pip compile pyproject.toml --extra server --extra client --extra dev --group pyproject.toml:bootstrap \
		$(LOCK_FLAGS) -o $(LOCK)
	@# Constrained by the full lock, so a third party's verifier runs the versions CI tested.
	$(VENV)-lock/bin/uv pip compile pyproject.toml --constraint $(LOCK) $(LOCK_FLAGS) -o $(VERIFIER_LOCK)
	@# The service without the dev tools, for the container image (Dockerfile); same versions.
	$(VENV)-lock/bin/uv pip compile pyproject.toml --extra server --group pyproject.toml:bootstrap \
		--constraint $(LOCK) $(LOCK_FLAGS) -o $(SERVER_LOCK)

upgrade: ## Like lock, but move every package to its newest allowed version
	$(MAKE) lock UPGRADE=--upgrade

clean: ## Remove the virtualenv and caches (keeps .registry data)
	rm -rf $(VENV) $(VENV)-lock .mypy_cache .ruff_cache .pytest_cache

.PHONY: help install serve lint browser test bench openapi format lock upgrade clean
