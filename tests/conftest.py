"""Shared fixtures: a local warehouse, SDK providers with in-memory exporters, the instrumentor.

Backends: a test marked ``backends(...)`` (``every_backend``: all three) runs once per connector
backend the ``warehouse`` fixture connects with: ``thrift`` (the default), ``sea``
(``use_sea=True``, the REST Statement Execution API) and ``kernel`` (``use_kernel=True``, the
Rust kernel). The marked tests are those whose facts come from a backend's own hook points or
behaviour; the rest of the instrumentation (options, runtime wiring, hooks of the user, the
exporter's opt-in and deadlines, concurrency) is the same on every backend and runs over Thrift
only. A backend the installed connector lacks is skipped; ``--backends`` chooses which run
(``--backends kernel -k kernel`` in a virtualenv with the kernel).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.aggregation.sinks import CollectingSink
from opentelemetry_instrumentation_dbsql.log_once import failure_counts
from opentelemetry_instrumentation_dbsql.runtime import active_runtime
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

BACKENDS = ("thrift", "sea", "kernel")
_BACKEND_KWARG = {"sea": "use_sea", "kernel": "use_kernel"}
every_backend = pytest.mark.backends(*BACKENDS)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def backend_missing(backend: str) -> str | None:
    """Why the installed connector cannot run ``backend``; None when it can."""
    if backend == "sea" and not _importable("databricks.sql.backend.sea.backend"):
        return "this connector has no SEA backend"
    if backend == "kernel" and not (
        _importable("databricks.sql.backend.kernel.client") and _importable("databricks_sql_kernel")
    ):
        return "the kernel backend is not installed (databricks-sql-connector[kernel])"
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated connector backends the per-backend tests run on "
        f"(default: all of {', '.join(BACKENDS)}; those not installed are skipped)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_instrumentation_failures: the test provokes internal failures on purpose"
    )
    config.addinivalue_line(
        "markers",
        "backends(*names): run the test once per connector backend named (thrift, sea, kernel)",
    )
    chosen = [b.strip() for b in str(config.getoption("--backends")).split(",") if b.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"--backends: unknown backend(s) {sorted(unknown)}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test marked ``backends`` once per backend it names."""
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None:
        return
    allowed = marker.args
    chosen = str(metafunc.config.getoption("--backends")).split(",")
    params = []
    for backend in BACKENDS:
        if backend not in allowed or backend not in chosen:
            continue
        missing = backend_missing(backend)
        marks = [pytest.mark.skip(reason=missing)] if missing else []
        params.append(pytest.param(backend, id=backend, marks=marks))
    if not params:
        # Every backend this test runs on was left out: one skipped instance says so.
        params.append(
            pytest.param(
                allowed[0], id=allowed[0], marks=pytest.mark.skip(reason="backend not chosen")
            )
        )
    metafunc.parametrize("backend", params, indirect=True)


def cloudfetch_files(backend: str, files: int) -> int:
    """How many CloudFetch files to script for a result read on ``backend``: one on the kernel.

    Kernel 1.3.0 loses the last file of a result now and then (its consumer can see the link
    fetcher's end of stream before the last link is cached), returning fewer rows; the
    instrumentation records nothing of the kernel's files anyway.
    """
    return 1 if backend == "kernel" else files


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The connector backend of this test's connections (``thrift`` unless parametrized)."""
    return str(getattr(request, "param", "thrift"))


class BackendWarehouse(LocalWarehouse):
    """A local warehouse whose ``connect_kwargs`` open connections on one backend (unless the
    caller names one)."""

    def __init__(self, backend: str = "thrift", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend

    def connect_kwargs(
        self, catalog: str | None = "main", schema: str | None = "default", **extra: Any
    ) -> dict[str, Any]:
        kwarg = _BACKEND_KWARG.get(self.backend)
        if kwarg is not None and not ({"use_sea", "use_kernel"} & set(extra)):
            extra[kwarg] = True
        kwargs = super().connect_kwargs(catalog, schema, **extra)
        if extra.get("use_sea") and "enable_telemetry" not in extra and _native_turned_off(kwargs):
            # The SEA form turns the driver's own telemetry off: it would go to port 80 (the
            # origin without its port). When the instrumentation turns it off anyway, the
            # connection is left as an application leaves it, for the Databricks export to
            # decide as on any backend (an explicit enable_telemetry=False opts out of it).
            del kwargs["enable_telemetry"]
        return kwargs


def _native_turned_off(kwargs: dict[str, Any]) -> bool:
    """Whether the active instrumentation turns the driver's own telemetry off for a connection
    made with ``kwargs`` minus their ``enable_telemetry``."""
    runtime = active_runtime()
    if runtime is None or runtime.exporter is None:
        return False
    without = {k: v for k, v in kwargs.items() if k != "enable_telemetry"}
    override = runtime.exporter.native_telemetry_kwargs(without, runtime.options)
    return override.get("enable_telemetry") is False


@pytest.fixture(autouse=True)
def _no_internal_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """The instrumentation swallows its own failures; tests must still see them."""
    before = failure_counts()
    yield
    if request.node.get_closest_marker("allow_instrumentation_failures"):
        return
    after = failure_counts()
    new = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert not new, f"internal instrumentation failures: {new}"


@pytest.fixture(scope="session")
def shared_warehouse() -> Iterator[LocalWarehouse]:
    """One warehouse for tests that only read; seeded with a small table."""
    with LocalWarehouse() as wh:
        wh.execute_sql(
            "CREATE TABLE orders AS SELECT i AS id, 'customer_' || (i % 50) AS customer, "
            "i * 1.5 AS amount FROM range(1000) t(i)"
        )
        yield wh


@pytest.fixture
def warehouse(backend: str) -> Iterator[LocalWarehouse]:
    """A fresh warehouse (fresh host: no process-global driver state shared across tests)
    whose ``connect_kwargs`` connect on the test's ``backend``."""
    with BackendWarehouse(backend) as wh:
        wh.execute_sql(
            "CREATE TABLE orders AS SELECT i AS id, 'customer_' || (i % 50) AS customer, "
            "i * 1.5 AS amount FROM range(1000) t(i)"
        )
        yield wh


@dataclass
class Telemetry:
    """What one instrumented test recorded."""

    spans_exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    sink: CollectingSink
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    instrumentor: DbsqlInstrumentor

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def spans_by_role(self, role: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if (s.attributes or {}).get("databricks.span.role") == role]

    def consumption(self, statement: ReadableSpan) -> ReadableSpan:
        """The span that carries a statement's result consumption: its RESULT span when
        fetching took more round trips, else the STATEMENT span itself (the result arrived
        whole with the execute response)."""
        for span in self.spans_by_role("RESULT"):
            if span.parent is not None and span.parent.span_id == statement.context.span_id:
                return span
        assert "db.response.returned_rows" in (statement.attributes or {}), statement.name
        return statement

    def metrics(self) -> dict[str, list[Any]]:
        data = self.metric_reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


def make_telemetry(**options: Any) -> Telemetry:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    sink = CollectingSink()
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        record_sink=sink,
        **options,
    )
    return Telemetry(exporter, reader, sink, tracer_provider, meter_provider, instrumentor)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """The instrumentor on, with in-memory span and metric exporters and a collecting sink."""
    t = make_telemetry()
    try:
        yield t
    finally:
        t.instrumentor.uninstrument()
        t.tracer_provider.shutdown()
