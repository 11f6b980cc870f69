"""Spans and metrics of real driver calls, exported by the real OTLP/gRPC exporters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import databricks.sql
import pytest
from databricks.sql.exc import ServerOperationError
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.otlp_receiver import OtlpReceiver, ReceivedPoint, ReceivedSpan

SCOPE = "opentelemetry.instrumentation.dbsql"
SERVICE = "dbsql-otlp-e2e"


@dataclass
class Pipeline:
    """SDK providers exporting over OTLP/gRPC to the receiver, with the instrumentor on."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    instrumentor: DbsqlInstrumentor


@pytest.fixture
def pipeline(otlp_receiver: OtlpReceiver) -> Iterator[Pipeline]:
    resource = Resource.create({"service.name": SERVICE})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_receiver.endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=otlp_receiver.endpoint, insecure=True),
        export_interval_millis=60_000,  # exported by force_flush only
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Pipeline(tracer_provider, meter_provider, instrumentor)
    finally:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _by_role(spans: list[ReceivedSpan], role: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.attributes.get("databricks.span.role") == role]


def _one(spans: list[ReceivedSpan], name: str, role: str = "STATEMENT") -> ReceivedSpan:
    found = [s for s in _by_role(spans, role) if s.name == name]
    assert len(found) == 1, f"{role} spans named {name!r}: {[s.name for s in spans]}"
    return found[0]


def _points(points: list[ReceivedPoint], **attributes: object) -> list[ReceivedPoint]:
    return [p for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())]


