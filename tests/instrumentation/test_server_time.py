"""Server time: the server's own start and completion times split a statement's duration.

Only Thrift status responses carry them (``operationStarted`` / ``operationCompleted``): on the
REST backends a statement has no server time at all, rather than a guessed one.
"""

from __future__ import annotations

from typing import Any

import databricks.sql
import pytest
from databricks.sql.exc import ServerOperationError

from tests.conftest import Telemetry, every_backend

# Only Thrift reports server times: the others show none.
pytestmark = every_backend


def _statement(telemetry: Telemetry) -> dict[str, Any]:
    (statement,) = telemetry.spans_by_role("STATEMENT")
    return dict(statement.attributes or {}), statement


def _no_server_time(telemetry: Telemetry, attributes: dict[str, Any]) -> None:
    assert "databricks.server.duration_ms" not in attributes
    assert "databricks.client_and_network.duration_ms" not in attributes
    assert "databricks.server.operation.duration" not in telemetry.metrics()


@pytest.mark.parametrize("running_polls", [0, 2], ids=["direct-results", "polled"])
def test_statement_carries_server_time(
    warehouse: Any, telemetry: Telemetry, backend: str, running_polls: int
) -> None:
    sql = "SELECT 42 AS answer"
    warehouse.script(sql, completion_delay=0.3, running_polls=running_polls, poll_delay=0.01)
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        assert cursor.fetchall()[0][0] == 42
    attributes, span = _statement(telemetry)
    if backend != "thrift":
        _no_server_time(telemetry, attributes)
        return
    server_ms = attributes["databricks.server.duration_ms"]
    assert server_ms >= 300  # the scripted completion delay is server time
    span_ms = (span.end_time - span.start_time) // 1_000_000
    assert server_ms <= span_ms
    assert attributes["databricks.client_and_network.duration_ms"] == span_ms - server_ms
    points = telemetry.metrics()["databricks.server.operation.duration"]
    assert sum(p.count for p in points) == 1
    assert sum(p.sum for p in points) == pytest.approx(server_ms / 1e3)


def test_failed_statement_carries_server_time(
    warehouse: Any, telemetry: Telemetry, backend: str
) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with pytest.raises(ServerOperationError):
            cursor.execute("SELECT * FROM no_such_table")
    attributes, _ = _statement(telemetry)
    if backend != "thrift":
        _no_server_time(telemetry, attributes)
        return
    assert attributes["databricks.server.duration_ms"] >= 0
    (point,) = telemetry.metrics()["databricks.server.operation.duration"]
    assert point.attributes["error.type"] == attributes["error.type"]


def test_batch_carries_no_server_time(warehouse: Any, telemetry: Telemetry) -> None:
    warehouse.execute_sql("CREATE TABLE kv (k INT)")
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.executemany("INSERT INTO kv VALUES (:k)", [{"k": 1}, {"k": 2}])
    attributes, _ = _statement(telemetry)
    assert attributes["db.operation.batch.size"] == 2
    assert "databricks.server.duration_ms" not in attributes
    assert "databricks.client_and_network.duration_ms" not in attributes
