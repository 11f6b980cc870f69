"""Statement tags and trace-context propagation into Databricks ``query_tags``.

``statement_tags(team=..., job=...)`` tags every statement run inside the block: each tag
becomes a span attribute ``databricks.tag.<key>``. With ``propagate_trace_context=True``
(or ``OTEL_PYTHON_DBSQL_PROPAGATE_TRACE_CONTEXT=true``) each statement's Databricks
``query_tags`` also carry the tags and a W3C ``traceparent`` naming the statement's span, so
a query found in the warehouse's query history leads back to its trace. Tags the application
passes itself (``cursor.execute(..., query_tags=...)``) are kept; on equal keys they win.
Propagation needs a connector release whose ``Cursor.execute`` accepts ``query_tags``.

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]"
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    python examples/statement_tags.py

Against the local warehouse of this repository instead of a workspace (after
``pip install ".[instruments,warehouse]"``), start it in another shell::

    python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed

and paste the ``export`` lines it prints in place of the ``DATABRICKS_*`` lines above: they set
every variable below (``--seed`` creates the ``trips`` table the queries read).

Nothing is exported. For each of its three statements it prints, when the statement span ends,
the span's name (``SELECT trips``), its tags and the ``traceparent`` sent with the statement,
then the statement's result: the two statements inside the ``statement_tags`` block carry the
tags ``team`` and ``job``, the third none; all three ``traceparent`` values share the trace id
of the application's span ``nightly-job``.

Environment variables:

``DATABRICKS_SERVER_HOSTNAME``, ``DATABRICKS_HTTP_PATH``, ``DATABRICKS_TOKEN``
    The warehouse and a personal access token (required).
``DATABRICKS_CATALOG``, ``DATABRICKS_SCHEMA``
    Where the table ``trips`` is; default ``samples`` / ``nyctaxi`` (in every workspace).
``DBSQL_EXTRA_CONNECT_ARGS``
    Optional JSON object of further ``databricks.sql.connect()`` keyword arguments, applied
    last. The local warehouse's lines put its ``_connection_uri`` and ``_port`` there: without
    ``_connection_uri`` the driver builds ``https://{host}:443{http_path}``, which a local
    endpoint does not answer, and retries it for minutes without a word.
"""

from __future__ import annotations

import json
import os
from typing import Any

import databricks.sql
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor, statement_tags

TAG_PREFIX = "databricks.tag."


class PrintStatements(SpanProcessor):
    """Prints each finished statement span: name, tags and the traceparent it was sent with."""

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        if attributes.get("databricks.span.role") != "STATEMENT" or span.context is None:
            return
        context = span.context
        traceparent = (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        )
        tags = {k[len(TAG_PREFIX) :]: v for k, v in attributes.items() if k.startswith(TAG_PREFIX)}
        print(f"statement {span.name!r} tags={json.dumps(tags, sort_keys=True)}")
        print(f"  traceparent {traceparent}")


def connect_args() -> dict[str, Any]:
    """``databricks.sql.connect()`` keyword arguments from the environment."""
    args: dict[str, Any] = {
        "server_hostname": os.environ["DATABRICKS_SERVER_HOSTNAME"],
        "http_path": os.environ["DATABRICKS_HTTP_PATH"],
        "access_token": os.environ["DATABRICKS_TOKEN"],
        "catalog": os.environ.get("DATABRICKS_CATALOG", "samples"),
        "schema": os.environ.get("DATABRICKS_SCHEMA", "nyctaxi"),
    }
    args.update(json.loads(os.environ.get("DBSQL_EXTRA_CONNECT_ARGS") or "{}"))
    return args


def main() -> None:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(PrintStatements())
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, propagate_trace_context=True)
    tracer = tracer_provider.get_tracer("examples.statement_tags")
    try:
        with tracer.start_as_current_span("nightly-job"):
            with databricks.sql.connect(**connect_args()) as connection:
                with connection.cursor() as cursor:
                    with statement_tags(team="data-eng", job="nightly"):
                        cursor.execute("SELECT COUNT(*) FROM trips")
                        print(f"trips {cursor.fetchall()[0][0]}")
                        # The application's own query tags are merged with the tags above.
                        cursor.execute(
                            "SELECT AVG(fare_amount) FROM trips WHERE pickup_zip = :zip",
                            {"zip": 10003},
                            query_tags={"priority": "low"},
                        )
                        print(f"average fare {cursor.fetchall()[0][0]}")
                    # Outside the block: the traceparent only.
                    cursor.execute("SELECT MAX(trip_distance) FROM trips")
                    print(f"longest trip {cursor.fetchall()[0][0]}")
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()


if __name__ == "__main__":
    main()
