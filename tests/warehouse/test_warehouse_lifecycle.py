"""Statement lifecycles through the real driver: polling, errors, async, cancel, metadata."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from databricks.sql import exc
from databricks.sql.backend.types import CommandState

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.aggregation.helpers import wait_until


def test_polled_statement(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.script("SELECT 42 AS answer", running_polls=3, poll_delay=0.05)
    connection = connect()
    warehouse.reset_records()
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("SELECT 42 AS answer")
        assert time.perf_counter() - started >= 0.15
        assert cursor.fetchone().answer == 42
        query_id = cursor.query_id
    assert warehouse.rpc_names() == [
        "ExecuteStatement",
        "GetOperationStatus",
        "GetOperationStatus",
        "GetOperationStatus",
        "GetOperationStatus",
        "GetResultSetMetadata",
        "FetchResults",
        "CloseOperation",
    ]
    polls = [r for r in warehouse.rpcs if r.name == "GetOperationStatus"]
    assert all(r.duration >= 0.05 for r in polls[:3])
    served = warehouse.served[query_id]
    assert (served.n_polls, served.state, served.pages, served.direct_results) == (
        4,
        "FINISHED",
        1,
        False,
    )


def test_completion_delay_keeps_statement_running(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    warehouse.script("SELECT 'late' AS v", completion_delay=0.3)
    with connect().cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("SELECT 'late' AS v")
        assert time.perf_counter() - started >= 0.3
        assert cursor.fetchone().v == "late"
        assert warehouse.served[cursor.query_id].n_polls >= 2


@pytest.mark.parametrize("style", ["operation", "status"])
def test_scripted_error_styles(
    warehouse: LocalWarehouse, connect: Callable[..., Any], style: str
) -> None:
    handle = warehouse.script(
        "SELECT 1/0", error="Division by zero", sqlstate="22012", error_style=style
    )
    with connect().cursor() as cursor:
        with pytest.raises(exc.DatabaseError) as raised:
            cursor.execute("SELECT 1/0")
        assert "Division by zero" in str(raised.value)
        assert "SQLSTATE: 22012" in str(raised.value)
        if style == "operation":
            assert isinstance(raised.value, exc.ServerOperationError)
            assert raised.value.context["operation-id"] == cursor.query_id
        else:
            # The failing TStatus comes before the driver takes the operation handle.
            assert not isinstance(raised.value, exc.ServerOperationError)
            assert cursor.query_id is None
        served = warehouse.served[handle.statement_ids[0]]
        assert (served.state, served.sqlstate) == ("ERROR", "22012")


def test_error_after_polls(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.script("SELECT 'x'", running_polls=2, error="late failure", sqlstate="40001")
    with connect().cursor() as cursor, pytest.raises(exc.ServerOperationError, match="40001"):
        cursor.execute("SELECT 'x'")
    assert warehouse.rpc_names().count("GetOperationStatus") == 3


def test_execute_async(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.execute_sql("CREATE TABLE t AS SELECT * FROM range(10) r(id)")
    warehouse.script("SELECT sum(id) AS total FROM t", running_polls=2)
    connection = connect()
    warehouse.reset_records()
    with connection.cursor() as cursor:
        cursor.ASYNC_DEFAULT_POLLING_INTERVAL = 0.01
        cursor.execute_async("SELECT sum(id) AS total FROM t")
        assert cursor.get_query_state() == CommandState.RUNNING
        assert cursor.is_query_pending()
        cursor.get_async_execution_result()
        assert [tuple(r) for r in cursor.fetchall()] == [(45,)]
    names = warehouse.rpc_names()
    assert names[0] == "ExecuteStatement"
    assert warehouse.rpcs[0].request.getDirectResults is None
    assert names.count("GetOperationStatus") >= 3
    assert names[-2:] == ["FetchResults", "CloseOperation"]


def test_cancel_from_another_thread(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.script("SELECT 'slow' AS v", completion_delay=30)
    with connect().cursor() as cursor:
        cancelled = threading.Event()

        def cancel() -> None:
            # Once execute() holds the command id it is waiting for the statement: cancel it.
            wait_until(lambda: cursor.active_command_id is not None, "the statement to start")
            cursor.cancel()
            cancelled.set()

        thread = threading.Thread(target=cancel)
        thread.start()
        cursor.execute("SELECT 'slow' AS v")  # a cancelled execute returns instead of raising
        thread.join(5)
        assert cancelled.is_set()
        assert cursor.active_result_set.status == CommandState.CANCELLED
        assert cursor.fetchall() == []
        served = warehouse.served[cursor.query_id]
        assert served.cancelled and served.state == "CANCELED"
    assert "CancelOperation" in warehouse.rpc_names()


def test_metadata_calls(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.execute_sql("CREATE TABLE orders (id BIGINT, amount DECIMAL(10,2), note STRING)")
    warehouse.execute_sql("CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100")
    with connect().cursor() as cursor:
        cursor.catalogs()
        assert [r.TABLE_CAT for r in cursor.fetchall()] == ["main"]
        cursor.schemas(catalog_name="main")
        assert [(r.TABLE_CATALOG, r.TABLE_SCHEM) for r in cursor.fetchall()] == [
            ("main", "default")
        ]
        cursor.tables(catalog_name="main", schema_name="default")
        assert [(r.TABLE_NAME, r.TABLE_TYPE) for r in cursor.fetchall()] == [
            ("big_orders", "VIEW"),
            ("orders", "TABLE"),
        ]
        cursor.tables(catalog_name="main", table_name="ord%", table_types=["TABLE"])
        assert [r.TABLE_NAME for r in cursor.fetchall()] == ["orders"]
        cursor.columns(catalog_name="main", schema_name="default", table_name="orders")
        rows = cursor.fetchall()
        assert [(r.COLUMN_NAME, r.DATA_TYPE, r.TYPE_NAME, r.ORDINAL_POSITION) for r in rows] == [
            ("id", -5, "BIGINT", 0),
            ("amount", 3, "DECIMAL(10,2)", 1),
            ("note", 12, "STRING", 2),
        ]
        assert rows[1].DECIMAL_DIGITS == 2 and rows[1].COLUMN_SIZE == 10
        assert [d[0] for d in cursor.description][:7] == [
            "TABLE_CAT",
            "TABLE_SCHEM",
            "TABLE_NAME",
            "COLUMN_NAME",
            "DATA_TYPE",
            "TYPE_NAME",
            "COLUMN_SIZE",
        ]
        cursor.columns(table_name="orders", column_name="am%")
        assert [r.COLUMN_NAME for r in cursor.fetchall()] == ["amount"]
    names = warehouse.rpc_names()
    for rpc in ("GetCatalogs", "GetSchemas", "GetTables", "GetColumns"):
        assert rpc in names
    assert "FetchResults" not in names  # metadata results come back as direct results


def test_unscripted_format_follows_client(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    sql = "SELECT * FROM range(150000)"
    with connect().cursor() as cursor:
        cursor.execute(sql)
        assert len(cursor.fetchall_arrow()) == 150_000
        default = warehouse.served[cursor.query_id]
    with connect(use_cloud_fetch=False, enable_query_result_lz4_compression=False).cursor() as c2:
        c2.execute(sql)
        assert len(c2.fetchall_arrow()) == 150_000
        no_download = warehouse.served[c2.query_id]
    assert (default.result_format, default.lz4) == ("cloudfetch", True)
    assert (no_download.result_format, no_download.lz4) == ("arrow", False)


def test_scripts(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="columnar, arrow, cloudfetch"):
        warehouse.script("SELECT 1", result_format="csv")
    with pytest.raises(ValueError, match="operation, status"):
        warehouse.script("SELECT 1", error="x", error_style="http")
    once = warehouse.script(r"SELECT \d+ AS n", regex=True, error="first", times=1)
    newer = warehouse.script("SELECT 7 AS n", result_format="columnar")
    with connect().cursor() as cursor:
        cursor.execute("SELECT 7 AS n")  # the newer exact script wins
        assert cursor.fetchone().n == 7
        assert warehouse.served[cursor.query_id].result_format == "columnar"
        with pytest.raises(exc.ServerOperationError, match="first"):
            cursor.execute("SELECT 8 AS n")
        cursor.execute("SELECT 8 AS n")  # times=1 used up
        assert cursor.fetchone().n == 8
        assert once.hits == 1 and not once.active
        assert newer.hits == 1 and newer.statement_ids == [
            sid for sid, s in warehouse.served.items() if s.sql == "SELECT 7 AS n"
        ]
        warehouse.clear_scripts()
        cursor.execute("SELECT 7 AS n")
        assert warehouse.served[cursor.query_id].result_format == "arrow"
        assert not newer.active


def test_row_limit_and_empty_results(connect: Callable[..., Any]) -> None:
    with connect().cursor() as cursor:
        cursor.execute("SELECT * FROM range(10) WHERE range > 100")
        assert cursor.fetchall() == []
        cursor.execute("CREATE TABLE nothing (x INT)")
        assert cursor.fetchall() == []
        assert cursor.description == []
    with connect().cursor(row_limit=3) as limited:
        limited.execute("SELECT * FROM range(10)")
        assert len(limited.fetchall()) == 3
