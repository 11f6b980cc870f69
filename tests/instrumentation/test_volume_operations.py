"""Staging (volume) operations from the real driver against the local warehouse: the statement
span names the operation, a VOLUME_TRANSFER child covers the HTTP transfer to the pre-signed
URL, records and the Databricks payload carry the operation, and neither the URL nor a local
or volume path is recorded anywhere."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import databricks.sql
import pytest
from databricks.sql.client import Cursor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.export.wire_format import encode_proto_log, frontend_log
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from opentelemetry_instrumentation_dbsql.testing.warehouse.staging import (
    StagingCommand,
    VolumeStore,
    parse_staging,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.wire import Request
from tests.conftest import Telemetry, make_telemetry
from tests.export.helpers import statement_record

# The staging statement is answered over Thrift or the REST API (the kernel refuses it: it has
# no volume API); the transfer to the pre-signed URL is the same whatever the backend.
STAGING_BACKENDS = pytest.mark.backends("thrift", "sea")
STATEMENT = "STATEMENT"
TRANSFER = "VOLUME_TRANSFER"
VOLUME = "/Volumes/main/default/landing"
DATA = b"id,amount\n1,2.50\n2,7.25\n"


def _driver_has_http_client() -> bool:
    try:
        import databricks.sql.common.unified_http_client  # noqa: F401
    except ImportError:
        return False
    return True


# Releases that send the transfer through connection.http_client (not 4.0.0, which calls
# requests directly) give the transfer span its HTTP status and byte count.
HTTP_DETAILS = _driver_has_http_client()
STREAM_PUT = hasattr(Cursor, "_handle_staging_put_stream")


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _connect(warehouse: LocalWarehouse, local: Path, **extra: Any) -> Any:
    return databricks.sql.connect(
        **warehouse.connect_kwargs(staging_allowed_local_path=str(local), **extra)
    )


def _tree(telemetry: Telemetry) -> tuple[Any, Any]:
    """The one statement span and its one transfer child."""
    (statement,) = telemetry.spans_by_role(STATEMENT)
    (transfer,) = telemetry.spans_by_role(TRANSFER)
    assert transfer.parent is not None
    assert transfer.parent.span_id == statement.context.span_id
    assert transfer.context.trace_id == statement.context.trace_id
    times = [statement.start_time, transfer.start_time, transfer.end_time, statement.end_time]
    assert times == sorted(t or 0 for t in times)
    return statement, transfer


def _check_statement(statement: Any, operation: str, statement_id: str) -> None:
    attributes = _attrs(statement)
    assert statement.name == operation
    assert attributes["db.operation.name"] == operation
    assert attributes["db.query.summary"] == operation
    assert attributes["databricks.volume.operation"] == operation
    assert attributes["databricks.statement.id"] == statement_id


def _check_transfer(
    transfer: Any,
    *,
    operation: str,
    direction: str,
    method: str,
    statement_id: str,
    status: int,
    size: int | None,
) -> None:
    attributes = _attrs(transfer)
    assert transfer.kind is SpanKind.CLIENT
    assert transfer.name == f"volume {direction}"
    assert attributes["db.system.name"] == "databricks"
    assert attributes["databricks.volume.operation"] == operation
    assert attributes["databricks.volume.direction"] == direction
    assert attributes["http.request.method"] == method
    assert attributes["databricks.statement.id"] == statement_id
    if HTTP_DETAILS:
        assert attributes["http.response.status_code"] == status
        assert attributes.get("databricks.volume.bytes") == size
    else:
        assert "http.response.status_code" not in attributes
        assert "databricks.volume.bytes" not in attributes


@STAGING_BACKENDS
def test_put_from_a_local_file(warehouse: Any, telemetry: Telemetry, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_bytes(DATA)
    with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
        cursor.execute(f"PUT '{source}' INTO '{VOLUME}/orders.csv' OVERWRITE")
        statement_id = cursor.query_id
    assert warehouse.volume_files == {f"{VOLUME}/orders.csv": DATA}
    (served,) = warehouse.volume_transfers
    assert (served.method, served.statement_id, served.request_bytes) == (
        "PUT",
        statement_id,
        len(DATA),
    )

    statement, transfer = _tree(telemetry)
    _check_statement(statement, "PUT", statement_id)
    assert _attrs(statement)["db.query.text"] == "PUT ? INTO ? OVERWRITE"
    _check_transfer(
        transfer,
        operation="PUT",
        direction="upload",
        method="PUT",
        statement_id=statement_id,
        status=served.status,
        size=served.request_bytes,
    )
    assert "databricks.volume.stream" not in _attrs(transfer)
    assert statement.status.status_code is transfer.status.status_code is StatusCode.UNSET


@STAGING_BACKENDS
def test_get_to_a_local_file(warehouse: Any, telemetry: Telemetry, tmp_path: Path) -> None:
    warehouse.put_volume_file(f"{VOLUME}/orders.csv", DATA)
    target = tmp_path / "copy.csv"
    with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
        cursor.execute(f"GET '{VOLUME}/orders.csv' TO '{target}'")
        statement_id = cursor.query_id
    assert target.read_bytes() == DATA
    (served,) = warehouse.volume_transfers
    assert (served.method, served.status, served.response_bytes) == ("GET", 200, len(DATA))

    statement, transfer = _tree(telemetry)
    _check_statement(statement, "GET", statement_id)
    _check_transfer(
        transfer,
        operation="GET",
        direction="download",
        method="GET",
        statement_id=statement_id,
        status=200,
        size=len(DATA),
    )


@STAGING_BACKENDS
def test_remove(warehouse: Any, telemetry: Telemetry, tmp_path: Path) -> None:
    warehouse.put_volume_file(f"{VOLUME}/orders.csv", DATA)
    with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
        cursor.execute(f"REMOVE '{VOLUME}/orders.csv'")
        statement_id = cursor.query_id
    assert warehouse.volume_files == {}
    (served,) = warehouse.volume_transfers
    assert (served.method, served.status) == ("DELETE", 204)

    statement, transfer = _tree(telemetry)
    _check_statement(statement, "REMOVE", statement_id)
    _check_transfer(
        transfer,
        operation="REMOVE",
        direction="delete",
        method="DELETE",
        statement_id=statement_id,
        status=204,
        size=None,
    )


@pytest.mark.skipif(not STREAM_PUT, reason="this connector has no execute(input_stream=)")
def test_put_from_a_stream(warehouse: Any, telemetry: Telemetry, tmp_path: Path) -> None:
    with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
        cursor.execute(
            f"PUT '__input_stream__' INTO '{VOLUME}/stream.csv'", input_stream=io.BytesIO(DATA)
        )
        statement_id = cursor.query_id
    assert warehouse.volume_files == {f"{VOLUME}/stream.csv": DATA}

    statement, transfer = _tree(telemetry)
    _check_statement(statement, "PUT", statement_id)
    _check_transfer(
        transfer,
        operation="PUT",
        direction="upload",
        method="PUT",
        statement_id=statement_id,
        status=200,
        size=len(DATA),
    )
    assert _attrs(transfer)["databricks.volume.stream"] is True


@pytest.mark.skipif(
    databricks.sql.__version__.startswith("4.0."),
    reason="connector 4.0's get_async_execution_result reads no rows from the local warehouse",
)
def test_async_remove(warehouse: Any, telemetry: Telemetry, tmp_path: Path) -> None:
    """execute_async: the driver transfers in get_async_execution_result, still inside the
    statement span."""
    warehouse.put_volume_file(f"{VOLUME}/orders.csv", DATA)
    with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
        cursor.ASYNC_DEFAULT_POLLING_INTERVAL = 0.01
        cursor.execute_async(f"REMOVE '{VOLUME}/orders.csv'")
        cursor.get_async_execution_result()
    assert warehouse.volume_files == {}
    statement, transfer = _tree(telemetry)
    assert _attrs(statement)["databricks.volume.operation"] == "REMOVE"
    assert _attrs(transfer)["databricks.volume.direction"] == "delete"


def _flush(telemetry: Telemetry) -> None:
    runtime = telemetry.instrumentor._runtime
    assert runtime is not None and runtime.processor is not None
    assert runtime.processor.force_flush(10_000)


def _put(cursor: Any, source: Path) -> None:
    cursor.execute(f"PUT '{source}' INTO '{VOLUME}/orders.csv'")


def _get(cursor: Any, source: Path) -> None:
    cursor.execute(f"GET '{VOLUME}/missing.csv' TO '{source.parent / 'copy.csv'}'")


@pytest.mark.parametrize(
    "case",
    [
        # Uploads are not retried by the driver, 4xx never: each fails at its first answer.
        (_put, 403, 403),
        (_put, 500, 500),
        (_get, None, 404),  # the file is not there
    ],
    ids=["put-403", "put-500", "get-404"],
)
def test_failing_transfer(
    warehouse: Any, tmp_path: Path, case: tuple[Callable[[Any, Path], None], int | None, int]
) -> None:
    """The driver raises what it raises uninstrumented; both spans record the failure."""
    run, fault, status = case
    direction = "upload" if run is _put else "download"
    source = tmp_path / "orders.csv"
    source.write_bytes(DATA)

    def failure() -> tuple[BaseException, str | None]:
        if fault is not None:
            warehouse.fault_volume_transfer(fault, method="PUT")
        with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
            with pytest.raises(databricks.sql.exc.Error) as raised:
                run(cursor, source)
            return raised.value, cursor.query_id

    plain, _ = failure()
    telemetry = make_telemetry()
    try:
        instrumented, statement_id = failure()
        _flush(telemetry)
    finally:
        telemetry.instrumentor.uninstrument()
        telemetry.tracer_provider.shutdown()
    assert type(instrumented) is type(plain)
    assert str(instrumented) == str(plain)
    assert f"unsuccessful: {status}-" in str(instrumented)
    assert getattr(instrumented, "context", None) == getattr(plain, "context", None)
    assert [t.status for t in warehouse.volume_transfers] == [status, status]

    statement, transfer = _tree(telemetry)
    error_type = f"{type(plain).__module__}.{type(plain).__qualname__}"
    for span in (statement, transfer):
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == error_type
        assert [e.name for e in span.events] == ["exception"]
    assert _attrs(transfer)["databricks.volume.direction"] == direction
    if HTTP_DETAILS:
        assert _attrs(transfer)["http.response.status_code"] == status
    assert _attrs(statement)["databricks.statement.id"] == statement_id
    (record,) = [r for r in telemetry.sink.statement_records if r.statement_id == statement_id]
    assert record.error is not None and record.error.error_type == error_type
    assert record.volume_operation_type == ("PUT" if direction == "upload" else "GET")


def test_slow_transfer_is_inside_the_transfer_span(
    warehouse: Any, telemetry: Telemetry, tmp_path: Path
) -> None:
    warehouse.put_volume_file(f"{VOLUME}/orders.csv", DATA)
    delay = 0.2
    warehouse.fault_volume_transfer(method="DELETE", delay=delay)
    with _connect(warehouse, tmp_path) as conn, conn.cursor() as cursor:
        cursor.execute(f"REMOVE '{VOLUME}/orders.csv'")
    _, transfer = _tree(telemetry)
    # The server held the answer that long: a lower bound, whatever the machine's speed.
    assert transfer.end_time - transfer.start_time >= delay * 1e9
    assert transfer.status.status_code is StatusCode.UNSET


def _workload(warehouse: LocalWarehouse, local: Path) -> dict[str, str]:
    """PUT, GET, stream PUT (where the driver has it) and REMOVE; statement id by operation."""
    source = local / "orders.csv"
    source.write_bytes(DATA)
    ids: dict[str, str] = {}
    with _connect(warehouse, local) as conn, conn.cursor() as cursor:
        cursor.execute(f"PUT '{source}' INTO '{VOLUME}/orders.csv' OVERWRITE")
        ids["PUT"] = cursor.query_id
        cursor.execute(f"GET '{VOLUME}/orders.csv' TO '{local / 'copy.csv'}'")
        ids["GET"] = cursor.query_id
        if STREAM_PUT:
            cursor.execute(
                f"PUT '__input_stream__' INTO '{VOLUME}/stream.csv'",
                input_stream=io.BytesIO(DATA),
            )
            ids["PUT stream"] = cursor.query_id
        cursor.execute(f"REMOVE '{VOLUME}/orders.csv'")
        ids["REMOVE"] = cursor.query_id
        cursor.execute("SELECT 1 AS n")
        cursor.fetchall()
        ids["SELECT"] = cursor.query_id
    return ids


EXPECTED_TYPES = {"PUT": "PUT", "PUT stream": "PUT", "GET": "GET", "REMOVE": "DELETE"}


def test_records_carry_the_volume_operation(
    warehouse: Any, telemetry: Telemetry, tmp_path: Path
) -> None:
    ids = _workload(warehouse, tmp_path)
    _flush(telemetry)
    records = {r.statement_id: r for r in telemetry.sink.statement_records}
    for name, statement_id in ids.items():
        assert records[statement_id].volume_operation_type == EXPECTED_TYPES.get(name), name
        assert records[statement_id].error is None
    recorded = "\n".join(repr(r) for r in telemetry.sink.records)
    for value in _forbidden(warehouse, tmp_path):
        assert value not in recorded, value


def test_databricks_payload_carries_the_volume_operation(warehouse: Any, tmp_path: Path) -> None:
    """The default pipeline (no SDK provider: no spans, records only) to /telemetry-ext."""
    warehouse.feature_flags.configure(enabled=True)
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument()
    try:
        ids = _workload(warehouse, tmp_path)
    finally:
        instrumentor.uninstrument()  # flushes within its deadline
    events = {e.get("sql_statement_id"): e for e in warehouse.telemetry.events()}
    for name, statement_id in ids.items():
        event = events[statement_id]
        if name in EXPECTED_TYPES:
            # The connector's own model names volume_path too, but never fills it.
            assert event["vol_operation"] == {"volume_operation_type": EXPECTED_TYPES[name]}
        else:
            assert "vol_operation" not in event
        assert event["sql_operation"]["operation_detail"]["operation_type"] == "EXECUTE_STATEMENT"


def _forbidden(warehouse: LocalWarehouse, local: Path) -> list[str]:
    """What must never be recorded: every pre-signed URL, its path and query string, the
    signature, the local directory and the volume paths."""
    values = [str(local), VOLUME]
    for served in warehouse.volume_transfers:
        url = urlsplit(served.url)
        values += [served.url, url.path, url.query, served.volume_path]
        values += [part.split("=", 1)[1] for part in url.query.split("&")]
    return values


def _everything_recorded(
    exporter: InMemorySpanExporter, reader: InMemoryMetricReader, warehouse: LocalWarehouse
) -> str:
    texts: list[str] = []
    for span in exporter.get_finished_spans():
        texts.append(span.name)
        texts.append(span.status.description or "")
        texts += [f"{k}={v!r}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            texts += [f"{k}={v!r}" for k, v in (event.attributes or {}).items()]
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                texts.append(metric.name)
                for point in metric.data.data_points:
                    texts += [f"{k}={v!r}" for k, v in (point.attributes or {}).items()]
    texts += [json.dumps(p, default=repr) for p in warehouse.telemetry.payloads]
    return "\n".join(texts)


def test_no_url_or_path_is_recorded(warehouse: Any, tmp_path: Path) -> None:
    """Spans, metrics and the Databricks payload, over successful transfers and one whose
    driver error quotes the pre-signed URL (its retries exhausted on dropped connections)."""
    warehouse.feature_flags.configure(enabled=True)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        _workload(warehouse, tmp_path)
        warehouse.put_volume_file(f"{VOLUME}/orders.csv", DATA)
        with _connect(warehouse, tmp_path, _retry_stop_after_attempts_count=1) as conn:
            with conn.cursor() as cursor:
                warehouse.fault_volume_transfer(method="GET", reset=True, times=2)
                with pytest.raises(Exception) as raised:
                    cursor.execute(f"GET '{VOLUME}/orders.csv' TO '{tmp_path / 'again.csv'}'")
                warehouse.clear_faults()
    finally:
        instrumentor.uninstrument()  # flushes the Databricks export
        tracer_provider.shutdown()
    if HTTP_DETAILS:
        # The driver's message quotes the URL: the instrumentation must not repeat it.
        assert urlsplit(warehouse.volume_transfers[-1].url).query in str(raised.value)
    failed = [s for s in exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert {_attrs(s)["databricks.span.role"] for s in failed} == {STATEMENT, TRANSFER}
    assert any(e.name == "exception" for s in failed for e in s.events)
    assert any(e.get("vol_operation") for e in warehouse.telemetry.events())
    recorded = _everything_recorded(exporter, reader, warehouse)
    for value in _forbidden(warehouse, tmp_path):
        assert value not in recorded, value


@pytest.mark.parametrize(
    ("volume_type", "expected"),
    [
        ("PUT", {"volume_operation_type": "PUT"}),
        ("GET", {"volume_operation_type": "GET"}),
        ("DELETE", {"volume_operation_type": "DELETE"}),
        (None, None),
        # Not an enumeration value of the wire format: never written.
        ("REMOVE", None),
        (f"{VOLUME}/orders.csv", None),
    ],
)
def test_wire_format_vol_operation(volume_type: str | None, expected: Any) -> None:
    # The connector's telemetry model (and the tests built on it) arrived after 4.0.0.
    models = pytest.importorskip("databricks.sql.telemetry.models.event")
    from tests.export.test_export_wire_format import assert_matches_model, context

    record = statement_record("s-1", "h.example.com", 443, volume_operation_type=volume_type)
    encoded = json.loads(encode_proto_log(record, context()))
    event = encoded["entry"]["sql_driver_log"]
    assert event.get("vol_operation") == expected
    # The fast encoder and the plain one agree (up to the event id).
    plain = json.loads(json.dumps(frontend_log(record, context())))
    assert plain["entry"] == encoded["entry"]
    # The model's fields; volume_path, which it declares required, is left out on purpose.
    volume_fields = {f.name for f in dataclasses.fields(models.DriverVolumeOperation)}
    assert set(event.pop("vol_operation", {})) <= volume_fields - {"volume_path"}
    assert_matches_model(event, models.TelemetryEvent)


def test_warehouse_staging_statements_and_signed_urls() -> None:
    """The local warehouse's side: what it takes for a staging statement, and that a URL
    serves only the method and file it was signed for."""
    assert parse_staging("PUT '/tmp/a''s.csv' INTO '/Volumes/c/s/v/a.csv' OVERWRITE;") == (
        StagingCommand("PUT", "/Volumes/c/s/v/a.csv", "/tmp/a's.csv", overwrite=True)
    )
    assert parse_staging(" get '/Volumes/c/s/v/a.csv' to '/tmp/b.csv'") == StagingCommand(
        "GET", "/Volumes/c/s/v/a.csv", "/tmp/b.csv"
    )
    assert parse_staging("REMOVE '/Volumes/c/s/v/a.csv'") == StagingCommand(
        "REMOVE", "/Volumes/c/s/v/a.csv"
    )
    assert parse_staging("SELECT 'PUT'") is None

    store = VolumeStore()
    row = store.issue(StagingCommand("PUT", "/Volumes/c/s/v/a.csv", "/tmp/a.csv"), "id-1", "")
    assert row.column_names == ["operation", "presignedUrl", "localFile", "headers"]
    url = row.column("presignedUrl")[0].as_py()
    forged = url.replace("Signature=", "Signature=0")
    assert store.handle(Request("PUT", forged, {}, b"x")).status == 403
    assert store.handle(Request("GET", url, {}, b"")).status == 403  # signed for PUT
    assert store.handle(Request("PUT", url, {}, b"abc")).status == 200
    assert store.files == {"/Volumes/c/s/v/a.csv": b"abc"}
    assert [(t.method, t.status, t.statement_id) for t in store.transfers] == [
        ("PUT", 403, "id-1"),
        ("GET", 403, "id-1"),
        ("PUT", 200, "id-1"),
    ]
