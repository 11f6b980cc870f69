"""Request and response hooks, statements left out, and the older attribute names."""

from __future__ import annotations

import logging
import re
from typing import Any

import databricks.sql
import pytest
from opentelemetry.trace import Span

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor, StatementInfo
from tests.conftest import make_telemetry


def _run(warehouse: Any, *statements: tuple[str, Any]) -> list[Any]:
    results = []
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        for sql, parameters in statements:
            cursor.execute(sql, parameters)
            results.append(cursor.fetchall())
    return results


def test_request_and_response_hooks_see_each_statement(warehouse: Any) -> None:
    seen: list[tuple[str, StatementInfo]] = []

    def request_hook(span: Span, info: StatementInfo) -> None:
        seen.append(("request", info))
        span.set_attribute("app.request", info.summary or "")

    def response_hook(span: Span, info: StatementInfo) -> None:
        seen.append(("response", info))
        span.set_attribute("app.statement", info.statement_id or "")

    telemetry = make_telemetry(
        request_hook=request_hook, response_hook=response_hook, capture_parameters=True
    )
    try:
        (rows,) = _run(warehouse, ("SELECT id FROM orders WHERE id < :n", {"n": 2}))
        assert [r[0] for r in rows] == [0, 1]
        (statement,) = telemetry.spans_by_role("STATEMENT")
    finally:
        telemetry.instrumentor.uninstrument()
    attributes = dict(statement.attributes or {})
    assert attributes["app.request"] == "SELECT orders"
    assert attributes["app.statement"] == attributes["databricks.statement.id"]
    (request_kind, request), (response_kind, response) = seen
    assert (request_kind, response_kind) == ("request", "response")
    assert request.method == "execute"
    assert request.operation_name == "SELECT"
    assert request.statement_id is None  # the server has not assigned one yet
    assert request.parameters == {"n": 2}  # captured: capture_parameters is on
    assert response.statement_id == attributes["databricks.statement.id"]
    assert response.parameters is None
    assert response.error_type is None


def test_parameters_reach_hooks_only_when_captured(warehouse: Any) -> None:
    seen: list[StatementInfo] = []
    telemetry = make_telemetry(request_hook=lambda span, info: seen.append(info))
    try:
        _run(warehouse, ("SELECT id FROM orders WHERE id < :n", {"n": 2}))
    finally:
        telemetry.instrumentor.uninstrument()
    assert [info.parameters for info in seen] == [None]


def test_a_failing_hook_is_logged_once_and_never_reaches_the_application(
    warehouse: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(span: Span, info: StatementInfo) -> None:
        raise RuntimeError("hook bug")

    telemetry = make_telemetry(request_hook=broken, response_hook=broken)
    try:
        with caplog.at_level(logging.WARNING):
            results = _run(warehouse, ("SELECT 1 AS one", None), ("SELECT 2 AS two", None))
        assert [[tuple(row) for row in rows] for rows in results] == [[(1,)], [(2,)]]
        assert len(telemetry.spans_by_role("STATEMENT")) == 2
    finally:
        telemetry.instrumentor.uninstrument()
    logged = [r for r in caplog.records if "raised; the statement is unaffected" in r.getMessage()]
    assert sorted(r.getMessage().split()[1] for r in logged) == ["request_hook", "response_hook"]


def test_a_hook_that_is_not_callable_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"'request_hook'.*callable"):
        DbsqlInstrumentor().instrument(request_hook="not a function")
    assert not DbsqlInstrumentor().is_instrumented_by_opentelemetry


@pytest.mark.parametrize(
    "exclude",
    [["SELECT 1"], [re.compile(r"(?i)select\s+1")], re.compile(r"SELECT 1")],
    ids=["exact", "pattern-list", "pattern"],
)
def test_excluded_statements_make_no_span_and_no_metric_but_keep_their_record(
    warehouse: Any, exclude: Any
) -> None:
    telemetry = make_telemetry(exclude_statements=exclude)
    try:
        _run(warehouse, ("  SELECT 1\n", None), ("SELECT 2 AS two", None))
        statements = telemetry.spans_by_role("STATEMENT")
        durations = telemetry.metrics()["db.client.operation.duration"]
    finally:
        telemetry.instrumentor.uninstrument()
    assert [s.name for s in statements] == ["SELECT"]
    assert (statements[0].attributes or {})["db.query.text"] == "SELECT ? AS two"
    assert sum(p.count for p in durations) == 1
    # The Databricks records are unaffected: one per statement.
    executed = [
        r for r in telemetry.sink.records if getattr(r, "operation_type", "") == "EXECUTE_STATEMENT"
    ]
    assert len(executed) == 2


def test_exclusion_from_the_environment(warehouse: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DBSQL_EXCLUDE_STATEMENTS", r"(?i)select\s+1")
    telemetry = make_telemetry()
    try:
        _run(warehouse, ("select 1", None), ("SELECT 2 AS two", None))
        assert len(telemetry.spans_by_role("STATEMENT")) == 1
    finally:
        telemetry.instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("opt_in", "old_names"),
    [("database/dup", True), ("database", False), ("http,database/dup", True), ("", False)],
)
def test_older_attribute_names_on_database_dup(
    warehouse: Any, monkeypatch: pytest.MonkeyPatch, opt_in: str, old_names: bool
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    telemetry = make_telemetry()
    try:
        _run(warehouse, ("SELECT id FROM orders WHERE id = 3", None))
        (statement,) = telemetry.spans_by_role("STATEMENT")
    finally:
        telemetry.instrumentor.uninstrument()
    attributes = dict(statement.attributes or {})
    assert attributes["db.query.text"] == "SELECT id FROM orders WHERE id = ?"
    old = {
        "db.system": attributes["db.system.name"],
        "db.statement": attributes["db.query.text"],
        "db.operation": "SELECT",
        "db.sql.table": "orders",
        "net.peer.name": attributes["server.address"],
        "net.peer.port": attributes["server.port"],
    }
    for name, value in old.items():
        if old_names:
            assert attributes[name] == value, name
        else:
            assert name not in attributes, name
