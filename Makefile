# The two commands of the README: `make demo` and `make test`.
# Both create .venv with everything the project needs, from the project's own files.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml adapters/tryton_module/pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test lint typecheck unit install clean dist

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

# The two release wheels IT staff install: crm-bridge itself and the companion
# Tryton module (for the Tryton server), in dist/.
dist: $(STAMP)
	rm -rf dist build adapters/tryton_module/build
	$(BIN)/pip wheel -q --disable-pip-version-check --no-deps -w dist . adapters/tryton_module
	rm -rf build adapters/tryton_module/build *.egg-info adapters/tryton_module/*.egg-info
	@ls dist

clean:
	rm -rf dist $(VENV) crm-bridge-demo .pytest_cache .mypy_cache .ruff_cache
