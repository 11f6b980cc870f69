"""A plain application with no OpenTelemetry code: ``opentelemetry-instrument`` adds it all.

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]" opentelemetry-distro
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    export OTEL_SERVICE_NAME=trip-stats
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    opentelemetry-instrument python examples/auto_instrumentation.py

Against the local warehouse of this repository instead of a workspace (after
``pip install ".[instruments,warehouse]"``), start it in another shell::

    python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed

and paste the ``export`` lines it prints in place of the ``DATABRICKS_*`` lines above: they set
every variable below (``--seed`` creates the ``trips`` table the queries read).

``opentelemetry-instrument`` finds this package through its ``opentelemetry_instrumentor``
entry point and calls ``DbsqlInstrumentor().instrument()`` before the application starts;
``opentelemetry-distro`` configures the SDK from the standard ``OTEL_*`` variables (traces and
metrics over OTLP by default). The instrumentation's options come from the
``OTEL_PYTHON_DBSQL_*`` variables, for example ``OTEL_PYTHON_DBSQL_PROPAGATE_TRACE_CONTEXT=true``
or ``OTEL_PYTHON_DBSQL_CAPTURE_QUERY_TEXT=off``. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=dbsql``
turns it off.

It prints the three busiest routes (pickup and dropoff zip codes, trips) and the fare range of
the busiest route's pickup zip code.

Environment variables of the application itself:

``DATABRICKS_SERVER_HOSTNAME``, ``DATABRICKS_HTTP_PATH``, ``DATABRICKS_TOKEN``
    The warehouse and a personal access token (required).
``DATABRICKS_CATALOG``, ``DATABRICKS_SCHEMA``
    Where the table ``trips`` is; default ``samples`` / ``nyctaxi`` (in every workspace).
``DBSQL_EXTRA_CONNECT_ARGS``
    Optional JSON object of further ``databricks.sql.connect()`` keyword arguments, applied
    last. The local warehouse's lines put its ``_connection_uri`` and ``_port`` there: without
    ``_connection_uri`` the driver builds ``https://{host}:443{http_path}``, which a local
    endpoint does not answer, and retries it for minutes without a word.

Spans: the application has no span of its own, so each is the root of its own trace:
``connect {server.address}``, one ``SELECT trips`` statement span per query and
``close {server.address}``.

Each query's result arrives whole with the execute response, so its statement span carries
the returned rows and no ``RESULT`` span follows (one would for a result fetched in further
round trips, more pages or CloudFetch files: see README.rst, "Spans").

Metrics: the ``db.client.*`` and ``databricks.client.*`` instruments of README.rst's table and
the ``databricks.telemetry.export.*`` counters, exported over OTLP as well.
"""

from __future__ import annotations

import json
import os
from typing import Any

import databricks.sql

BUSIEST_ROUTES = (
    "SELECT pickup_zip, dropoff_zip, COUNT(*) AS trips FROM trips "
    "GROUP BY pickup_zip, dropoff_zip ORDER BY trips DESC, pickup_zip, dropoff_zip LIMIT 3"
)
FARE_RANGE = "SELECT MIN(fare_amount), MAX(fare_amount) FROM trips WHERE pickup_zip = :zip"


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
    with databricks.sql.connect(**connect_args()) as connection, connection.cursor() as cursor:
        cursor.execute(BUSIEST_ROUTES)
        routes = cursor.fetchall()
        for pickup_zip, dropoff_zip, trips in routes:
            print(f"route {pickup_zip} -> {dropoff_zip}: {trips} trips")
        cursor.execute(FARE_RANGE, {"zip": routes[0][0]})
        low, high = cursor.fetchall()[0]
        print(f"fares from {routes[0][0]}: {low} .. {high}")


if __name__ == "__main__":
    main()
