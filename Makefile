# The two commands of README.rst. Both create or refresh the virtualenv in .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[instruments,warehouse,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks demo
	$(VENV)/bin/ruff format --check src tests benchmarks demo

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
