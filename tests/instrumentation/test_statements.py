"""Statement spans and metrics from the real driver against the local warehouse, on each
backend (``backend``: thrift, sea, kernel). Where a backend keeps a fact out of reach (the
kernel's polls, pages and downloads run in native code), the test shows it is left out."""

from __future__ import annotations

import threading
from typing import Any

import databricks.sql
import pytest
from databricks.sql.exc import DatabaseError, Error, ServerOperationError
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_instrumentation_dbsql.hooks.statement_ids import statement_id_of
from tests.aggregation.helpers import wait_until
from tests.conftest import Telemetry, cloudfetch_files, every_backend

# The facts of a statement come from each backend's own hook points.
pytestmark = every_backend

DRIVER_VERSION = tuple(int(p) for p in databricks.sql.__version__.split(".")[:2])

STATEMENT = "STATEMENT"
RESULT = "RESULT"
# The call each backend polls a running statement's status with (the kernel's are its own).
STATUS_CALL = {"thrift": "GetOperationStatus", "sea": "GetStatement", "kernel": "GetStatement"}


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_inline_select_makes_one_span(warehouse: Any, telemetry: Telemetry, backend: str) -> None:
    sql = "SELECT id, amount FROM orders WHERE id < 10 ORDER BY id"
    warehouse.script(sql, result_format="arrow")  # SEA asks for links unless told otherwise
    with databricks.sql.connect(
        **warehouse.connect_kwargs(catalog="main", schema="default")
    ) as conn:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
            query_id = statement_id_of(cursor)
        session_id = conn.get_session_id_hex()
    assert len(rows) == 10

    (statement,) = telemetry.spans_by_role(STATEMENT)
    attributes = _attrs(statement)
    assert statement.kind is SpanKind.CLIENT
    assert statement.name == "SELECT orders"
    assert attributes["db.system.name"] == "databricks"
    assert attributes["db.namespace"] == "main|default"
    assert attributes["db.query.text"] == "SELECT id, amount FROM orders WHERE id < ? ORDER BY id"
    assert attributes["db.query.summary"] == "SELECT orders"
    assert attributes["db.operation.name"] == "SELECT"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == warehouse.port
    assert attributes["databricks.statement.id"] == query_id
    assert attributes["databricks.session.id"] == session_id
    assert statement.status.status_code is StatusCode.UNSET
    if backend == "kernel":
        # The kernel hands its result over as a stream: whether it came whole, and in which
        # format, is out of sight. A RESULT span covers the stream.
        assert "databricks.result.format" not in attributes
        assert attributes["databricks.result.open"] is True
        (result,) = telemetry.spans_by_role(RESULT)
        assert _attrs(result)["db.response.returned_rows"] == 10
        return
    assert attributes["databricks.result.format"] == "INLINE_ARROW"
    # The whole result came with the execute response: the rows are counted there and no
    # RESULT span follows.
    assert attributes["db.response.returned_rows"] == 10
    assert "databricks.result.open" not in attributes
    assert telemetry.spans_by_role(RESULT) == []


def test_paged_select_makes_statement_and_result_spans(
    warehouse: Any, telemetry: Telemetry, backend: str
) -> None:
    sql = "SELECT id FROM orders WHERE id < 10 ORDER BY id"
    if backend == "sea":
        # SEA reads only the first chunk of an inline result: its pages are links, one per
        # GetStatementResultChunk after the first.
        warehouse.script(sql, result_format="cloudfetch", cloudfetch_files=3)
    else:
        warehouse.script(sql, result_format="arrow", page_size=4)
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
            query_id = statement_id_of(cursor)
    assert len(rows) == 10

    (statement,) = telemetry.spans_by_role(STATEMENT)
    attributes = _attrs(statement)
    assert attributes["databricks.result.open"] is True
    assert "db.response.returned_rows" not in attributes
    (result,) = telemetry.spans_by_role(RESULT)
    result_attributes = _attrs(result)
    assert result.parent is not None
    assert result.parent.span_id == statement.context.span_id
    assert result_attributes["db.response.returned_rows"] == 10
    assert result_attributes["databricks.statement.id"] == query_id
    assert result_attributes["databricks.result.fetch_calls"] == 1
    if backend == "kernel":  # the kernel fetches the pages in native code
        assert "databricks.result.fetch_round_trips" not in result_attributes
        assert warehouse.rpc_names().count("GetStatementResultChunk") >= 2
    else:
        assert result_attributes["databricks.result.fetch_round_trips"] >= 2
    assert result_attributes["databricks.result.close_reason"] == "closed"
    assert result.start_time >= statement.end_time


