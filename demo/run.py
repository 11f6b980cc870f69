"""Demo: a local Databricks SQL warehouse and a representative workload through the real driver.

Run with ``make demo`` (or ``.venv/bin/python demo/run.py``). Each workload step is a small
function in ``WORKLOAD``; every step prints one line: what ran, how many rows, how long. The
instrumentation is on: after the workload the demo prints a span tree per step, a metrics
summary and the Databricks telemetry payloads the warehouse received. With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans and metrics are also exported over OTLP.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import databricks.sql

# connect() imports the driver's client module on first use (a few hundred ms): imported up
# front, so that the connect line times the connection alone. The instrumentation wraps it
# whether it is imported before or after instrument().
import databricks.sql.client
from databricks.sql import exc
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from telemetry_view import metrics_summary, payload_summary, span_trees

SEED = [
    "CREATE TABLE customers AS SELECT i AS id, 'customer-' || i::VARCHAR AS name, "
    "['EU', 'US', 'APAC'][1 + i % 3] AS region FROM range(1, 501) t(i)",
    "CREATE TABLE products AS SELECT i AS id, 'product-' || i::VARCHAR AS name, "
    "CAST(5 + (i * 37) % 200 AS DECIMAL(10,2)) AS price FROM range(1, 101) t(i)",
    "CREATE TABLE orders AS SELECT i AS id, 1 + (i * 7919) % 500 AS customer_id, "
    "1 + (i * 104729) % 100 AS product_id, 1 + i % 5 AS quantity, "
    "DATE '2024-01-01' + CAST(i % 365 AS INTEGER) AS order_date FROM range(1, 5001) t(i)",
]

REVENUE_BY_REGION = (
    "SELECT c.region, count(*) AS orders, sum(o.quantity * p.price) AS revenue "
    "FROM orders o JOIN customers c ON o.customer_id = c.id "
    "JOIN products p ON o.product_id = p.id GROUP BY c.region ORDER BY revenue DESC"
)
TOP_PRODUCTS = (
    "SELECT p.name, sum(o.quantity) AS units FROM orders o JOIN products p "
    "ON o.product_id = p.id GROUP BY p.name ORDER BY units DESC, p.name LIMIT 10"
)
ALL_ORDERS = "SELECT * FROM main.default.orders ORDER BY id"
SLOW_COUNT = "SELECT count(DISTINCT customer_id) AS buyers FROM orders"
CUSTOMER_ORDERS = "SELECT id, order_date, quantity FROM orders WHERE customer_id = :cid"
ASYNC_QUERY = "SELECT order_date, count(*) AS n FROM orders GROUP BY order_date"
APP_NAME = "dbsql-demo"
# The application spans around connect() and close(), beside one per workload step.
CONNECT = "connect"
CLOSE = "close"


@dataclass
class Context:
    """What a workload step can use."""

    warehouse: LocalWarehouse
    connection: Any
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What a step reports: rows returned or affected, and a short note."""

    rows: int | None = None
    note: str = ""


@dataclass
class Step:
    """One workload step."""

    name: str
    run: Callable[[Context], Outcome]


def _query(ctx: Context, sql: str, parameters: dict[str, Any] | None = None) -> Outcome:
    with ctx.connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        rows = cursor.fetchall()
        served = ctx.warehouse.served.get(cursor.query_id or "")
    note = ""
    if served is not None:
        note = f"{served.result_format}, {served.pages} page(s)"
        if served.files:
            note += f", {len(served.files)} CloudFetch file(s), {served.compressed_bytes} B"
        if served.n_polls:
            note += f", {served.n_polls} status poll(s)"
    return Outcome(len(rows), note)


def inline_arrow_join(ctx: Context) -> Outcome:
    return _query(ctx, REVENUE_BY_REGION)


def columnar_result(ctx: Context) -> Outcome:
    ctx.warehouse.script(TOP_PRODUCTS, result_format="columnar")
    return _query(ctx, TOP_PRODUCTS)


