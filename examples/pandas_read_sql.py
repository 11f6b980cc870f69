"""``pandas.read_sql`` through a SQLAlchemy engine (``databricks-sqlalchemy``), instrumented.

pandas runs the query on a connection of the engine, the dialect on ``databricks.sql``: the
statement gets the same spans as any other (a ``SELECT trips`` statement span and a result
span, inside the application's span).

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]" databricks-sqlalchemy pandas
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    python examples/pandas_read_sql.py

Environment variables:

``DATABRICKS_SERVER_HOSTNAME``, ``DATABRICKS_HTTP_PATH``, ``DATABRICKS_TOKEN``
    The warehouse and a personal access token (required).
``DATABRICKS_CATALOG``, ``DATABRICKS_SCHEMA``
    Where the table ``trips`` is; default ``samples`` / ``nyctaxi`` (in every workspace).
``DBSQL_EXTRA_CONNECT_ARGS``
    Optional JSON object of further ``databricks.sql.connect()`` keyword arguments, given as
    the engine's ``connect_args`` (the tests use it for the local warehouse's
    ``_connection_uri`` and ``_port``).
``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``
    The standard OTLP exporter and resource settings.
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