def test_fetchone_loop_makes_no_span_per_row(warehouse: Any, telemetry: Telemetry) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id FROM orders")
        count = 0
        while cursor.fetchone() is not None:
            count += 1
        cursor.execute("SELECT id FROM orders WHERE id < 5")
        iterated = sum(1 for _ in cursor)
    assert count == 1000
    assert iterated == 5
    statements = telemetry.spans_by_role(STATEMENT)
    counted = [_attrs(telemetry.consumption(s))["db.response.returned_rows"] for s in statements]
    assert counted == [1000, 5]
    # connect, 2 statements, at most 2 results, close (and SEA's CloudFetch downloads)
    assert len([s for s in telemetry.spans() if s.name.split()[0] != "download"]) <= 6


# The format each backend records for each form the warehouse serves (None: not recorded).
FORMATS = {
    "thrift": {
        "columnar": "COLUMNAR_INLINE",
        "arrow": "INLINE_ARROW",
        "cloudfetch": "EXTERNAL_LINKS",
    },
    "sea": {"columnar": "INLINE_JSON", "arrow": "INLINE_ARROW", "cloudfetch": "EXTERNAL_LINKS"},
    "kernel": {"columnar": None, "arrow": None, "cloudfetch": None},
}


@pytest.mark.parametrize(
    ("result_format", "lz4"),
    [("columnar", False), ("arrow", True), ("cloudfetch", True)],
)
def test_result_formats_are_recorded(
    warehouse: Any, telemetry: Telemetry, backend: str, result_format: str, lz4: bool
) -> None:
    if backend == "kernel" and result_format == "columnar":
        pytest.skip("the kernel asks for Arrow only: it fails on JSON rows")
    expected = FORMATS[backend][result_format]
    sql = "SELECT i AS n FROM range(20000) t(i)"
    # SEA reads only the first chunk of an inline result: one chunk there.
    pages = None if backend == "sea" and result_format != "cloudfetch" else 5000
    files = cloudfetch_files(backend, 4)
    warehouse.script(
        sql, result_format=result_format, lz4=lz4, page_size=pages, cloudfetch_files=files
    )
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
        query_id = statement_id_of(cursor)
    assert len(rows) == 20000
    assert rows[-1][0] == 19999
    (statement,) = telemetry.spans_by_role(STATEMENT)
    assert _attrs(telemetry.consumption(statement))["db.response.returned_rows"] == 20000
    if expected is None:  # the kernel: format, compression, chunks and bytes are out of sight
        for name in ("format", "compressed", "chunks.present", "bytes"):
            assert "databricks.result." + name not in _attrs(statement)
        assert telemetry.spans_by_role("CHUNK_DOWNLOAD") == []
        return
    assert _attrs(statement)["databricks.result.format"] == expected
    if expected not in ("COLUMNAR_INLINE", "INLINE_JSON"):
        assert _attrs(statement)["databricks.result.compressed"] is lz4
    if expected == "EXTERNAL_LINKS":
        (result,) = telemetry.spans_by_role(RESULT)
        downloads = telemetry.spans_by_role("CHUNK_DOWNLOAD")
        assert len(downloads) == 4
        served = warehouse.served[query_id]
        assert sum(_attrs(d)["databricks.chunk.rows"] for d in downloads) == 20000
        if DRIVER_VERSION >= (4, 1):  # older releases do not report a file's wire size
            assert sorted(_attrs(d)["databricks.chunk.wire_bytes"] for d in downloads) == sorted(
                f.compressed_bytes for f in served.files
            )
        span_ids = {statement.context.span_id, result.context.span_id}
        for download in downloads:
            assert download.context.trace_id == statement.context.trace_id
            assert download.parent is not None and download.parent.span_id in span_ids
            for value in _attrs(download).values():
                assert "http" not in str(value).lower()  # never a pre-signed URL
        assert _attrs(result)["databricks.result.chunks.iterated"] == 4
        assert _attrs(result)["databricks.result.chunks.present"] == 4
        # Each span reports the bytes of its own phase; together they are what was served.
        phases = _attrs(statement).get("databricks.result.bytes", 0) + _attrs(result).get(
            "databricks.result.bytes", 0
        )
        if DRIVER_VERSION >= (4, 1):
            assert phases == served.compressed_bytes
    elif expected == "INLINE_ARROW" and backend == "sea":
        # One attachment: its Arrow bytes, as received, are the result's bytes.
        assert _attrs(statement)["databricks.result.bytes"] > 0


