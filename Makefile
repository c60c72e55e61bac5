# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs hybridmask, runs `hybridmask demo` on synthetic faces (offline)
#   make test   creates .venv, installs hybridmask with its test extra, runs the test suite
#   make proof  the attacks' proof on ORL's unprotected model (~17 min on 2 cores; CI runs it after the tests)
#   make lint   ruff (lint and format check) and mypy (types), configured in pyproject.toml
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines: this exact torch build lies on local disk; any other spec may pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: demo test proof lint setup clean

demo: $(VENV)/.installed
	$(VENV)/bin/hybridmask demo $(DEMO_ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

proof: $(VENV)/.installed
	$(PY) -m pytest -m proof -s $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV)
