"""Statement records from the real driver, through the instrumentation and the processor."""

from __future__ import annotations

import threading
from typing import Any

import databricks.sql
import pytest
from databricks.sql.exc import ServerOperationError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.aggregation.records import (
    ConnectionRecord,
    StatementRecord,
)
from opentelemetry_instrumentation_dbsql.aggregation.sinks import CollectingSink
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import statement_id_of
from tests.conftest import Telemetry, cloudfetch_files, every_backend

DRIVER_VERSION = tuple(int(p) for p in databricks.sql.__version__.split(".")[:2])


def _flush(telemetry_or_instrumentor: Any) -> None:
    runtime = telemetry_or_instrumentor._runtime
    assert runtime is not None and runtime.processor is not None
    assert runtime.processor.force_flush(10_000)


def _statements(sink: CollectingSink) -> dict[str, StatementRecord]:
    return {r.statement_id: r for r in sink.statement_records}


@every_backend
def test_record_counters_match_what_the_warehouse_served(
    warehouse: Any, telemetry: Telemetry, backend: str
) -> None:
    polled = "SELECT 5 AS five"
    fetched = "SELECT i AS n FROM range(30000) t(i)"
    warehouse.script(polled, running_polls=2, poll_delay=0.01)
    warehouse.script(
        fetched,
        result_format="cloudfetch",
        lz4=True,
        page_size=10000,
        cloudfetch_files=cloudfetch_files(backend, 3),
    )
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
        with conn.cursor() as cursor:
            cursor.execute(polled)
            cursor.fetchall()
            polled_id = statement_id_of(cursor)
            cursor.execute(fetched)
            assert len(cursor.fetchall()) == 30000
            fetched_id = statement_id_of(cursor)
            with pytest.raises(ServerOperationError):
                cursor.execute("SELECT * FROM no_such_table")
            failed_id = statement_id_of(cursor)
        session_id = conn.get_session_id_hex()
    _flush(telemetry.instrumentor)
    records = _statements(telemetry.sink)
    assert polled_id and fetched_id and failed_id

    record = records[polled_id]
    served = warehouse.served[polled_id]
    assert record.session_id == session_id
    assert record.operation_type == "EXECUTE_STATEMENT"
    assert served.n_polls >= 2
    # The kernel polls in native code: none of its polls is seen.
    assert record.poll_count == (0 if backend == "kernel" else served.n_polls)
    assert record.returned_rows == 1
    assert record.complete and record.error is None

    record = records[fetched_id]
    served = warehouse.served[fetched_id]
    assert record.returned_rows == served.rows == 30000
    assert record.consumption_latency_ms is not None
    if backend == "kernel":  # format, links, downloads and bytes stay inside the kernel
        assert record.result_format is None and record.compressed is None
        assert record.result_bytes is None
        assert record.chunks.total_chunks_present is None
        assert record.chunks.total_chunks_iterated is None
    else:
        _check_cloudfetch_record(record, served)

    record = records[failed_id]
    assert record.error is not None
    assert record.error.category == "not_found"
    assert record.error.terminal is True
    assert record.returned_rows is None

    kinds = [r.operation_type for r in telemetry.sink.connection_records]
    assert kinds == ["CREATE_SESSION", "DELETE_SESSION"]
    assert all(r.session_id == session_id for r in telemetry.sink.connection_records)
    assert telemetry.sink.connection_records[0].backend == backend  # the CREATE_SESSION


def _check_cloudfetch_record(record: StatementRecord, served: Any) -> None:
    assert record.result_format == "EXTERNAL_LINKS"
    assert record.compressed is True
    assert record.chunks.total_chunks_present == len(served.files) == 3
    assert record.chunks.total_chunks_iterated == 3
    if DRIVER_VERSION >= (4, 1):  # older releases do not report a file's wire size
        assert record.result_bytes == served.compressed_bytes
    assert record.chunks.sum_chunks_download_time_ms is not None


def test_sixteen_threads_thousand_statements_each(warehouse: Any, telemetry: Telemetry) -> None:
    threads_count, per_thread, connections_count = 16, 1000, 4
    connections = [
        databricks.sql.connect(**warehouse.connect_kwargs()) for _ in range(connections_count)
    ]
    ids: list[list[str]] = [[] for _ in range(threads_count)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            # threadsafety = 1: threads share connections, each uses its own cursor.
            with connections[slot % connections_count].cursor() as cursor:
                for i in range(per_thread):
                    cursor.execute(f"SELECT {i} AS n, {slot} AS s")
                    rows = cursor.fetchall()
                    assert rows[0][0] == i
                    ids[slot].append(statement_id_of(cursor) or "")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for conn in connections:
        conn.close()
    assert not errors, errors[:3]
    _flush(telemetry.instrumentor)
    runtime = telemetry.instrumentor._runtime
    stats = runtime.processor.stats()
    assert stats.records_dropped == 0
    statements = telemetry.sink.statement_records
    expected = {i for slot in ids for i in slot}
    assert len(expected) == threads_count * per_thread
    assert len(statements) == threads_count * per_thread
    assert {r.statement_id for r in statements} == expected
    served = warehouse.served  # a copy: take it once
    for record in statements:
        assert record.returned_rows == 1
        assert record.complete
        assert record.error is None
        assert record.poll_count == served[record.statement_id].n_polls
    connection_kinds = sorted(r.operation_type for r in telemetry.sink.connection_records)
    assert connection_kinds == ["CREATE_SESSION"] * 4 + ["DELETE_SESSION"] * 4


def test_sampler_that_drops_everything_still_yields_records(warehouse: Any) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    sink = CollectingSink()
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(tracer_provider=provider, record_sink=sink)
    try:
        with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
            with conn.cursor() as cursor:
                for i in range(20):
                    cursor.execute(f"SELECT {i}")
                    cursor.fetchall()
        _flush(instrumentor)
        assert len(sink.statement_records) == 20
        assert all(r.returned_rows == 1 and r.complete for r in sink.statement_records)
        assert len(sink.connection_records) == 2
    finally:
        instrumentor.uninstrument()


def test_records_without_any_sdk_configured(warehouse: Any) -> None:
    sink = CollectingSink()
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(record_sink=sink)  # the global providers are the API's no-ops
    try:
        with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
        _flush(instrumentor)
        assert len(sink.statement_records) == 1
        assert isinstance(sink.connection_records[0], ConnectionRecord)
    finally:
        instrumentor.uninstrument()


def test_unclosed_statement_is_not_lost(warehouse: Any) -> None:
    sink = CollectingSink()
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(record_sink=sink)
    sql = "SELECT id FROM orders"
    warehouse.script(sql, page_size=100)  # fetched in pages: the statement stays open
    conn = databricks.sql.connect(**warehouse.connect_kwargs())
    cursor = conn.cursor()
    cursor.execute(sql)
    cursor.fetchmany(10)
    statement_id = statement_id_of(cursor)
    try:
        instrumentor.uninstrument()  # shuts the processor down with the cursor still open
        (record,) = [r for r in sink.statement_records if r.statement_id == statement_id]
        assert not record.complete
        assert record.completion_reason == "shutdown"
    finally:
        conn.close()