def test_polls_are_counted(warehouse: Any, telemetry: Telemetry, backend: str) -> None:
    sql = "SELECT 42 AS answer"
    warehouse.script(sql, running_polls=3, poll_delay=0.01)
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        assert cursor.fetchall()[0][0] == 42
    (statement,) = telemetry.spans_by_role(STATEMENT)
    polls = warehouse.rpc_names().count(STATUS_CALL[backend])
    assert polls >= 3
    if backend == "kernel":  # the kernel polls in native code
        assert "databricks.status_polls.count" not in _attrs(statement)
        return
    assert _attrs(statement)["databricks.status_polls.count"] == polls
    assert _attrs(statement)["databricks.status_polls.latency_ms"] >= 0


def test_server_error_passes_through_unchanged(warehouse: Any, telemetry: Telemetry) -> None:
    sql = "SELECT * FROM missing_table"
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with pytest.raises(ServerOperationError) as caught:
            cursor.execute(sql)
        query_id = statement_id_of(cursor)
    (statement,) = telemetry.spans_by_role(STATEMENT)
    attributes = _attrs(statement)
    assert statement.status.status_code is StatusCode.ERROR
    assert attributes["error.type"] == "databricks.sql.exc.ServerOperationError"
    assert attributes["databricks.error.category"] == "not_found"
    assert attributes["db.response.status_code"] == "42P01"
    assert "databricks.result.open" not in attributes  # no RESULT span follows a failure
    assert attributes.get("databricks.statement.id") == query_id
    assert any(e.name == "exception" for e in statement.events)
    assert "42P01" in str(caught.value) or caught.value.context


def test_scripted_status_error_is_database_error(warehouse: Any, telemetry: Telemetry) -> None:
    sql = "SELECT 'boom'"
    warehouse.script(sql, error="scripted failure", sqlstate="22012", error_style="status")
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with pytest.raises(DatabaseError):
            cursor.execute(sql)
    (statement,) = telemetry.spans_by_role(STATEMENT)
    assert statement.status.status_code is StatusCode.ERROR
    assert _attrs(statement)["error.type"].startswith("databricks.sql.exc.")


def test_dml_rows_modified(warehouse: Any, telemetry: Telemetry, backend: str) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE orders SET amount = 0 WHERE id < 7")
        rowcount = cursor.rowcount
    (statement,) = telemetry.spans_by_role(STATEMENT)
    if backend == "sea":
        # The status says 7; the SEA backend drops it (rowcount -1), the span keeps it.
        assert rowcount == -1
        assert _attrs(statement)["databricks.rows.modified"] == 7
    elif backend == "kernel" or DRIVER_VERSION >= (4, 9):  # Thrift reports them since 4.9
        assert rowcount == 7
        assert _attrs(statement)["databricks.rows.modified"] == 7
    assert statement.name.startswith("UPDATE")


