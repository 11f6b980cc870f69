"""The connector's REST backends (``use_sea=True``, the pure-Python SEA client, and
``use_kernel=True``, the Rust kernel; both talk the Statement Execution API) with the
instrumentation on: statements run against the local warehouse's REST API give the driver's
results and errors unchanged, and each gets its spans, matching what the warehouse served.

The instrumentation suite (tests/instrumentation) runs on every backend; this compares one
workload run bare and instrumented.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import databricks.sql
import pytest
import wrapt
from databricks.sql.client import Connection
from opentelemetry.trace import StatusCode

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.conftest import Telemetry, cloudfetch_files, make_telemetry

LINKED = "SELECT * FROM orders ORDER BY id"


def _workload(warehouse: LocalWarehouse) -> tuple[list[Any], list[str]]:
    """Run statements on the warehouse's backend; returns what the driver gave back and the
    statement ids."""
    outcomes: list[Any] = []
    query_ids: list[str] = []
    with databricks.sql.connect(**warehouse.connect_kwargs()) as connection:
        with connection.cursor() as cursor:
            for sql, params in [
                (LINKED, None),  # three external links, two fetched by chunk calls
                ("SELECT :id AS id, :name AS name", {"id": 7, "name": "x"}),
                ("SELECT 5 AS five", None),  # polled while RUNNING
                ("INSERT INTO orders (id) VALUES (1000), (1001)", None),
            ]:
                cursor.execute(sql, params)
                rows = [tuple(r) for r in cursor.fetchall()]
                outcomes.append((rows, cursor.description, cursor.rowcount))
                query_ids.append(str(cursor.query_id))
            cursor.catalogs()
            outcomes.append([tuple(r) for r in cursor.fetchall()])
            query_ids.append(str(cursor.query_id))
            try:
                cursor.execute("SELECT * FROM no_such_table")
            except databricks.sql.exc.Error as error:
                outcomes.append((type(error), str(error)))
                query_ids.append(str(cursor.query_id))
    return outcomes, query_ids


@pytest.fixture
def uninstrumented() -> Iterator[None]:
    init = vars(Connection)["__init__"]
    assert not isinstance(init, wrapt.FunctionWrapper), "driver still instrumented"
    yield


@pytest.mark.backends("sea", "kernel")
def test_rest_statements_are_unchanged_and_traced(
    warehouse: LocalWarehouse, uninstrumented: None, backend: str
) -> None:
    # Three external links, two fetched by chunk calls (one on the kernel: see
    # tests.conftest.cloudfetch_files).
    warehouse.script(LINKED, cloudfetch_files=cloudfetch_files(backend, 3), times=2)
    warehouse.script("SELECT 5 AS five", running_polls=1, times=2)
    baseline, _ = _workload(warehouse)
    warehouse.execute_sql("DELETE FROM orders WHERE id >= 1000")
    warehouse.reset_records()

    telemetry: Telemetry = make_telemetry()
    try:
        instrumented, query_ids = _workload(warehouse)
    finally:
        telemetry.instrumentor.uninstrument()
        telemetry.tracer_provider.shutdown()

    assert instrumented == baseline
    assert baseline[0][0][:2] == [(0, "customer_0", 0.0), (1, "customer_1", 1.5)]
    assert "GetStatement" in warehouse.rpc_names()
    if backend == "sea":
        assert "GetStatementResultChunk" in warehouse.rpc_names()
    served = warehouse.served
    # The kernel's catalogs() call has an id of the connector's making, not the one served.
    server_ids = [q for q in query_ids if q in served]
    assert [q for q in served if q in server_ids] == server_ids
    assert len(served) == len(query_ids)
    assert len(server_ids) == len(query_ids) - (backend == "kernel")

    (session,) = telemetry.spans_by_role("CREATE_SESSION")
    assert dict(session.attributes or {})["databricks.backend"] == backend
    statements = telemetry.spans_by_role("STATEMENT")
    recorded = [(s.attributes or {}).get("databricks.statement.id") for s in statements]
    assert recorded == [q if q in served else None for q in query_ids]
    for span, query_id in zip(statements, query_ids, strict=True):
        if query_id not in served:
            continue
        attributes = dict(span.attributes or {})
        assert attributes["server.port"] == warehouse.port
        assert attributes["databricks.session.id"] == served[query_id].session_id
        if served[query_id].state == "ERROR":
            assert span.status.status_code is StatusCode.ERROR
            assert attributes["db.response.status_code"] == served[query_id].sqlstate == "42P01"
        else:
            assert span.status.status_code is StatusCode.UNSET
            consumed = telemetry.consumption(span)
            returned = dict(consumed.attributes or {})["db.response.returned_rows"]
            assert returned == served[query_id].rows
    assert len(telemetry.spans_by_role("DELETE_SESSION")) == 1


def test_thrift_is_the_backend_of_a_plain_connect(
    warehouse: LocalWarehouse, telemetry: Telemetry
) -> None:
    """For contrast: the connector's default backend is Thrift."""
    with databricks.sql.connect(**warehouse.connect_kwargs()) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchall()[0][0] == 1
    (span,) = telemetry.spans_by_role("CREATE_SESSION")
    assert dict(span.attributes or {})["databricks.backend"] == "thrift"
    assert "OpenSession" in warehouse.rpc_names()
    assert {r.protocol for r in warehouse.rpcs} == {"thrift"}
