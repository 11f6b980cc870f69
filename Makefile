# The two commands of README.rst. Both create or refresh the virtualenv in .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

OLDEST_VENV := .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.installed-stamp
# The oldest connector release the package claims to support (package.py); it needs numpy < 2,
# hence a pyarrow that still builds against it.
OLDEST_PINS := "databricks-sql-connector[pyarrow]==4.0.0" "pyarrow<17"

.PHONY: demo test lint typecheck pytest pytest-oldest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[instruments,warehouse,test]"
	touch $(STAMP)

$(OLDEST_STAMP): pyproject.toml
	test -x $(OLDEST_PY) || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(OLDEST_PY) -m pip install -q --disable-pip-version-check -e ".[warehouse,test]" $(OLDEST_PINS)
	touch $(OLDEST_STAMP)

demo: $(STAMP)
	$(PY) demo/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks demo examples
	$(VENV)/bin/ruff format --check src tests benchmarks demo examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict

pytest: $(STAMP)
	$(PY) -m pytest -q

# The instrumentation suite again, against the oldest supported connector release.
pytest-oldest: $(OLDEST_STAMP)
	$(OLDEST_PY) -m pytest -q -p no:cacheprovider tests/instrumentation

test: lint typecheck pytest pytest-oldest

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .mypy_cache .pytest_cache .ruff_cache
