# The two commands of the README. Each sets up what it needs on a fresh machine, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint venv bench browser

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/dualwrite demo

lint: venv
	$(BIN)/ruff check bridge tests bench
	$(BIN)/ruff format --check bridge tests bench
	$(BIN)/mypy

# Debian's chromium for the dashboard's browser test (apt-get; idempotent).
browser: venv
	bash scripts/install-browser.sh $(VENV)

test: lint browser
	$(BIN)/pytest -q -p no:cacheprovider

bench: venv
	$(BIN)/python -m bench