def test_workload_reaches_the_receiver(
    warehouse: LocalWarehouse, otlp_receiver: OtlpReceiver, pipeline: Pipeline
) -> None:
    select_sql = "SELECT id, amount FROM orders WHERE id < 10 ORDER BY id"
    warehouse.script(select_sql, page_size=4)  # fetched in pages: a RESULT span follows
    connection: Any = databricks.sql.connect(**warehouse.connect_kwargs())
    with connection as conn, conn.cursor() as cursor:
        cursor.execute(select_sql)
        rows = cursor.fetchall()
        select_id = cursor.query_id
        with pytest.raises(ServerOperationError):
            cursor.execute("SELECT * FROM missing_table WHERE id = 5")
        failed_id = cursor.query_id
        cursor.execute("UPDATE orders SET amount = 0 WHERE id < 7")
        updated = cursor.rowcount
        update_id = cursor.query_id
        cursor.tables(catalog_name="main", schema_name="default")
        tables = cursor.fetchall()
        tables_id = cursor.query_id
        session_id = conn.get_session_id_hex()
    pipeline.instrumentor.uninstrument()
    assert len(rows) == 10
    assert updated == 7
    assert [t.TABLE_NAME for t in tables] == ["orders"]

    assert pipeline.tracer_provider.force_flush(10_000)
    assert pipeline.meter_provider.force_flush(10_000)
    assert otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= 7, timeout=10)
    spans = otlp_receiver.spans()
    assert {s.scope_name for s in spans} == {SCOPE}
    assert {s.resource.get("service.name") for s in spans} == {SERVICE}
    assert len({s.trace_id for s in _by_role(spans, "STATEMENT")}) == 4  # each its own trace
    for span in spans:
        assert span.kind == "CLIENT"
        assert span.attributes["db.system.name"] == "databricks"
        assert span.attributes["databricks.session.id"] == session_id
        if span.attributes["databricks.span.role"] == "RESULT":
            continue  # a child of its STATEMENT span: server and namespace are not repeated
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == warehouse.port
        assert span.attributes["db.namespace"] == "main|default"
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0

    (connect,) = _by_role(spans, "CREATE_SESSION")
    (close,) = _by_role(spans, "DELETE_SESSION")
    assert connect.name == "connect 127.0.0.1"
    assert close.name == "close 127.0.0.1"

    select = _one(spans, "SELECT orders")
    assert select.status_code == "UNSET"
    assert select.parent_span_id is None
    assert select.attributes["db.query.text"] == (
        "SELECT id, amount FROM orders WHERE id < ? ORDER BY id"
    )
    assert select.attributes["db.query.summary"] == "SELECT orders"
    assert select.attributes["db.operation.name"] == "SELECT"
    assert select.attributes["db.collection.name"] == "orders"
    assert select.attributes["databricks.statement.id"] == select_id
    assert select.attributes["databricks.result.open"] is True
    select_result = _one(spans, "FETCH SELECT orders", role="RESULT")
    assert select_result.trace_id == select.trace_id
    assert select_result.parent_span_id == select.span_id
    assert select_result.attributes["databricks.statement.id"] == select_id
    assert select_result.attributes["db.response.returned_rows"] == 10

    failed = _one(spans, "SELECT missing_table")
    assert failed.status_code == "ERROR"
    assert failed.attributes["error.type"] == "databricks.sql.exc.ServerOperationError"
    assert failed.attributes["db.response.status_code"] == "42P01"
    assert failed.attributes["db.query.text"] == "SELECT * FROM missing_table WHERE id = ?"
    assert failed.attributes["databricks.statement.id"] == failed_id
    assert "databricks.result.open" not in failed.attributes
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "databricks.sql.exc.ServerOperationError"
    assert not [
        s for s in _by_role(spans, "RESULT") if s.attributes["databricks.statement.id"] == failed_id
    ]

    update = _one(spans, "UPDATE orders")
    assert update.attributes["db.query.text"] == "UPDATE orders SET amount = ? WHERE id < ?"
    assert update.attributes["db.operation.name"] == "UPDATE"
    assert update.attributes["databricks.rows.modified"] == 7
    assert update.attributes["databricks.statement.id"] == update_id
    assert "error.type" not in update.attributes

    metadata = _one(spans, "tables main|default")
    assert metadata.attributes["databricks.operation.type"] == "LIST_TABLES"
    assert metadata.attributes["databricks.statement.type"] == "METADATA"
    assert metadata.attributes["databricks.statement.id"] == tables_id
    # The table list arrived whole with the response: its rows are counted on the statement.
    assert metadata.attributes["db.response.returned_rows"] == 1
    assert "databricks.result.open" not in metadata.attributes

    # Sanitized text everywhere: no literal of the workload leaves the process.
    for span in spans:
        for value in span.attributes.values():
            assert "missing_table WHERE id = 5" not in str(value)
            assert "amount = 0" not in str(value)

    metrics = otlp_receiver.latest_metrics()
    duration = metrics["db.client.operation.duration"]
    assert {p.kind for p in duration} == {"histogram"}
    assert {p.unit for p in duration} == {"s"}
    assert sum(p.count or 0 for p in duration) == 4
    assert duration[0].explicit_bounds == (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
    (failed_point,) = _points(duration, **{"error.type": "databricks.sql.exc.ServerOperationError"})
    assert failed_point.count == 1
    assert failed_point.attributes["db.operation.name"] == "SELECT"
    assert failed_point.attributes["db.response.status_code"] == "42P01"
    ok_points = [p for p in duration if "error.type" not in p.attributes]
    assert sorted(str(p.attributes["db.operation.name"]) for p in ok_points) == [
        "SELECT",
        "UPDATE",
        "tables",
    ]
    for point in duration:
        assert point.attributes["db.system.name"] == "databricks"
        assert point.attributes["server.port"] == warehouse.port
        assert point.resource.get("service.name") == SERVICE
        assert point.sum is not None and point.sum > 0
        # Never a per-statement or per-session id on a metric.
        assert not any("statement.id" in key or "session.id" in key for key in point.attributes)

    returned = metrics["db.client.response.returned_rows"]
    (select_rows,) = _points(returned, **{"db.operation.name": "SELECT"})
    assert select_rows.count == 1
    assert select_rows.sum == 10
    (tables_rows,) = _points(returned, **{"db.operation.name": "tables"})
    assert tables_rows.sum == 1
    assert not _points(returned, **{"error.type": "databricks.sql.exc.ServerOperationError"})

    (create_time,) = metrics["db.client.connection.create_time"]
    assert create_time.count == 1
    connection_count = metrics["db.client.connection.count"]
    assert [p.value for p in connection_count] == [0]  # opened, then closed
    assert connection_count[0].monotonic is False


def test_nothing_after_uninstrument(
    warehouse: LocalWarehouse, otlp_receiver: OtlpReceiver, pipeline: Pipeline
) -> None:
    pipeline.instrumentor.uninstrument()
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchall()[0][0] == 1
    assert pipeline.tracer_provider.force_flush(10_000)
    assert pipeline.meter_provider.force_flush(10_000)
    assert otlp_receiver.spans() == []
    assert "db.client.operation.duration" not in otlp_receiver.metrics()
