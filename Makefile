# The two commands of the README. Each sets up what it needs on a fresh machine, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint venv bench browser docs screenshots

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,sandbox]'
	touch $@

demo: venv
	$(BIN)/dualwrite demo

lint: venv
	$(BIN)/ruff check bridge tests bench scripts
	$(BIN)/ruff format --check bridge tests bench scripts
	$(BIN)/mypy

# The generated parts of the docs (the import graph in docs/architecture.md; a test checks it).
docs: venv
	$(BIN)/python -m scripts.import_graph

# Debian's chromium for the dashboard's browser test (apt-get; idempotent).
browser: venv
	bash scripts/install-browser.sh $(VENV)

# The dashboard's pictures in docs/img/ (docs/operations.md), taken by every browser test as it runs.
# CI runs the same tests without DUALWRITE_UPDATE_SCREENSHOT: it checks them and leaves docs/ alone.
screenshots: browser
	DUALWRITE_UPDATE_SCREENSHOT=1 $(BIN)/pytest -q -p no:cacheprovider $(wildcard tests/ops/test_*browser*.py)

test: lint browser
	$(BIN)/pytest -q -p no:cacheprovider

bench: venv
	$(BIN)/python -m bench
