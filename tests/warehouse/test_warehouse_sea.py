"""The Statement Execution API of the local warehouse, driven by the real connector's SEA
backend (``use_sea=True``), plus a few protocol-level checks over plain HTTP."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import databricks.sql
import lz4.frame
import pyarrow as pa
import pytest
import urllib3
from databricks.sql import exc

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

ROWS = 1000
BIG = "SELECT id, label, half FROM big ORDER BY id"
SESSION_CALLS = ["CreateSession", "DeleteSession"]


@pytest.fixture
def sea(warehouse: LocalWarehouse) -> Iterator[Callable[..., Any]]:
    """Open real driver connections with ``use_sea=True``; all are closed after the test."""
    opened: list[Any] = []

    def open_connection(**kwargs: Any) -> Any:
        connection = databricks.sql.connect(**warehouse.connect_kwargs(use_sea=True, **kwargs))
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        if connection.open:
            connection.close()


def _seed_big(warehouse: LocalWarehouse) -> None:
    warehouse.execute_sql(
        "CREATE TABLE big AS SELECT range AS id, 'row-' || range::VARCHAR AS label, "
        "CASE WHEN range % 10 = 0 THEN NULL ELSE CAST(range AS DOUBLE) / 2 END AS half "
        f"FROM range({ROWS})"
    )


def _expected(i: int) -> tuple[Any, ...]:
    return (i, f"row-{i}", None if i % 10 == 0 else i / 2)


def _requests(warehouse: LocalWarehouse, name: str) -> list[dict[str, Any]]:
    return [r.request for r in warehouse.rpcs if r.name == name]


def _wait_for(condition: Callable[[], bool]) -> None:
    """Wait for something another thread does (bounded so a broken test cannot hang)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- sessions, statements, results ----------------------------------------------------------------


