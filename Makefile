# Two commands on a fresh machine: `make demo` and `make test`. Each installs what is missing.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The official sign-off decks' open_pdks KLayout DRC deck, extracted from the PyPI wheel glayout==0.2.0
# (downloaded without its dependencies, sha256 pinned in flows/signoff.py); flows/signoff.py finds it here.
SIGNOFF_DECK := $(VENV)/share/fqrnn-signoff/sky130.lydrc

.PHONY: setup tools demo test test-quick test-slow lint bench clean

setup: tools $(STAMP) $(SIGNOFF_DECK)

# Debian's programs the flow runs, installed when missing: ngspice (simulation), klayout (the official DRC
# decks in batch) and netgen-lvs (LVS with the sky130A set-up); each Debian package is named as its program.
tools:
	@missing=""; for tool in ngspice klayout netgen-lvs; do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "not found:$$missing; installing Debian's packages"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(SIGNOFF_DECK): $(STAMP)
	$(PY) -m flows.signoff fetch-deck

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dask]'
	@touch $(STAMP)

demo: setup
	$(PY) -m flows.demo

# The test tiers (pyproject.toml, tests/conftest.py): quick (pure Python, a bare `pytest`), tools (real
# ngspice and KLayout runs) and slow. `make test`, what CI runs, is quick + tools; the quick tier needs no ngspice.
# pytest exits 5 when it collects no test: not a failure of the suite.
test: setup
	$(PY) -m pytest -q -m 'not slow' || [ $$? -eq 5 ]

test-quick: $(STAMP)
	$(PY) -m pytest -q || [ $$? -eq 5 ]

lint: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

test-slow: setup
	$(PY) -m pytest -q -m slow

# make bench BENCH=--full for the slow items; BENCH="scaling --quick" for one benchmark, smallest settings.
bench: setup
	$(PY) -m benchmarks.run $(BENCH)

clean:
	rm -rf $(VENV) build .pytest_cache
