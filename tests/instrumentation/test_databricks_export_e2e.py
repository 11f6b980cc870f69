"""The whole pipeline with default options: driver -> spans -> records -> /telemetry-ext."""

from __future__ import annotations

import time
from typing import Any

import databricks.sql
import pytest

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.export.wire_format import USER_AGENT_PRODUCT
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import statement_id_of
from tests.conftest import every_backend


def _events_of(warehouse: Any, session_id: str) -> list[dict[str, Any]]:
    return [e for e in warehouse.telemetry.events() if e.get("session_id") == session_id]


def _run(warehouse: Any, **connect_extra: Any) -> tuple[str, list[str]]:
    ids: list[str] = []
    with databricks.sql.connect(**warehouse.connect_kwargs(**connect_extra)) as conn:
        with conn.cursor() as cursor:
            for i in range(3):
                cursor.execute(f"SELECT {i} AS n")
                cursor.fetchall()
                ids.append(statement_id_of(cursor) or "")
        session_id = conn.get_session_id_hex()
    return session_id, ids


@pytest.fixture
def instrumented() -> Any:
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument()
    yield instrumentor
    instrumentor.uninstrument()


@every_backend
def test_flag_on_sends_our_records_and_no_native_ones(warehouse: Any, instrumented: Any) -> None:
    warehouse.feature_flags.configure(enabled=True)
    session_id, ids = _run(warehouse)
    instrumented.uninstrument()  # flushes within its deadline
    events = _events_of(warehouse, session_id)
    kinds = [e["sql_operation"]["operation_detail"]["operation_type"] for e in events]
    assert sorted(kinds) == ["CREATE_SESSION", "DELETE_SESSION"] + ["EXECUTE_STATEMENT"] * 3
    assert {e["sql_statement_id"] for e in events if e.get("sql_statement_id")} == set(ids)
    for event in events:
        config = event["system_configuration"]
        assert "client_app_name" not in config  # names the application, which gave none
        assert config["driver_version"] == databricks.sql.__version__
    for payload in warehouse.telemetry.payloads:
        assert "opentelemetry-instrumentation-dbsql/" in payload["headers"]["user-agent"]


@pytest.mark.parametrize(
    ("flag", "connect_extra", "expected"),
    [
        (False, {}, False),  # level 5: flag off
        (True, {"enable_telemetry": False}, False),  # level 2: explicit opt-out
        (False, {"force_enable_telemetry": True}, True),  # level 1: forced
        (True, {"enable_telemetry": "true"}, True),  # level 3, as a SQLAlchemy URL passes it
    ],
)
def test_opt_in_through_connect_arguments(
    warehouse: Any, instrumented: Any, flag: bool, connect_extra: dict[str, Any], expected: bool
) -> None:
    warehouse.feature_flags.configure(enabled=flag)
    session_id, _ = _run(warehouse, **connect_extra)
    instrumented.uninstrument()
    events = _events_of(warehouse, session_id)
    assert bool(events) is expected
    if connect_extra.get("force_enable_telemetry"):
        # Forced: the server is not asked (by this package: the kernel asks for flags of its own).
        flag_requests = [
            r
            for r in warehouse.http_requests
            if "feature-flags" in r.path and USER_AGENT_PRODUCT in r.headers.get("user-agent", "")
        ]
        assert not flag_requests


def test_hanging_endpoint_does_not_slow_statements_or_shutdown(
    warehouse: Any, instrumented: Any
) -> None:
    warehouse.feature_flags.configure(enabled=True)
    warehouse.telemetry.hang()
    try:
        started = time.monotonic()
        _run(warehouse)
        elapsed_statements = time.monotonic() - started
        started = time.monotonic()
        instrumented.uninstrument()
        elapsed_shutdown = time.monotonic() - started
    finally:
        warehouse.telemetry.release()
    # Correctness bounds, not speed targets: nothing may wait on the hanging endpoint.
    assert elapsed_statements < 5.0
    assert elapsed_shutdown < 5.0 + 1.0
