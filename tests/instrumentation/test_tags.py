"""Statement tags and trace-context propagation into Databricks query tags."""

from __future__ import annotations

import inspect
from typing import Any

import databricks.sql
import pytest
from databricks.sql.client import Cursor

from opentelemetry_instrumentation_dbsql import statement_tags
from tests.conftest import Telemetry, every_backend, make_telemetry

# Query tags travel in Thrift's confOverlay or in the REST request.
pytestmark = every_backend

SUPPORTS_QUERY_TAGS = "query_tags" in inspect.signature(Cursor.execute).parameters
needs_query_tags = pytest.mark.skipif(
    not SUPPORTS_QUERY_TAGS, reason="this connector release has no per-statement query_tags"
)


def _sent_tags(warehouse: Any) -> list[dict[str, str] | None]:
    """The query tags each ExecuteStatement carried (None: none): Thrift sends them as
    ``key:value,...`` in ``confOverlay["query_tags"]``, the REST API as ``{key, value}``s."""
    sent: list[dict[str, str] | None] = []
    for r in warehouse.rpcs:
        if r.name != "ExecuteStatement":
            continue
        if r.protocol == "rest":
            items = r.request.get("query_tags")
            sent.append({i["key"]: i["value"] for i in items} if items else None)
        else:
            text = dict(r.request.confOverlay or {}).get("query_tags")
            sent.append(dict(i.split(":", 1) for i in text.split(",")) if text else None)
    return sent


def _statement_spans(telemetry: Telemetry) -> list[Any]:
    return telemetry.spans_by_role("STATEMENT")


def test_tags_become_span_attributes(warehouse: Any, telemetry: Telemetry) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with statement_tags(team="data-eng", job="nightly"):
            cursor.execute("SELECT 1")
            with statement_tags(job="override", step=3):
                cursor.execute("SELECT 2")
        cursor.execute("SELECT 3")
    first, second, third = _statement_spans(telemetry)
    assert first.attributes["databricks.tag.team"] == "data-eng"
    assert first.attributes["databricks.tag.job"] == "nightly"
    assert second.attributes["databricks.tag.job"] == "override"
    assert second.attributes["databricks.tag.step"] == "3"
    assert second.attributes["databricks.tag.team"] == "data-eng"
    assert not any(k.startswith("databricks.tag.") for k in third.attributes)
    # Without propagation, nothing extra reaches the server.
    assert _sent_tags(warehouse) == [None, None, None]


@needs_query_tags
def test_traceparent_and_tags_reach_the_server(warehouse: Any) -> None:
    telemetry = make_telemetry(propagate_trace_context=True)
    try:
        with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
            with conn.cursor() as cursor, statement_tags(team="data-eng"):
                cursor.execute("SELECT 1", query_tags={"app": "billing"})
                cursor.fetchall()
    finally:
        telemetry.instrumentor.uninstrument()
    (span,) = _statement_spans(telemetry)
    context = span.context
    flags = int(context.trace_flags)
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    (tags,) = _sent_tags(warehouse)
    assert tags == {"app": "billing", "team": "data-eng", "traceparent": expected}
