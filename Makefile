# Two commands do all the set-up on a fresh machine (Python >= 3.11 with venv):
#   make run    installs impact into .venv and runs the DeepSeek study
#   make test   adds the dev tools and runs ruff, mypy and the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint schema-doc clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/impact run events/deepseek.toml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check impact tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

schema-doc: $(VENV)/.installed
	$(BIN)/python -m impact.storage > docs/schema.md

clean:
	rm -rf $(VENV) impact.duckdb reports/*/