def test_connect_select_and_close(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    connection = sea()
    assert connection.session.use_sea
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 AS one, 'a' AS letter")
        assert [tuple(r) for r in cursor.fetchall()] == [(1, "a")]
        assert [d[:2] for d in cursor.description] == [("one", "int"), ("letter", "string")]
        query_id = cursor.query_id
    connection.close()

    assert warehouse.rpc_names() == [
        "CreateSession",
        "ExecuteStatement",
        "CloseStatement",
        "DeleteSession",
    ]
    assert {r.protocol for r in warehouse.rpcs} == {"rest"}
    (create,) = _requests(warehouse, "CreateSession")
    assert create == {
        "warehouse_id": warehouse.warehouse_id,
        "catalog": "main",
        "schema": "default",
    }
    (execute,) = _requests(warehouse, "ExecuteStatement")
    assert execute["session_id"] == connection.get_session_id_hex()
    assert (execute["format"], execute["disposition"], execute["wait_timeout"]) == (
        "ARROW_STREAM",
        "EXTERNAL_LINKS",
        "10s",
    )
    served = warehouse.served[query_id]
    assert (served.protocol, served.operation, served.sql) == (
        "rest",
        "ExecuteStatement",
        "SELECT 1 AS one, 'a' AS letter",
    )
    assert (served.state, served.result_format, served.rows, served.pages) == (
        "FINISHED",
        "cloudfetch",
        1,
        1,
    )
    assert served.direct_results and served.closed and served.n_polls == 0
    assert served.session_id == connection.get_session_id_hex()
    (file,) = served.files
    assert file.downloads == 1


@pytest.mark.parametrize("use_cloud_fetch", [True, False])
def test_fetch_methods(
    warehouse: LocalWarehouse, sea: Callable[..., Any], use_cloud_fetch: bool
) -> None:
    _seed_big(warehouse)
    warehouse.script(BIG, cloudfetch_files=4)
    with sea(use_cloud_fetch=use_cloud_fetch).cursor() as cursor:
        cursor.execute(BIG)
        rows = [cursor.fetchone(), cursor.fetchone()]
        rows += cursor.fetchmany(400)  # crosses a chunk boundary with links
        rows += cursor.fetchall()
        assert cursor.fetchone() is None
        assert [tuple(r) for r in rows] == [_expected(i) for i in range(ROWS)]
        first = cursor.query_id

        cursor.execute(BIG)
        head = cursor.fetchmany_arrow(10)
        table = cursor.fetchall_arrow()
        assert head.num_rows + table.num_rows == ROWS
        assert table.column("id").to_pylist() == list(range(10, ROWS))
        assert table.column("half").null_count == (ROWS - 10) // 10

    served = warehouse.served[first]
    assert served.rows == ROWS
    if use_cloud_fetch:
        # One link per response: the first in the execute answer, three more by chunk calls.
        assert served.result_format == "cloudfetch" and served.lz4
        assert [f.row_count for f in served.files] == [250] * 4
        assert all(f.downloads == 1 for f in served.files)
        assert served.page_rows == [250] * 4
        chunks = _requests(warehouse, "GetStatementResultChunk")
        assert [c["chunk"] for c in chunks[:3]] == ["1", "2", "3"]
    else:
        # JSON_ARRAY rows inline: the whole result in the execute answer.
        assert served.result_format == "columnar" and not served.lz4
        assert served.files == [] and served.page_rows == [ROWS]
        assert "GetStatementResultChunk" not in warehouse.rpc_names()
        execute = _requests(warehouse, "ExecuteStatement")[0]
        assert (execute["format"], execute["disposition"]) == ("JSON_ARRAY", "INLINE")


def test_links_grouped_by_page_size(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    _seed_big(warehouse)
    warehouse.script(BIG, cloudfetch_files=4, page_size=500)
    with sea().cursor() as cursor:
        cursor.execute(BIG)
        assert len(cursor.fetchall()) == ROWS
        query_id = cursor.query_id
    assert warehouse.served[query_id].page_rows == [500, 500]
    assert [c["chunk"] for c in _requests(warehouse, "GetStatementResultChunk")] == ["2"]


def test_inline_arrow_attachment(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    _seed_big(warehouse)
    warehouse.script(BIG, result_format="arrow", lz4=True)
    with sea().cursor() as cursor:
        cursor.execute(BIG)
        table = cursor.fetchall_arrow()
        assert table.num_rows == ROWS
        assert table.column("label").to_pylist()[-1] == f"row-{ROWS - 1}"
        query_id = cursor.query_id
    served = warehouse.served[query_id]
    assert (served.result_format, served.lz4, served.files) == ("arrow", True, [])
    assert not [r for r in warehouse.http_requests if r.path.startswith("/cloudfetch/")]


TYPED = "SELECT * FROM typed ORDER BY i NULLS LAST"


@pytest.mark.parametrize("result_format", ["columnar", "arrow", "cloudfetch"])
def test_types(warehouse: LocalWarehouse, sea: Callable[..., Any], result_format: str) -> None:
    warehouse.execute_sql(
        "CREATE TABLE typed (i INT, b BIGINT, s STRING, d DECIMAL(10,2), dt DATE, "
        "ts TIMESTAMP, bo BOOLEAN, db DOUBLE, sm SMALLINT, ti TINYINT)"
    )
    warehouse.execute_sql(
        "INSERT INTO typed VALUES (1, 2, 'x', 1.25, '2024-01-02', "
        "'2024-01-02 03:04:05.123456+00:00', true, 2.5, 3, 4)"
    )
    warehouse.script(TYPED, result_format=result_format)
    with sea().cursor() as cursor:
        cursor.execute(TYPED)
        assert [tuple(r) for r in cursor.fetchall()] == [
            (
                1,
                2,
                "x",
                decimal.Decimal("1.25"),
                datetime.date(2024, 1, 2),
                datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc),
                True,
                2.5,
                3,
                4,
            )
        ]
        assert [d[1] for d in cursor.description] == [
            "int",
            "bigint",
            "string",
            "decimal",
            "date",
            "timestamp",
            "boolean",
            "double",
            "smallint",
            "tinyint",
        ]
        assert cursor.description[3][4:6] == (10, 2)


def test_dml_reports_modified_rows(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    warehouse.execute_sql("CREATE TABLE t (id INT, name STRING)")
    with sea().cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        assert [tuple(r) for r in cursor.fetchall()] == [(3, 3)]
        inserted = cursor.query_id
        cursor.execute("UPDATE t SET name = 'z' WHERE id >= 2")
        assert [tuple(r) for r in cursor.fetchall()] == [(2,)]
        updated = cursor.query_id
    assert warehouse.served[inserted].modified_rows == 3
    assert warehouse.served[updated].modified_rows == 2
    assert warehouse.execute_sql("SELECT name FROM t ORDER BY id") == [("a",), ("z",), ("z",)]


def test_named_parameters(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    values = {
        "i": 7,
        "s": "it's",
        "d": decimal.Decimal("1.25"),
        "dt": datetime.date(2024, 1, 2),
        "b": True,
        "f": 2.5,
    }
    with sea().cursor() as cursor:
        cursor.execute(
            "SELECT :i AS i, :s AS s, :d AS d, :dt AS dt, :b AS b, :f AS f, :n AS n",
            {**values, "n": None},
        )
        assert cursor.fetchone().asDict() == {**values, "n": None}
    (execute,) = _requests(warehouse, "ExecuteStatement")
    sent = {p["name"]: (p["type"], p["value"]) for p in execute["parameters"]}
    assert sent["i"] == ("INT", "7")
    assert sent["s"] == ("STRING", "it's")
    assert sent["d"] == ("DECIMAL(3,2)", "1.25")
    assert sent["n"] == ("VOID", None)


# -- polling, async, cancel -----------------------------------------------------------------------


def test_running_polls(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    handle = warehouse.script("SELECT 42 AS answer", running_polls=2)
    with sea().cursor() as cursor:
        cursor.execute("SELECT 42 AS answer")
        assert [tuple(r) for r in cursor.fetchall()] == [(42,)]
        query_id = cursor.query_id
    assert handle.statement_ids == [query_id]
    names = warehouse.rpc_names()
    start = names.index("ExecuteStatement")
    # RUNNING, RUNNING, then SUCCEEDED with the result.
    assert names[start : start + 5] == [
        "ExecuteStatement",
        "GetStatement",
        "GetStatement",
        "GetStatement",
        "CloseStatement",
    ]
    served = warehouse.served[query_id]
    assert (served.n_polls, served.direct_results, served.pages) == (3, False, 1)


def test_async_execute_and_poll(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    warehouse.script("SELECT 7 AS seven", running_polls=2)
    with sea().cursor() as cursor:
        cursor.execute_async("SELECT 7 AS seven")
        pending = 0
        while cursor.is_query_pending():
            pending += 1
        assert pending == 2
        cursor.get_async_execution_result()
        assert [tuple(r) for r in cursor.fetchall()] == [(7,)]
        query_id = cursor.query_id
    (execute,) = _requests(warehouse, "ExecuteStatement")
    assert execute["wait_timeout"] == "0s"
    assert warehouse.served[query_id].state == "FINISHED"


def test_cancel_from_another_thread(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    # Without the cancel the statement would run for a minute.
    warehouse.script("SELECT 'slow'", completion_delay=60)
    cursor = sea().cursor()

    def cancel_once_polled() -> None:
        _wait_for(lambda: "GetStatement" in warehouse.rpc_names())
        cursor.cancel()

    canceller = threading.Thread(target=cancel_once_polled)
    canceller.start()
    # A CANCELED status has no manifest, and the SEA backend builds no result set from it.
    with pytest.raises(exc.ProgrammingError, match="Invalid result format"):
        cursor.execute("SELECT 'slow'")
    canceller.join()
    assert "CancelStatement" in warehouse.rpc_names()
    (served,) = warehouse.served.values()
    assert (served.state, served.cancelled) == ("CANCELED", True)


# -- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cloud_fetch", [True, False])
def test_metadata_calls(
    warehouse: LocalWarehouse, sea: Callable[..., Any], use_cloud_fetch: bool
) -> None:
    warehouse.execute_sql("CREATE TABLE orders (id BIGINT, amount DECIMAL(10,2))")
    warehouse.execute_sql("CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 10")
    warehouse.execute_sql("CREATE SCHEMA sales")
    with sea(use_cloud_fetch=use_cloud_fetch).cursor() as cursor:
        assert [tuple(r) for r in cursor.catalogs().fetchall()] == [("main",)]
        schemas = cursor.schemas(catalog_name="main").fetchall()
        assert [r.databaseName for r in schemas] == ["default", "sales"]
        cursor.schemas(catalog_name="main", schema_name="sa%")
        assert [tuple(r) for r in cursor.fetchall()] == [("sales",)]
        tables = cursor.tables(catalog_name="main", schema_name="default").fetchall()
        assert [(r.tableName, r.tableType) for r in tables] == [
            ("big_orders", "VIEW"),
            ("orders", "TABLE"),
        ]
        views = cursor.tables(table_types=["VIEW"]).fetchall()
        assert [r.tableName for r in views] == ["big_orders"]
        columns = cursor.columns(
            catalog_name="main", schema_name="default", table_name="orders"
        ).fetchall()
        assert [(r.col_name, r.columnType) for r in columns] == [
            ("id", "BIGINT"),
            ("amount", "DECIMAL(10,2)"),
        ]
    assert [s.sql for s in warehouse.served.values()] == [
        "SHOW CATALOGS",
        "SHOW SCHEMAS IN main",
        "SHOW SCHEMAS IN main LIKE 'sa%'",
        "SHOW TABLES IN CATALOG main SCHEMA LIKE 'default'",
        "SHOW TABLES IN ALL CATALOGS",
        "SHOW COLUMNS IN CATALOG main SCHEMA LIKE 'default' TABLE LIKE 'orders'",
    ]
    assert {s.state for s in warehouse.served.values()} == {"FINISHED"}


# -- errors, faults, HTTPS ------------------------------------------------------------------------


def test_errors_carry_sqlstate(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    warehouse.script("SELECT 1 / 0", error="Division by zero.", sqlstate="22012")
    with sea().cursor() as cursor:
        with pytest.raises(exc.ServerOperationError, match="TABLE_OR_VIEW_NOT_FOUND") as missing:
            cursor.execute("SELECT * FROM no_such_table")
        assert "SQLSTATE: 42P01" in str(missing.value)
        failed = cursor.query_id
        with pytest.raises(exc.ServerOperationError, match="Division by zero"):
            cursor.execute("SELECT 1 / 0")
        scripted = cursor.query_id
    assert (warehouse.served[failed].state, warehouse.served[failed].sqlstate) == (
        "ERROR",
        "42P01",
    )
    assert warehouse.served[scripted].sqlstate == "22012"


def test_staging_statements(
    warehouse: LocalWarehouse, sea: Callable[..., Any], tmp_path: Any
) -> None:
    """PUT, GET and REMOVE answer with a volume operation's one row (``is_volume_operation``),
    and the driver's transfers to the pre-signed URL reach the volume, as over Thrift."""
    source, copy = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(b"id\n1\n")
    volume = "/Volumes/main/default/v/in.csv"
    with sea(staging_allowed_local_path=str(tmp_path)).cursor() as cursor:
        cursor.execute(f"PUT '{source}' INTO '{volume}'")
        assert warehouse.volume_files == {volume: b"id\n1\n"}
        cursor.execute(f"GET '{volume}' TO '{copy}'")
        cursor.execute(f"REMOVE '{volume}'")
    assert copy.read_bytes() == b"id\n1\n"
    assert warehouse.volume_files == {}
    assert [t.method for t in warehouse.volume_transfers] == ["PUT", "GET", "DELETE"]
    assert {r.protocol for r in warehouse.rpcs} == {"rest"}


def test_status_style_error_is_an_http_error(
    warehouse: LocalWarehouse, sea: Callable[..., Any]
) -> None:
    warehouse.script("SELECT 'bad'", error="Bad request.", sqlstate="42000", error_style="status")
    with sea().cursor() as cursor, pytest.raises(exc.RequestError, match="400"):
        cursor.execute("SELECT 'bad'")
    (record,) = [r for r in warehouse.rpcs if r.name == "ExecuteStatement"]
    assert record.status == 400
    (served,) = warehouse.served.values()
    assert (served.state, served.sqlstate) == ("ERROR", "42000")


def test_fault_injection_by_call_name(warehouse: LocalWarehouse, sea: Callable[..., Any]) -> None:
    connection = sea()
    warehouse.fault_rpc("ExecuteStatement", 400)
    with connection.cursor() as cursor:
        with pytest.raises(exc.RequestError, match="status 400"):
            cursor.execute("SELECT 1")
        warehouse.fault_rpc("CloseStatement", delay=0.05)
        cursor.execute("SELECT 2")
        assert [tuple(r) for r in cursor.fetchall()] == [(2,)]
    faulted, served = [r for r in warehouse.rpcs if r.name == "ExecuteStatement"]
    assert (faulted.status, served.status) == (400, 200)
    (close,) = [r for r in warehouse.rpcs if r.name == "CloseStatement"]
    assert close.duration >= 0.05


def test_https() -> None:
    with LocalWarehouse(tls=True) as wh:
        kwargs = wh.connect_kwargs(use_sea=True)
        assert kwargs["server_hostname"] == "https://127.0.0.1"
        assert kwargs["_tls_trusted_ca_file"] == wh.cert_file
        with databricks.sql.connect(**kwargs) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT * FROM range(3)")
            assert [r[0] for r in cursor.fetchall()] == [0, 1, 2]
        assert wh.rpc_names() == [
            "CreateSession",
            "ExecuteStatement",
            "CloseStatement",
            "DeleteSession",
        ]


# -- the protocol over plain HTTP -----------------------------------------------------------------


class Rest:
    """Plain JSON calls to the warehouse's Statement Execution API."""

    def __init__(self, warehouse: LocalWarehouse) -> None:
        self._pool = urllib3.PoolManager(retries=False)
        self._base = warehouse.base_url + "/api/2.0/sql"
        self.warehouse_id = warehouse.warehouse_id

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._pool.request(
            method,
            self._base + path,
            body=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        return response.status, json.loads(response.data)

    def session(self) -> str:
        status, body = self.call("POST", "/sessions", {"warehouse_id": self.warehouse_id})
        assert status == 200
        return str(body["session_id"])

    def execute(self, session_id: str, sql: str, **fields: Any) -> Any:
        return self.call(
            "POST",
            "/statements",
            {"warehouse_id": self.warehouse_id, "session_id": session_id, "statement": sql}
            | fields,
        )


def test_statement_states_over_http(warehouse: LocalWarehouse) -> None:
    rest = Rest(warehouse)
    session = rest.session()
    warehouse.script("SELECT 1 AS x", running_polls=2)
    status, body = rest.execute(session, "SELECT 1 AS x", wait_timeout="0s", format="JSON_ARRAY")
    assert status == 200 and body["status"] == {"state": "PENDING"}
    statement = body["statement_id"]
    states = [rest.call("GET", f"/statements/{statement}")[1] for _ in range(3)]
    assert [s["status"]["state"] for s in states] == ["RUNNING", "RUNNING", "SUCCEEDED"]
    done = states[-1]
    assert done["manifest"]["format"] == "JSON_ARRAY"
    assert done["manifest"]["schema"]["columns"] == [
        {"name": "x", "type_text": "INT", "type_name": "INT", "position": 0}
    ]
    assert (done["manifest"]["total_row_count"], done["manifest"]["total_chunk_count"]) == (1, 1)
    assert done["result"]["data_array"] == [["1"]]
    assert "next_chunk_index" not in done["result"]

    assert rest.call("DELETE", f"/statements/{statement}") == (200, {})
    closed = rest.call("GET", f"/statements/{statement}")[1]
    assert closed["status"] == {"state": "CLOSED"}
    assert rest.call("POST", f"/statements/{statement}/cancel") == (200, {})
    assert rest.call("GET", "/statements/no-such-statement")[0] == 404
    assert rest.call("DELETE", f"/sessions/{session}") == (200, {})
    assert rest.execute(session, "SELECT 1")[0] == 404
    assert warehouse.served[statement].state == "FINISHED"


def test_failed_and_dml_status_over_http(warehouse: LocalWarehouse) -> None:
    rest = Rest(warehouse)
    session = rest.session()
    _, failed = rest.execute(session, "SELECT * FROM missing")
    assert failed["status"]["state"] == "FAILED"
    assert failed["status"]["sql_state"] == "42P01"
    assert failed["status"]["error"]["error_code"] == "BAD_REQUEST"
    assert failed["status"]["error"]["message"].startswith("[TABLE_OR_VIEW_NOT_FOUND]")
    assert "manifest" not in failed

    rest.execute(session, "CREATE TABLE t (id INT)")
    _, inserted = rest.execute(session, "INSERT INTO t VALUES (1), (2)", format="JSON_ARRAY")
    assert inserted["status"] == {"state": "SUCCEEDED", "num_modified_rows": 2}
    assert inserted["result"]["data_array"] == [["2", "2"]]


def test_inline_chunks_over_http(warehouse: LocalWarehouse) -> None:
    rest = Rest(warehouse)
    session = rest.session()
    warehouse.script("SELECT * FROM range(5)", page_size=2)
    _, first = rest.execute(session, "SELECT * FROM range(5)", format="JSON_ARRAY")
    statement = first["statement_id"]
    assert [c["row_count"] for c in first["manifest"]["chunks"]] == [2, 2, 1]
    assert first["result"]["next_chunk_index"] == 1
    assert first["result"]["next_chunk_internal_link"] == (
        f"/api/2.0/sql/statements/{statement}/result/chunks/1"
    )
    _, last = rest.call("GET", f"/statements/{statement}/result/chunks/2")
    assert (last["chunk_index"], last["row_offset"], last["data_array"]) == (2, 4, [["4"]])
    assert "next_chunk_index" not in last
    assert rest.call("GET", f"/statements/{statement}/result/chunks/3")[0] == 400
    assert warehouse.served[statement].page_rows == [2, 1]


def test_hybrid_disposition_over_http() -> None:
    """The request the kernel backend sends: hybrid disposition, LZ4, no ``wait_timeout``.

    Results up to ``cloudfetch_min_rows`` rows come inline as an Arrow attachment, larger
    ones as external links."""
    with LocalWarehouse(cloudfetch_min_rows=5) as warehouse:
        _check_hybrid(warehouse)


def _check_hybrid(warehouse: LocalWarehouse) -> None:
    rest = Rest(warehouse)
    status, session = rest.call(
        "POST",
        "/sessions",
        {"warehouse_id": warehouse.warehouse_id, "catalog": "main", "execution_mode": "FAST"},
    )
    assert status == 200
    hybrid = {
        "format": "ARROW_STREAM",
        "disposition": "INLINE_OR_EXTERNAL_LINKS",
        "result_compression": "LZ4_FRAME",
    }
    _, small = rest.execute(session["session_id"], "SELECT * FROM range(3)", **hybrid)
    assert small["manifest"]["result_compression"] == "LZ4_FRAME"
    raw = lz4.frame.decompress(base64.b64decode(small["result"]["attachment"]))
    assert pa.ipc.open_stream(raw).read_all().column(0).to_pylist() == [0, 1, 2]

    warehouse.script("SELECT * FROM range(10)", cloudfetch_files=2)
    _, linked = rest.execute(session["session_id"], "SELECT * FROM range(10)", **hybrid)
    (link,) = linked["result"]["external_links"]
    assert (link["chunk_index"], link["row_count"], link["next_chunk_index"]) == (0, 5, 1)
    assert link["expiration"].endswith("Z") and link["http_headers"] == {}
    statement = linked["statement_id"]
    _, rest_of_it = rest.call("GET", f"/statements/{statement}/result/chunks/1?row_offset=5")
    (second,) = rest_of_it["external_links"]
    assert (second["chunk_index"], second["row_offset"]) == (1, 5)
    assert "next_chunk_index" not in second
    (chunk_call,) = [r for r in warehouse.rpcs if r.name == "GetStatementResultChunk"]
    assert chunk_call.request == {"id": statement, "chunk": "1", "row_offset": "5"}
    assert [f.downloads for f in warehouse.served[statement].files] == [0, 0]
