# The two commands of README.rst. Both create or refresh the virtualenv in .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP := -m pip install -q --disable-pip-version-check

# `make test` runs a version matrix of four legs, one after the other:
#
#   main              PYTHON, newest releases: lint, mypy, the whole suite.
#   oldest-connector  Python 3.10, the oldest OpenTelemetry, wrapt and DuckDB (1.x) releases
#                     pyproject.toml admits, connector 4.0.0: the instrumentation suite but
#                     LOAD_TEST, and the warehouse's DuckDB-version tests. Connector 4.0.0
#                     predates parts of the driver that the other suites drive directly
#                     (databricks.sql.backend, Connection.session, cursor.rowcount, native
#                     telemetry, the SEA backend, per-statement query tags).
#   oldest            the same floors with the newest connector: every suite but the
#                     instrumentation suite (the previous leg's) and the examples (which run
#                     opentelemetry-instrument as tests/e2e does): OTLP export,
#                     auto-instrumentation, contrib integrations, the warehouse, aggregation,
#                     export, the README's tables.
#   newest            the newest Python found, newest releases: the suites where the
#                     interpreter shows (threads, fork and exit, sockets and TLS) --
#                     instrumentation but LOAD_TEST, aggregation, export, warehouse. The rest
#                     runs the same releases as main.
#
# The extra legs run on the Thrift backend alone (--backends); main runs every backend.
#
# Each extra leg installs itself into its own virtualenv (refreshed when pyproject.toml or this
# file changes) and is skipped, with a message, when its interpreter is not found: pyenv's
# build of that version, else pythonX.Y on PATH (OLDEST_PYTHON=... / NEWEST_PYTHON=... name
# one instead).
OLDEST_VERSION := 3.10
NEWEST_VERSIONS := 3.14 3.13 3.12
# The floors of pyproject.toml: OpenTelemetry (with the contrib packages the tests use),
# wrapt, and the DuckDB of the warehouse extra.
FLOORS := "opentelemetry-api==1.32.0" "opentelemetry-sdk==1.32.0" \
	"opentelemetry-exporter-otlp==1.32.0" "opentelemetry-proto==1.32.0" \
	"opentelemetry-instrumentation==0.53b0" "opentelemetry-semantic-conventions==0.53b0" \
	"opentelemetry-instrumentation-dbapi==0.53b0" "opentelemetry-distro==0.53b0" \
	"opentelemetry-instrumentation-sqlalchemy==0.53b0" "wrapt~=1.14.0" "duckdb~=1.1.0"
OLDEST_VENV := .venv-oldest
OLDEST_INSTALL := --upgrade -e ".[instruments,warehouse,test]" $(FLOORS)
# Connector 4.0.0 needs numpy < 2, hence a pyarrow that still builds against it.
OLDEST_CONNECTOR_VENV := .venv-oldest-connector
OLDEST_CONNECTOR_INSTALL := -e ".[warehouse,test]" $(FLOORS) \
	"databricks-sql-connector[pyarrow]==4.0.0" "pyarrow<17"
NEWEST_VENV := .venv-newest
NEWEST_INSTALL := --upgrade --upgrade-strategy eager -e ".[instruments,warehouse,test]"
# 16 threads x 1000 statements: minutes of CPU and no version-specific path; main runs it.
LOAD_TEST := tests/instrumentation/test_aggregation_e2e.py::test_sixteen_threads_thousand_statements_each
OLDEST_CONNECTOR_TESTS := tests/instrumentation tests/warehouse/test_warehouse_duckdb_versions.py \
	--deselect $(LOAD_TEST) \
	--deselect tests/instrumentation/test_databricks_native_parity.py::test_export_reports_what_native_telemetry_reports
OLDEST_TESTS := --ignore=tests/instrumentation --ignore=tests/examples
NEWEST_TESTS := tests/instrumentation tests/aggregation tests/export tests/warehouse \
	--deselect $(LOAD_TEST)

