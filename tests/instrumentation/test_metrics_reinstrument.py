"""One MeterProvider across instrument cycles and ``instrument_connection`` runtimes.

The SDK returns its cached meter for the same scope and keeps the first instrument of each
name, ignoring the callbacks of a second observable one. Every runtime on one provider must
therefore count into the instruments that the provider reads.
"""

from __future__ import annotations

from typing import Any

import databricks.sql
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.aggregation.sinks import CollectingSink
from opentelemetry_instrumentation_dbsql.export.stats import (
    DropReason,
    ExportStats,
    register_export_metrics,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

POLLED = "SELECT 7 AS polled"
FETCHED = "SELECT i FROM range(20000) r(i)"
POLLS_PER_RUN = 2
FILES_PER_RUN = 2


def _metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _workload(warehouse: LocalWarehouse, conn: Any | None = None) -> None:
    own = conn is None
    conn = conn or databricks.sql.connect(**warehouse.connect_kwargs())
    try:
        with conn.cursor() as cursor:
            cursor.execute(POLLED)
            assert cursor.fetchall()[0][0] == 7
            cursor.execute(FETCHED)
            assert len(cursor.fetchall()) == 20000
    finally:
        if own:
            conn.close()


def _script(warehouse: LocalWarehouse) -> None:
    warehouse.script(POLLED, running_polls=POLLS_PER_RUN, poll_delay=0.01)
    warehouse.script(FETCHED, result_format="cloudfetch", cloudfetch_files=FILES_PER_RUN)


def _total(points: list[Any]) -> float:
    return float(sum(p.value for p in points))


def _assert_runs_counted(reader: InMemoryMetricReader, runs: int, connections: int) -> None:
    found = _metrics(reader)
    assert sum(p.count for p in found["db.client.response.returned_rows"]) == 2 * runs
    assert sum(p.count for p in found["db.client.operation.duration"]) >= 2 * runs
    assert _total(found["databricks.client.operation.status_polls"]) >= POLLS_PER_RUN * runs
    assert _total(found["databricks.client.result.chunks"]) >= FILES_PER_RUN * runs
    assert _total(found["databricks.client.result.bytes"]) > 0
    assert sum(p.count for p in found["db.client.connection.create_time"]) == connections
    assert _total(found["db.client.connection.count"]) == 0


def _one_run(reader: InMemoryMetricReader) -> dict[str, float]:
    found = _metrics(reader)
    return {
        "polls": _total(found["databricks.client.operation.status_polls"]),
        "chunks": _total(found["databricks.client.result.chunks"]),
        "bytes": _total(found["databricks.client.result.bytes"]),
        "durations": float(sum(p.count for p in found["db.client.operation.duration"])),
        "rows": float(sum(p.count for p in found["db.client.response.returned_rows"])),
    }


def test_instrument_cycles_on_one_meter_provider_count_every_cycle(
    warehouse: LocalWarehouse,
) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    _script(warehouse)
    instrumentor = DbsqlInstrumentor()
    snapshots = []
    try:
        for _ in range(3):
            instrumentor.instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                record_sink=CollectingSink(),
            )
            try:
                _workload(warehouse)
            finally:
                instrumentor.uninstrument()
            snapshots.append(_one_run(reader))
        first, *later = snapshots
        assert first["polls"] >= POLLS_PER_RUN
        assert first["chunks"] >= FILES_PER_RUN
        for cycle, snapshot in enumerate(later, start=2):
            for name, value in snapshot.items():
                assert value == pytest.approx(first[name] * cycle), (cycle, name, snapshots)
        _assert_runs_counted(reader, runs=3, connections=3)
    finally:
        meter_provider.shutdown()
        tracer_provider.shutdown()


def test_instrument_connection_with_options_counts_into_the_same_instruments(
    warehouse: LocalWarehouse,
) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    _script(warehouse)
    connections = [databricks.sql.connect(**warehouse.connect_kwargs()) for _ in range(3)]
    try:
        # Three runtimes of their own: each call passes options.
        for conn, mode in zip(connections, ("off", "raw", "sanitized"), strict=True):
            DbsqlInstrumentor.instrument_connection(
                conn,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                capture_query_text=mode,
            )
            _workload(warehouse, conn)
        found = _metrics(reader)
        assert sum(p.count for p in found["db.client.response.returned_rows"]) == 2 * 3
        assert _total(found["databricks.client.operation.status_polls"]) >= POLLS_PER_RUN * 3
        assert _total(found["databricks.client.result.chunks"]) >= FILES_PER_RUN * 3
        assert _total(found["databricks.client.result.bytes"]) > 0
    finally:
        for conn in connections:
            conn.close()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def test_export_instruments_read_the_latest_sink_on_a_meter() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    meter = meter_provider.get_meter("export-stats")
    first, second = ExportStats(), ExportStats()
    first.record_exported(3)
    second.record_exported(5)
    second.record_dropped(DropReason.SHUTDOWN, 2)
    try:
        register_export_metrics(meter, first)
        register_export_metrics(meter, second)
        found = _metrics(reader)
        assert _total(found["databricks.telemetry.export.records"]) == 5
        dropped = {
            p.attributes["reason"]: p.value for p in found["databricks.telemetry.export.dropped"]
        }
        assert dropped[DropReason.SHUTDOWN.value] == 2
        assert sum(dropped.values()) == 2
    finally:
        meter_provider.shutdown()
