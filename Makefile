# Two commands do all the set-up on a fresh machine (Python >= 3.11 with venv):
#   make run    installs what is needed into .venv and runs the DeepSeek study
#   make test   installs the dev tools and runs ruff, mypy and the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint schema-doc clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/impact run events/deepseek.toml

lint: $(STAMP)
	$(BIN)/ruff check impact tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

schema-doc: $(STAMP)
	$(BIN)/python -m impact.storage > docs/schema.md

clean:
	rm -rf $(VENV) impact.duckdb reports/*/