def cloudfetch_scan(ctx: Context) -> Outcome:
    ctx.warehouse.script(ALL_ORDERS, result_format="cloudfetch", cloudfetch_files=4, lz4=True)
    return _query(ctx, ALL_ORDERS)


def paged_arrow_scan(ctx: Context) -> Outcome:
    sql = "SELECT id, customer_id FROM orders"
    ctx.warehouse.script(sql, result_format="arrow", page_size=1000)
    return _query(ctx, sql)


def polled_query(ctx: Context) -> Outcome:
    ctx.warehouse.script(SLOW_COUNT, running_polls=3, poll_delay=0.05)
    return _query(ctx, SLOW_COUNT)


def parameterized_query(ctx: Context) -> Outcome:
    return _query(ctx, CUSTOMER_ORDERS, {"cid": 42})


def failing_query(ctx: Context) -> Outcome:
    with ctx.connection.cursor() as cursor:
        try:
            cursor.execute("SELECT * FROM main.default.refunds")
        except exc.ServerOperationError:
            served = ctx.warehouse.served[cursor.query_id]
            return Outcome(None, f"failed as expected: SQLSTATE {served.sqlstate}")
    return Outcome(None, "unexpectedly succeeded")


def dml(ctx: Context) -> Outcome:
    with ctx.connection.cursor() as cursor:
        cursor.execute("INSERT INTO products VALUES (101, 'product-101', 19.99)")
        inserted = cursor.rowcount
        cursor.execute("UPDATE products SET price = price * 1.1 WHERE id <= 10")
        updated = cursor.rowcount
        cursor.execute("DELETE FROM products WHERE id = 101")
        deleted = cursor.rowcount
    return Outcome(inserted + updated + deleted, f"{inserted} in, {updated} up, {deleted} del")


def executemany(ctx: Context) -> Outcome:
    batch = [
        {"id": 10_000 + i, "customer_id": i, "product_id": i, "quantity": 1} for i in range(1, 6)
    ]
    with ctx.connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO orders (id, customer_id, product_id, quantity, order_date) "
            "VALUES (:id, :customer_id, :product_id, :quantity, current_date)",
            batch,
        )
        return Outcome(cursor.rowcount, f"{len(batch)} statements")


def metadata(ctx: Context) -> Outcome:
    with ctx.connection.cursor() as cursor:
        cursor.catalogs()
        catalogs = len(cursor.fetchall())
        cursor.schemas(catalog_name="main")
        schemas = len(cursor.fetchall())
        cursor.tables(catalog_name="main", schema_name="default")
        tables = len(cursor.fetchall())
        cursor.columns(catalog_name="main", schema_name="default", table_name="orders")
        columns = len(cursor.fetchall())
    total = catalogs + schemas + tables + columns
    return Outcome(total, f"{catalogs} catalog, {schemas} schema, {tables} tables, {columns} cols")


def async_query(ctx: Context) -> Outcome:
    ctx.warehouse.script(ASYNC_QUERY, running_polls=2)
    with ctx.connection.cursor() as cursor:
        cursor.ASYNC_DEFAULT_POLLING_INTERVAL = 0.05
        cursor.execute_async(ASYNC_QUERY)
        state = cursor.get_query_state()
        cursor.get_async_execution_result()
        rows = cursor.fetchall()
    return Outcome(len(rows), f"first state {state.name}")


WORKLOAD: list[Step] = [
    Step("join + aggregate (inline Arrow)", inline_arrow_join),
    Step("top products (column-based)", columnar_result),
    Step("full scan (CloudFetch, LZ4)", cloudfetch_scan),
    Step("full scan (Arrow, 1000-row pages)", paged_arrow_scan),
    Step("long-running query (polled)", polled_query),
    Step("parameterized query", parameterized_query),
    Step("query on a missing table", failing_query),
    Step("INSERT / UPDATE / DELETE", dml),
    Step("executemany INSERT", executemany),
    Step("metadata calls", metadata),
    Step("async query", async_query),
]


