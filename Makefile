# The two commands of the README: `make demo` and `make test`.
# Both create .venv with everything the project needs, from the project's own files.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml adapters/tryton_module/pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test lint typecheck unit install clean

$(STAMP):
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -e ".[tryton,test]" -e adapters/tryton_module
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crm-bridge demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) crm-bridge-demo .pytest_cache .mypy_cache .ruff_cache
