"""Programmatic OpenTelemetry set-up exporting over OTLP/gRPC, then a few Databricks queries.

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]"
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317   # a collector's OTLP/gRPC port
    python examples/otlp_programmatic.py

Against the local warehouse of this repository instead of a workspace (after
``pip install ".[instruments,warehouse]"``), start it in another shell::

    python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed

and paste the ``export`` lines it prints in place of the ``DATABRICKS_*`` lines above: they set
every variable below (``--seed`` creates the ``trips`` table the queries read).

It prints the trace id, the five pickup zip codes with the most trips (trips and average fare
of each) and the number of trips longer than 10 miles.

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
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_INSECURE``, ``OTEL_EXPORTER_OTLP_HEADERS``...
    The standard OTLP exporter settings, read by the exporters themselves.
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``
    The resource; the service name defaults to ``dbsql-otlp-example``.

Spans: ``trip-report``, the application's span, and inside it ``connect {server.address}``,
one ``SELECT trips`` statement span per query and ``close {server.address}``.

Each query's result arrives whole with the execute response, so its statement span carries
the returned rows and no ``RESULT`` span follows (one would for a result fetched in further
round trips, more pages or CloudFetch files: see README.rst, "Spans").

Metrics: the ``db.client.*`` and ``databricks.client.*`` instruments of README.rst's table, and
the ``databricks.telemetry.export.*`` counters of the Databricks telemetry export, exported
every 10 s and at shutdown.
"""

from __future__ import annotations

import json
import os
from typing import Any

import databricks.sql
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

TOP_PICKUP_ZIPS = (
    "SELECT pickup_zip, COUNT(*) AS trips, ROUND(AVG(fare_amount), 2) AS avg_fare "
    "FROM trips GROUP BY pickup_zip ORDER BY trips DESC, pickup_zip LIMIT 5"
)
LONG_TRIPS = "SELECT COUNT(*) AS long_trips FROM trips WHERE trip_distance > :miles"


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
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "dbsql-otlp-example")}
    )
    # The exporters read OTEL_EXPORTER_OTLP_* (endpoint, headers, TLS, timeout) themselves.
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[
            PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=10_000)
        ],
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)

    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument()  # the global providers set above; options from OTEL_PYTHON_DBSQL_*
    tracer = trace.get_tracer("examples.otlp_programmatic")
    try:
        with tracer.start_as_current_span("trip-report") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            print(f"trace_id {trace_id}")
            with databricks.sql.connect(**connect_args()) as connection:
                with connection.cursor() as cursor:
                    cursor.execute(TOP_PICKUP_ZIPS)
                    for pickup_zip, trips, avg_fare in cursor.fetchall():
                        print(f"pickup_zip {pickup_zip}: {trips} trips, avg fare {avg_fare}")
                    cursor.execute(LONG_TRIPS, {"miles": 10})
                    (long_trips,) = cursor.fetchall()[0]
                    print(f"long_trips {long_trips}")
    finally:
        # Order matters: the instrumentation first (it flushes what it holds), then the
        # providers, whose shutdown exports the spans and metrics still buffered.
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


if __name__ == "__main__":
    main()
