"""A plain application with no OpenTelemetry code: ``opentelemetry-instrument`` adds it all.

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]" opentelemetry-distro
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    export OTEL_SERVICE_NAME=trip-stats
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    opentelemetry-instrument python examples/auto_instrumentation.py

``opentelemetry-instrument`` finds this package through its ``opentelemetry_instrumentor``
entry point and calls ``DbsqlInstrumentor().instrument()`` before the application starts;
``opentelemetry-distro`` configures the SDK from the standard ``OTEL_*`` variables (traces and
metrics over OTLP by default). The instrumentation's options come from the
``OTEL_PYTHON_DBSQL_*`` variables, for example ``OTEL_PYTHON_DBSQL_PROPAGATE_TRACE_CONTEXT=true``
or ``OTEL_PYTHON_DBSQL_CAPTURE_QUERY_TEXT=off``. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=dbsql``
turns it off.

Environment variables of the application itself:

``DATABRICKS_SERVER_HOSTNAME``, ``DATABRICKS_HTTP_PATH``, ``DATABRICKS_TOKEN``
    The warehouse and a personal access token (required).
``DATABRICKS_CATALOG``, ``DATABRICKS_SCHEMA``
    Where the table ``trips`` is; default ``samples`` / ``nyctaxi`` (in every workspace).
``DBSQL_EXTRA_CONNECT_ARGS``
    Optional JSON object of further ``databricks.sql.connect()`` keyword arguments, applied
    last (the tests use it for the local warehouse's ``_connection_uri`` and ``_port``).
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