@pytest.mark.backends("thrift")  # the same on every backend
def test_executemany_is_one_span(warehouse: Any, telemetry: Telemetry) -> None:
    warehouse.execute_sql("CREATE TABLE kv (k INT, v STRING)")
    rows = [{"k": i, "v": f"value{i}"} for i in range(5)]
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.executemany("INSERT INTO kv VALUES (:k, :v)", rows)
        last_id = statement_id_of(cursor)
    statements = telemetry.spans_by_role(STATEMENT)
    assert len(statements) == 1
    (batch,) = statements
    attributes = _attrs(batch)
    assert attributes["db.operation.batch.size"] == 5
    assert attributes["databricks.statement.id"] == last_id
    members = [e for e in batch.events if e.name == "databricks.batch.statement"]
    assert len(members) == 5  # one per member
    member_ids = [(e.attributes or {})["databricks.statement.id"] for e in members]
    assert len(set(member_ids)) == 5
    assert member_ids[-1] == last_id
    assert "value" not in str(attributes)  # parameters are not captured by default


def test_executemany_carries_the_batch_totals(
    warehouse: Any, telemetry: Telemetry, backend: str
) -> None:
    warehouse.execute_sql("CREATE TABLE kv (k INT, v STRING)")
    warehouse.execute_sql("INSERT INTO kv SELECT i, 'x' FROM range(10) r(i)")
    # Members modify 1, 2, 0, 3 and 4 rows: 10 in all.
    bounds = [(0, 1), (1, 3), (100, 100), (3, 6), (6, 10)]
    rows = [{"lo": lo, "hi": hi} for lo, hi in bounds]
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.executemany("UPDATE kv SET v = 'y' WHERE k >= :lo AND k < :hi", rows)
        rowcount = cursor.rowcount
        last_id = statement_id_of(cursor)
    (batch,) = telemetry.spans_by_role(STATEMENT)
    members = [e for e in batch.events if e.name == "databricks.batch.statement"]
    assert len(members) == len(bounds)
    counted = backend != "thrift" or DRIVER_VERSION >= (4, 9)  # Thrift: since 4.9
    if counted:
        assert rowcount == (-1 if backend == "sea" else 10)  # SEA drops the status's count
        assert _attrs(batch)["databricks.rows.modified"] == 10
        per_member = [(e.attributes or {})["databricks.rows.modified"] for e in members]
        assert per_member == [hi - lo for lo, hi in bounds]
    telemetry.instrumentor.uninstrument()  # flushes the statement records
    records = {
        r.statement_id: r
        for r in telemetry.sink.records
        if getattr(r, "batch_size", None) is not None
    }
    ids = [(e.attributes or {})["databricks.statement.id"] for e in members]
    assert sorted(records) == sorted(ids)  # one record per member, none twice
    if counted:
        assert records[last_id].rows_modified == 10  # the batch's own record: its totals


def test_execute_async_span_covers_lifetime(warehouse: Any, telemetry: Telemetry) -> None:
    # Every backend's async statement is polled through the connector (get_query_state).
    sql = "SELECT 7 AS seven"
    warehouse.script(sql, completion_delay=0.3)
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.ASYNC_DEFAULT_POLLING_INTERVAL = 0.05
        cursor.execute_async(sql)
        assert not telemetry.spans_by_role(STATEMENT)  # still open
        cursor.get_async_execution_result()
        assert cursor.fetchall()[0][0] == 7
    (statement,) = telemetry.spans_by_role(STATEMENT)
    attributes = _attrs(statement)
    assert attributes["databricks.statement.async"] is True
    assert (statement.end_time - statement.start_time) / 1e9 >= 0.3
    assert attributes["databricks.status_polls.count"] >= 2