# The first interpreter among the X.Y versions given that runs and reports that version.
find_python = $(shell for v in $(1); do \
	for p in "$$(pyenv root 2>/dev/null)"/versions/$$v.*/bin/python$$v python$$v; do \
	"$$p" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$$v')" \
	>/dev/null 2>&1 && { command -v "$$p"; exit 0; }; done; done)
# Looked for once, on first use (`make demo` never looks).
OLDEST_PYTHON = $(eval OLDEST_PYTHON := $(call find_python,$(OLDEST_VERSION)))$(OLDEST_PYTHON)
NEWEST_PYTHON = $(eval NEWEST_PYTHON := $(call find_python,$(NEWEST_VERSIONS)))$(NEWEST_PYTHON)
version_of = $(shell $(1) -c "import sys; print('%d.%d' % sys.version_info[:2])")

# $(call leg_venv,VENV,INTERPRETER,PIP ARGUMENTS): (re)create VENV unless it already runs the
# interpreter's version, install, stamp.
define leg_venv
	[ "$$($(1)/bin/python -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" = \
	"$$($(2) -c 'import sys; print(sys.version_info[:2])')" ] || \
	{ rm -rf $(1) && $(2) -m venv $(1); }
	$(1)/bin/python $(PIP) --upgrade pip
	$(1)/bin/python $(PIP) $(3)
	touch $(1)/.installed-stamp
endef

# $(call leg_run,LEG,VENV,PYTEST ARGUMENTS): name the releases the leg runs on, then pytest.
define leg_run
	@$(2)/bin/python -c "import sys, importlib.metadata as m; print('make test: leg $(1):', \
	'Python %d.%d.%d,' % sys.version_info[:3], ', '.join(d + ' ' + m.version(d) for d in ( \
	'opentelemetry-sdk', 'opentelemetry-instrumentation', 'databricks-sql-connector', \
	'duckdb', 'wrapt')))"
	$(2)/bin/python -m pytest -q -p no:cacheprovider --backends=thrift $(3)
endef

# kernel: use_kernel=True. The index has databricks-sql-kernel 1.3.0 only: connector 4.9.0's
# [kernel] extra needs >= 1.4.0, 4.8.0's resolves. The kernel-specific tests, on PYTHON.
KERNEL_VENV := .venv-kernel
KERNEL_INSTALL := -e ".[warehouse,test]" "databricks-sql-connector[kernel,pyarrow]==4.8.0"
KERNEL_TESTS := tests/instrumentation tests/integrations/test_sea_backend.py tests/test_readme.py \
	--backends=kernel -k kernel

.PHONY: demo test lint typecheck pytest pytest-oldest pytest-oldest-connector pytest-newest \
	leg-oldest leg-oldest-connector leg-newest leg-kernel bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) --upgrade pip
	$(PY) $(PIP) -e ".[instruments,warehouse,test]"
	touch $(STAMP)

$(OLDEST_VENV)/.installed-stamp: pyproject.toml Makefile
	$(call leg_venv,$(OLDEST_VENV),$(OLDEST_PYTHON),$(OLDEST_INSTALL))

$(OLDEST_CONNECTOR_VENV)/.installed-stamp: pyproject.toml Makefile
	$(call leg_venv,$(OLDEST_CONNECTOR_VENV),$(OLDEST_PYTHON),$(OLDEST_CONNECTOR_INSTALL))

$(NEWEST_VENV)/.installed-stamp: pyproject.toml Makefile
	$(call leg_venv,$(NEWEST_VENV),$(NEWEST_PYTHON),$(NEWEST_INSTALL))

$(KERNEL_VENV)/.installed-stamp: pyproject.toml Makefile
	$(call leg_venv,$(KERNEL_VENV),$(PYTHON),$(KERNEL_INSTALL))

demo: $(STAMP)
	$(PY) demo/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks demo examples
	$(VENV)/bin/ruff format --check src tests benchmarks demo examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict

pytest: $(STAMP)
	$(PY) -m pytest -q

NO_OLDEST = echo "make test: skipped leg $(1): no Python $(OLDEST_VERSION) found (pyenv root, \
	PATH); OLDEST_PYTHON=... names one"

pytest-oldest:
	@$(if $(OLDEST_PYTHON),$(MAKE) --no-print-directory leg-oldest \
		OLDEST_PYTHON="$(OLDEST_PYTHON)",$(call NO_OLDEST,oldest))

pytest-oldest-connector:
	@$(if $(OLDEST_PYTHON),$(MAKE) --no-print-directory leg-oldest-connector \
		OLDEST_PYTHON="$(OLDEST_PYTHON)",$(call NO_OLDEST,oldest-connector))

pytest-newest:
	@$(if $(NEWEST_PYTHON),$(if $(filter $(call version_of,$(PYTHON)),\
	$(call version_of,$(NEWEST_PYTHON))),echo "make test: skipped leg newest: the newest \
	Python found ($(NEWEST_PYTHON)) is the main leg's",$(MAKE) --no-print-directory leg-newest \
	NEWEST_PYTHON="$(NEWEST_PYTHON)"),echo "make test: skipped leg newest: no Python \
	$(NEWEST_VERSIONS) found (pyenv root, PATH); NEWEST_PYTHON=... names one")

leg-oldest: $(OLDEST_VENV)/.installed-stamp
	$(call leg_run,oldest,$(OLDEST_VENV),$(OLDEST_TESTS))

leg-oldest-connector: $(OLDEST_CONNECTOR_VENV)/.installed-stamp
	$(call leg_run,oldest-connector,$(OLDEST_CONNECTOR_VENV),$(OLDEST_CONNECTOR_TESTS))

leg-newest: $(NEWEST_VENV)/.installed-stamp
	$(call leg_run,newest,$(NEWEST_VENV),$(NEWEST_TESTS))

leg-kernel: $(KERNEL_VENV)/.installed-stamp
	$(call leg_run,kernel,$(KERNEL_VENV),$(KERNEL_TESTS))

test: lint typecheck pytest pytest-oldest-connector pytest-oldest pytest-newest leg-kernel

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(OLDEST_CONNECTOR_VENV) $(NEWEST_VENV) $(KERNEL_VENV) \
		.mypy_cache \
		.pytest_cache .ruff_cache
