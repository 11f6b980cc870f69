"""SQLAlchemy (``databricks-sqlalchemy``) on the instrumented driver: a Core and an ORM query.

The dialect opens its connections with ``databricks.sql.connect()``, so the driver's
instrumentation sees every statement SQLAlchemy runs; no SQLAlchemy instrumentation is
needed (see ``examples/README.md`` for running it together with
``opentelemetry-instrumentation-sqlalchemy``).

Run from the top directory of a checkout (the package is not on a package index yet)::

    pip install ".[instruments]" databricks-sqlalchemy
    export DATABRICKS_SERVER_HOSTNAME=adb-1234567890123456.7.azuredatabricks.net
    export DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/abcdef0123456789
    export DATABRICKS_TOKEN=dapi...
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    python examples/sqlalchemy_app.py

Against the local warehouse of this repository instead of a workspace (after
``pip install ".[instruments,warehouse]"``), start it in another shell::

    python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed

and paste the ``export`` lines it prints in place of the ``DATABRICKS_*`` lines above: they set
every variable below (``--seed`` creates the ``trips`` table the queries read).

The engine URL has the form
``databricks://token:<token>@<host>?http_path=<path>&catalog=<catalog>&schema=<schema>``.
``create_engine(url, connect_args={...})`` passes further ``databricks.sql.connect()``
keyword arguments; they override what the dialect derives from the URL.

It prints the three pickup zip codes with the most trips (Core) and the three longest trips
over 10 miles (ORM).

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

Spans: ``fare-analysis``, the application's span, and inside it ``connect {server.address}``
(the engine's first connection) and one ``SELECT trips`` statement span each for the Core and
the ORM query; ``close {server.address}`` comes when the engine is disposed, after the
application's span ended, so it is the root of a trace of its own.

Each query's result arrives whole with the execute response, so its statement span carries
the returned rows and no ``RESULT`` span follows (one would for a result fetched in further
round trips, more pages or CloudFetch files: see README.rst, "Spans").

Only spans are exported: no meter provider is set up, so no metric is recorded.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import URL, Engine, Float, Integer, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor


class Base(DeclarativeBase):
    pass


class Trip(Base):
    """A row of ``trips`` (the columns used here)."""

    __tablename__ = "trips"
    # The table has no primary key; the ORM needs one to map rows, so the mapping names all
    # columns (identical rows collapse into one object, which is fine for reading).
    pickup_zip: Mapped[int] = mapped_column(Integer, primary_key=True)
    dropoff_zip: Mapped[int] = mapped_column(Integer, primary_key=True)
    trip_distance: Mapped[float] = mapped_column(Float, primary_key=True)
    fare_amount: Mapped[float] = mapped_column(Float, primary_key=True)


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
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "dbsql-sqlalchemy-example")}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    tracer = tracer_provider.get_tracer("examples.sqlalchemy_app")

    engine = make_engine()
    try:
        with tracer.start_as_current_span("fare-analysis"):
            # Core: an aggregate over the mapped table.
            per_zip = (
                select(
                    Trip.pickup_zip,
                    func.count().label("trips"),
                    func.avg(Trip.fare_amount).label("avg_fare"),
                )
                .group_by(Trip.pickup_zip)
                .order_by(func.count().desc(), Trip.pickup_zip)
                .limit(3)
            )
            with engine.connect() as connection:
                for row in connection.execute(per_zip):
                    print(f"core pickup_zip {row.pickup_zip}: {row.trips} trips")

            # ORM: objects of the mapped class.
            longest = (
                select(Trip)
                .where(Trip.trip_distance > 10)
                .order_by(Trip.trip_distance.desc(), Trip.fare_amount.desc())
                .limit(3)
            )
            with Session(engine) as session:
                for trip in session.scalars(longest):
                    print(f"orm trip {trip.trip_distance} miles, fare {trip.fare_amount}")
    finally:
        engine.dispose()
        instrumentor.uninstrument()
        tracer_provider.shutdown()


if __name__ == "__main__":
    main()