@pytest.mark.parametrize(
    ("method", "kwargs", "operation_type"),
    [
        ("catalogs", {}, "LIST_CATALOGS"),
        ("schemas", {"catalog_name": "main"}, "LIST_SCHEMAS"),  # SEA needs the catalog
        ("tables", {}, "LIST_TABLES"),
        ("columns", {"catalog_name": "main"}, "LIST_COLUMNS"),
    ],
)
def test_metadata_calls(
    warehouse: Any,
    telemetry: Telemetry,
    backend: str,
    *,
    method: str,
    kwargs: dict[str, Any],
    operation_type: str,
) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        getattr(cursor, method)(**kwargs)
        rows = cursor.fetchall()
        query_id = cursor.query_id
    assert rows
    (statement,) = telemetry.spans_by_role(STATEMENT)
    attributes = _attrs(statement)
    assert attributes["databricks.operation.type"] == operation_type
    assert attributes["databricks.statement.type"] == "METADATA"
    assert attributes["db.operation.name"] == method
    assert _attrs(telemetry.consumption(statement))["db.response.returned_rows"] == len(rows)
    if backend == "kernel":
        # The connector makes the id of a kernel metadata call up: it is not the server's.
        assert "databricks.statement.id" not in attributes
    else:
        assert attributes["databricks.statement.id"] == query_id


def test_cancel_from_another_thread(warehouse: Any, telemetry: Telemetry, backend: str) -> None:
    sql = "SELECT 1 AS slow"
    warehouse.script(sql, completion_delay=30.0)  # finishes only if the cancel failed
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:

        def running() -> bool:
            if backend == "kernel":  # the cursor learns the id only when execute() ends
                return STATUS_CALL[backend] in warehouse.rpc_names()
            # active_op_handle: connector releases before 4.1 (no active_command_id)
            handle = getattr(cursor, "active_command_id", None)
            return (handle or getattr(cursor, "active_op_handle", None)) is not None

        def cancel_once_running() -> None:
            wait_until(running, "the statement to start")
            cursor.cancel()

        thread = threading.Thread(target=cancel_once_running)
        thread.start()
        if backend == "thrift":
            cursor.execute(sql)  # a cancelled execute() returns
        else:
            with pytest.raises(Error):  # the REST backends raise
                cursor.execute(sql)
        thread.join()
    (statement,) = telemetry.spans_by_role(STATEMENT)
    attributes = _attrs(statement)
    assert attributes["databricks.statement.cancelled"] is True
    assert any(e.name == "databricks.statement.cancelled" for e in statement.events)
    assert statement.status.status_code is StatusCode.ERROR
    assert attributes["databricks.statement.id"] in warehouse.served
    (cancel,) = telemetry.spans_by_role("CANCEL")
    if backend == "kernel":  # unknown to the connector while the kernel runs it
        assert "databricks.statement.id" not in _attrs(cancel)
    else:
        assert _attrs(cancel)["databricks.statement.id"] == attributes["databricks.statement.id"]


def test_a_statement_refused_before_it_got_an_id_names_none(
    warehouse: Any, telemetry: Telemetry
) -> None:
    """The cursor keeps the previous statement's id until the server answers: a statement the
    server refused outright must not be given that id."""
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1 AS first")
        cursor.fetchall()
        first_id = statement_id_of(cursor)
        warehouse.fault_rpc("ExecuteStatement", 400)
        with pytest.raises(Error):
            cursor.execute("SELECT 2 AS refused")
        assert statement_id_of(cursor) == first_id  # what the driver still says
    first, refused = telemetry.spans_by_role(STATEMENT)
    assert _attrs(first)["databricks.statement.id"] == first_id
    assert refused.status.status_code is StatusCode.ERROR
    assert "databricks.statement.id" not in _attrs(refused)


def test_connect_and_close_spans(warehouse: Any, telemetry: Telemetry, backend: str) -> None:
    conn = databricks.sql.connect(**warehouse.connect_kwargs(catalog="main", schema="default"))
    session_id = conn.get_session_id_hex()
    conn.close()
    (connect,) = telemetry.spans_by_role("CREATE_SESSION")
    attributes = _attrs(connect)
    assert attributes["databricks.session.id"] == session_id
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == warehouse.port
    assert attributes["databricks.http_path"] == warehouse.http_path
    assert attributes["databricks.warehouse.id"] == warehouse.warehouse_id
    assert attributes["databricks.catalog"] == "main"
    assert attributes["databricks.schema"] == "default"
    assert attributes["databricks.backend"] == backend
    (close,) = telemetry.spans_by_role("DELETE_SESSION")
    assert _attrs(close)["databricks.session.id"] == session_id