def _line(name: str, outcome: Outcome, ms: float) -> str:
    rows = "-" if outcome.rows is None else str(outcome.rows)
    return f"{name:<36} {rows:>7} rows {ms:>8.1f} ms  {outcome.note}"


def run_workload(ctx: Context, steps: list[Step], out: Callable[[str], None] = print) -> None:
    """Run ``steps`` in order, each inside an application span, printing one line each."""
    tracer = trace.get_tracer("demo")
    for step in steps:
        started = time.perf_counter()
        with tracer.start_as_current_span(step.name):
            try:
                outcome = step.run(ctx)
            except Exception as error:
                outcome = Outcome(None, f"ERROR {type(error).__name__}: {error}")
        out(_line(step.name, outcome, (time.perf_counter() - started) * 1000))


@dataclass
class Telemetry:
    """The SDK set-up of the demo: in-memory views, plus OTLP when configured."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    otlp: bool


def set_up_telemetry() -> Telemetry:
    """Providers with in-memory exporters; OTLP exporters too if the standard env vars ask."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "dbsql-demo")})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    readers: list[MetricReader] = [reader]
    otlp = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if otlp:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    return Telemetry(spans, reader, tracer_provider, meter_provider, otlp)


def main() -> int:
    """Start a warehouse, seed it, run the workload and summarize what the warehouse saw."""
    telemetry = set_up_telemetry()
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    with LocalWarehouse() as warehouse:
        warehouse.feature_flags.configure(enabled=True)  # the workspace opts in to telemetry
        print(f"Local warehouse at {warehouse.base_url}{warehouse.http_path}")
        for sql in SEED:
            warehouse.execute_sql(sql)
        counts = {
            t: warehouse.execute_sql(f"SELECT count(*) FROM {t}")[0][0]
            for t in ("customers", "products", "orders")
        }
        print("Seeded " + ", ".join(f"{t}: {n} rows" for t, n in counts.items()))
        print()
        tracer = trace.get_tracer("demo")
        started = time.perf_counter()
        with tracer.start_as_current_span(CONNECT):
            # The application's name: the Databricks payloads carry it as client_app_name.
            connection = databricks.sql.connect(
                **warehouse.connect_kwargs(user_agent_entry=APP_NAME)
            )
        connect_ms = (time.perf_counter() - started) * 1000
        print(
            _line(
                CONNECT,
                Outcome(None, "OpenSession; feature flag fetched in the background"),
                connect_ms,
            )
        )
        try:
            run_workload(Context(warehouse, connection), WORKLOAD)
        finally:
            started = time.perf_counter()
            with tracer.start_as_current_span(CLOSE):
                connection.close()
            close_ms = (time.perf_counter() - started) * 1000
            print(_line(CLOSE, Outcome(None, "CloseSession"), close_ms))
        instrumentor.uninstrument()  # flushes the Databricks telemetry (5 s deadline)
        names = warehouse.rpc_names()
        print()
        print(
            f"{len(names)} RPCs: "
            + ", ".join(f"{n} x{names.count(n)}" for n in dict.fromkeys(names))
        )
        downloads = sum(r.path.startswith("/cloudfetch/") for r in warehouse.http_requests)
        print(f"{len(warehouse.http_requests)} HTTP requests, {downloads} CloudFetch downloads")
        roots = [CONNECT, *(step.name for step in WORKLOAD), CLOSE]
        _section("Spans, one tree per step, connect and close included")
        for line in span_trees(telemetry.spans.get_finished_spans(), roots):
            print(line)
        _section("Metrics")
        for line in metrics_summary(telemetry.metrics.get_metrics_data()):
            print(line)
        _section("Databricks telemetry received by the warehouse")
        events = warehouse.telemetry.events()
        for line in payload_summary(events, len(warehouse.telemetry.payloads)):
            print(line)
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()
    if telemetry.otlp:
        print(
            "\nSpans and metrics were also exported to " + os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        )
    return 0


def _section(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


if __name__ == "__main__":
    sys.exit(main())
