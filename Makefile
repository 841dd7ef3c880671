# The two commands of the README: `make demo` and `make test`.
# Both create .venv with everything the project needs, from the project's own files.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml adapters/tryton_module/pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test test-erps dolibarr-tree lint typecheck unit install clean dist catalogs

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

# Bring the message catalogs (crm_bridge/locale/*/LC_MESSAGES/crm_bridge.po) up to the
# code: new messages are added untranslated (tests/test_i18n.py fails until they are
# translated), gone ones dropped.  The .po files are compiled when first used: no .mo.
catalogs: $(STAMP)
	$(BIN)/python -m crm_bridge.i18n

# The live ERP tests only (tests/test_*dolibarr_live.py): they need a Dolibarr tree.
test-erps: $(STAMP)
	$(BIN)/pytest -rs tests/test_dolibarr_live.py tests/test_golden_dolibarr_live.py

# A Dolibarr source tree for the live tests, outside the repository:
# the first commit of DOLIBARR_GIT (an import of upstream 23.0.0-beta: htdocs/, scripts/).
DOLIBARR_VERSION ?= 23.0.0-beta
DOLIBARR_GIT ?= https://github.com/mrizkymxx/dolibarr
DOLIBARR_TREE ?= $(or $(CRM_BRIDGE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/crm-bridge)/dolibarr/$(DOLIBARR_VERSION)
dolibarr-tree:
	@if [ -f "$(DOLIBARR_TREE)/htdocs/filefunc.inc.php" ]; then echo "$(DOLIBARR_TREE) is there"; else \
	  set -e; tmp=$$(mktemp -d); \
	  if [ -d "$(DOLIBARR_GIT)" ]; then git_dir="$(DOLIBARR_GIT)"; \
	  else git clone -q --bare --filter=blob:none "$(DOLIBARR_GIT)" $$tmp/git; git_dir=$$tmp/git; fi; \
	  root=$$(git --git-dir=$$git_dir rev-list --max-parents=0 HEAD | tail -1); \
	  mkdir -p "$(DOLIBARR_TREE)"; \
	  git --git-dir=$$git_dir archive $$root htdocs scripts | tar -x -C "$(DOLIBARR_TREE)"; \
	  rm -rf $$tmp; echo "Dolibarr $(DOLIBARR_VERSION) in $(DOLIBARR_TREE)"; fi

# The two release wheels IT staff install: crm-bridge itself and the companion
# Tryton module (for the Tryton server), in dist/.
dist: $(STAMP)
	rm -rf dist build adapters/tryton_module/build
	$(BIN)/pip wheel -q --disable-pip-version-check --no-deps -w dist . adapters/tryton_module
	rm -rf build adapters/tryton_module/build *.egg-info adapters/tryton_module/*.egg-info
	@ls dist

clean:
	rm -rf dist $(VENV) crm-bridge-demo .pytest_cache .mypy_cache .ruff_cache
