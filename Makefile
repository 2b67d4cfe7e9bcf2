# Taskdeck: `make run` sets up and starts everything; `make test` runs the suite.
# Each step runs only when needed: a second `make run` installs nothing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUN_VERSION := 1.4.5
BUN := .tools/bun/bin/bun
CHROMIUM ?= $(or $(TASKDECK_CHROMIUM),/usr/bin/chromium)
export TASKDECK_CHROMIUM := $(CHROMIUM)

.PHONY: run test test-unit test-integration test-e2e install install-test lock browser clean

run: install
	$(BIN)/taskdeck run

# Two runs: Playwright's sync API keeps an event loop open for the rest of a
# pytest session, which async tests collected after it cannot share.
test: install-test browser
	$(BIN)/pytest tests/unit tests/integration
	$(BIN)/pytest tests/e2e

test-unit: install-test
	$(BIN)/pytest tests/unit

test-integration: install-test
	$(BIN)/pytest tests/integration

test-e2e: install-test browser
	$(BIN)/pytest tests/e2e

install: $(VENV)/.installed $(BUN)

install-test: install $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# requirements.lock pins every package, transitive ones too, so a fresh
# install resolves the same set; `make lock` refreshes it after pyproject changes.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements.lock -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements.lock $(VENV)/.installed
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

lock: install-test
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

# Reflex would download bun from the internet; take it from the npm registry.
$(BUN):
	npm install --global --prefix .tools/bun --allow-scripts=bun bun@$(BUN_VERSION)

# The e2e tests drive Debian's Chromium (Playwright cannot download browsers here).
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "Chromium not found at $(CHROMIUM): run 'sudo apt-get install -y chromium' or set CHROMIUM=/path"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf .web .states data
