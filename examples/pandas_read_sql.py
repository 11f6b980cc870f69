"""``pandas.read_sql`` through a SQLAlchemy engine (``databricks-sqlalchemy``), instrumented.

pandas runs the query on a connection of the engine, the dialect on ``databricks.sql``, so the
query is traced like any other statement.

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]" databricks-sqlalchemy pandas
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    python examples/pandas_read_sql.py

Against the local warehouse of this repository instead of a workspace (after
``pip install ".[instruments,warehouse]"``), start it in another shell::

    python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed

and paste the ``export`` lines it prints in place of the ``DATABRICKS_*`` lines above: they set
every variable below (``--seed`` creates the ``trips`` table the queries read).

It prints, for the trips shorter than 5 miles, one row per whole mile (miles, trips, average
fare), then the number of rows.

Environment variables:

``DATABRICKS_SERVER_HOSTNAME``, ``DATABRICKS_HTTP_PATH``, ``DATABRICKS_TOKEN``
    The warehouse and a personal access token (required).
``DATABRICKS_CATALOG``, ``DATABRICKS_SCHEMA``
    Where the table ``trips`` is; default ``samples`` / ``nyctaxi`` (in every workspace).
``DBSQL_EXTRA_CONNECT_ARGS``
    Optional JSON object of further ``databricks.sql.connect()`` keyword arguments, given as
    the engine's ``connect_args``. The local warehouse's lines put its ``_connection_uri`` and
    ``_port`` there: without ``_connection_uri`` the driver builds
    ``https://{host}:443{http_path}``, which a local endpoint does not answer, and retries it
    for minutes without a word.
``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``
    The standard OTLP exporter and resource settings.

Spans: ``fare-table``, the application's span, and inside it ``connect {server.address}``, a
``DESCRIBE TABLE EXTENDED`` statement span with an error status and the ``SELECT trips``
statement span of the query; ``close {server.address}`` comes when the engine is disposed,
after the application's span ended, so it is the root of a trace of its own.

The failing ``DESCRIBE TABLE EXTENDED`` is ``pandas.read_sql`` asking the dialect whether its
argument names a table (see ``examples/README.md``; ``pandas.read_sql_query`` skips it). The
query's result arrives whole with the execute response, so its statement span carries the
returned rows and no ``RESULT`` span follows (one would for a result fetched in further round
trips, more pages or CloudFetch files: see README.rst, "Spans").

Only spans are exported: no meter provider is set up, so no metric is recorded.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import URL, Engine, create_engine, text

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

FARES_BY_DISTANCE = text(
    "SELECT CAST(FLOOR(trip_distance) AS INT) AS miles, COUNT(*) AS trips, "
    "AVG(fare_amount) AS avg_fare FROM trips WHERE trip_distance < :max_miles "
    "GROUP BY 1 ORDER BY 1"
)


def make_engine() -> Engine:
    """An engine for the warehouse named by the environment."""
    host = os.environ["DATABRICKS_SERVER_HOSTNAME"]
    url = URL.create(
        "databricks",
        username="token",
        password=os.environ["DATABRICKS_TOKEN"],
        host=urlsplit(host if "://" in host else "//" + host).hostname,
        query={
            "http_path": os.environ["DATABRICKS_HTTP_PATH"],
            "catalog": os.environ.get("DATABRICKS_CATALOG", "samples"),
            "schema": os.environ.get("DATABRICKS_SCHEMA", "nyctaxi"),
        },
    )
    connect_args: dict[str, Any] = {}
    if "://" in host or ":" in host:
        # The dialect hands the driver the URL's host name only; a host given with a scheme
        # or a port goes to the driver as written.
        connect_args["server_hostname"] = host
    connect_args.update(json.loads(os.environ.get("DBSQL_EXTRA_CONNECT_ARGS") or "{}"))
    return create_engine(url, connect_args=connect_args)


def main() -> None:
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "dbsql-pandas-example")}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    tracer = tracer_provider.get_tracer("examples.pandas_read_sql")

    engine = make_engine()
    try:
        with tracer.start_as_current_span("fare-table"):
            frame = pd.read_sql(FARES_BY_DISTANCE, engine, params={"max_miles": 5})
        print(frame.to_string(index=False))
        print(f"rows {len(frame)}")
    finally:
        engine.dispose()
        instrumentor.uninstrument()
        tracer_provider.shutdown()


if __name__ == "__main__":
    main()