def test_unclosed_result_completes_on_connection_close(
    warehouse: Any, telemetry: Telemetry
) -> None:
    sql = "SELECT id FROM orders WHERE id < 3"
    warehouse.script(sql, page_size=1)  # a result fetched in pages has a RESULT span
    conn = databricks.sql.connect(**warehouse.connect_kwargs())
    cursor = conn.cursor()
    cursor.execute(sql)
    cursor.fetchone()
    conn.close()
    (result,) = telemetry.spans_by_role(RESULT)
    assert _attrs(result)["databricks.result.close_reason"] == "connection_closed"
    assert _attrs(result)["db.response.returned_rows"] == 1


def test_metrics(warehouse: Any, telemetry: Telemetry) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id FROM orders WHERE id < 25")
        cursor.fetchall()
        with pytest.raises(ServerOperationError):
            cursor.execute("SELECT * FROM nope")
    found = telemetry.metrics()
    durations = found["db.client.operation.duration"]
    assert sum(p.count for p in durations) == 2
    errors = [p for p in durations if "error.type" in p.attributes]
    assert len(errors) == 1
    assert errors[0].attributes["db.response.status_code"] == "42P01"
    rows = found["db.client.response.returned_rows"]
    assert sum(p.sum for p in rows) == 25
    assert "db.client.connection.create_time" in found
    counts = found["db.client.connection.count"]
    assert sum(p.value for p in counts) == 0  # opened and closed
    for points in found.values():
        for point in points:
            keys = set(point.attributes)
            assert "databricks.statement.id" not in keys
            assert "databricks.session.id" not in keys
            assert "db.query.text" not in keys


@pytest.mark.backends("thrift")  # the same on every backend
def test_batch_is_named_as_the_conventions_name_it(warehouse: Any, telemetry: Telemetry) -> None:
    warehouse.execute_sql("CREATE TABLE kv (k INT, v STRING)")
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO kv VALUES (:k, :v)", [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}]
        )
        cursor.executemany("INSERT INTO kv VALUES (:k, :v)", [{"k": 3, "v": "c"}])
    batch, single = telemetry.spans_by_role(STATEMENT)
    assert batch.name == "BATCH INSERT kv"
    assert _attrs(batch)["db.operation.name"] == "BATCH INSERT"
    assert _attrs(batch)["db.query.summary"] == "BATCH INSERT kv"
    assert single.name == "INSERT kv"  # one parameter set is no batch
    assert "db.operation.batch.size" not in _attrs(single)
    durations = telemetry.metrics()["db.client.operation.duration"]
    names = {p.attributes.get("db.operation.name") for p in durations}
    assert {"BATCH INSERT", "INSERT"} <= names


@pytest.mark.backends("thrift")  # the same on every backend
def test_statement_metrics_carry_summary_and_collection(
    warehouse: Any, telemetry: Telemetry
) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id FROM orders WHERE id < 3")
        cursor.fetchall()
    found = telemetry.metrics()
    for name in ("db.client.operation.duration", "db.client.response.returned_rows"):
        (point,) = [p for p in found[name] if p.attributes.get("db.operation.name") == "SELECT"]
        assert point.attributes["db.query.summary"] == "SELECT orders", name
        assert point.attributes["db.collection.name"] == "orders", name
        assert "db.query.text" not in point.attributes


def test_metric_attribute_values_are_bounded() -> None:
    from opentelemetry_instrumentation_dbsql.metrics import OVERFLOW_VALUE, ValueLimit

    limit = ValueLimit(3)
    admitted = [limit.admit(f"SELECT t{i}") for i in range(5)]
    assert admitted == ["SELECT t0", "SELECT t1", "SELECT t2", OVERFLOW_VALUE, OVERFLOW_VALUE]
    assert limit.admit("SELECT t1") == "SELECT t1"  # values already seen stay themselves
