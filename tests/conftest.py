"""Shared fixtures: a local warehouse, SDK providers with in-memory exporters, the instrumentor."""

from __future__ import annotations

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
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_instrumentation_failures: the test provokes internal failures on purpose"
    )


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
def warehouse() -> Iterator[LocalWarehouse]:
    """A fresh warehouse (fresh host: no process-global driver state shared across tests)."""
    with LocalWarehouse() as wh:
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
