"""Each script of ``examples/`` run as a user would, in a subprocess, against a local warehouse.

The warehouse is seeded the way ``python -m opentelemetry_instrumentation_dbsql.testing.warehouse
--seed`` seeds it (a small ``samples.nyctaxi.trips``, the examples' default table), and each
example runs after the ``export`` lines that command prints for it. Where an example exports
over OTLP, a real OTLP/gRPC receiver takes the spans. Unlike ``test_docstrings.py``, which runs
the command itself, these tests hold the warehouse in-process, to check what it received.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from opentelemetry_instrumentation_dbsql.testing.warehouse.samples import (
    example_environment,
    export_lines,
    seed_samples,
)
from tests.examples.running import Run
from tests.examples.running import run_example as run_in_shell
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

SCOPE = "opentelemetry.instrumentation.dbsql"


@pytest.fixture
def trips_warehouse() -> Iterator[LocalWarehouse]:
    with LocalWarehouse() as warehouse:
        seed_samples(warehouse)
        yield warehouse


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as otlp:
        yield otlp


def run_example(
    name: str,
    warehouse: LocalWarehouse,
    tmp_path: Path,
    *,
    receiver: OtlpReceiver | None = None,
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``examples/<name>.py`` with the environment the warehouse CLI prints for
    ``warehouse``; assert it exits 0 with no internal instrumentation failure."""
    exports = export_lines(example_environment(warehouse, seeded=True))
    return run_in_shell(name, exports, tmp_path, receiver=receiver, prefix=prefix, env=env)


def _dbsql_spans(receiver: OtlpReceiver, role: str) -> list[ReceivedSpan]:
    return [
        s
        for s in receiver.spans()
        if s.scope_name == SCOPE and s.attributes.get("databricks.span.role") == role
    ]


def _wait_for_close(receiver: OtlpReceiver) -> None:
    # The exporters flush at shutdown, before the process exits: everything is there already.
    assert receiver.wait_for(lambda: _dbsql_spans(receiver, "DELETE_SESSION"), timeout=5)


def _sent_query_tags(warehouse: LocalWarehouse) -> list[dict[str, str]]:
    """The query_tags of every ExecuteStatement the warehouse received, parsed."""
    found = []
    for record in warehouse.rpcs:
        if record.name != "ExecuteStatement":
            continue
        raw = dict(record.request.confOverlay or {}).get("query_tags", "")
        found.append(dict(item.split(":", 1) for item in raw.split(",") if item))
    return found


def _query(warehouse: LocalWarehouse, sql: str) -> list[tuple[Any, ...]]:
    return warehouse.execute_sql(sql.replace("FROM trips", "FROM samples.nyctaxi.trips"))


def _consumption(receiver: OtlpReceiver, statement: ReceivedSpan) -> ReceivedSpan:
    """The statement's RESULT span, or the statement itself when its result arrived whole."""
    for result in _dbsql_spans(receiver, "RESULT"):
        if result.parent_span_id == statement.span_id:
            return result
    return statement


# --- otlp_programmatic.py ----------------------------------------------------------------------


def test_otlp_programmatic(
    trips_warehouse: LocalWarehouse, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    run = run_example(
        "otlp_programmatic",
        trips_warehouse,
        tmp_path,
        receiver=receiver,
        env={"OTEL_SERVICE_NAME": "examples-otlp"},
    )
    expected = _query(
        trips_warehouse,
        "SELECT pickup_zip, COUNT(*) FROM trips GROUP BY pickup_zip "
        "ORDER BY COUNT(*) DESC, pickup_zip LIMIT 5",
    )
    printed = [re.findall(r"\d+", line)[:2] for line in run.lines("pickup_zip ")]
    assert printed == [[str(z), str(n)] for z, n in expected]
    (long_trips,) = _query(trips_warehouse, "SELECT COUNT(*) FROM trips WHERE trip_distance > 10")
    assert run.lines("long_trips ") == [f"long_trips {long_trips[0]}"]
    (trace_line,) = run.lines("trace_id ")
    trace_id = trace_line.split()[1]

    _wait_for_close(receiver)
    (app,) = receiver.spans_named("trip-report")
    assert app.trace_id == trace_id
    assert app.resource["service.name"] == "examples-otlp"
    statements = _dbsql_spans(receiver, "STATEMENT")
    assert [s.name for s in statements] == ["SELECT trips", "SELECT trips"]
    assert [s.attributes["db.query.text"] for s in statements] == [
        "SELECT pickup_zip, COUNT(*) AS trips, ROUND(AVG(fare_amount), ?) AS avg_fare "
        "FROM trips GROUP BY pickup_zip ORDER BY trips DESC, pickup_zip LIMIT ?",
        "SELECT COUNT(*) AS long_trips FROM trips WHERE trip_distance > :miles",
    ]
    for statement, rows in zip(statements, (5, 1), strict=True):
        assert statement.parent_span_id == app.span_id
        assert statement.resource["service.name"] == "examples-otlp"
        assert statement.attributes["databricks.statement.id"] in trips_warehouse.served
        assert _consumption(receiver, statement).attributes["db.response.returned_rows"] == rows
    for role in ("CREATE_SESSION", "DELETE_SESSION"):
        (span,) = _dbsql_spans(receiver, role)
        assert span.parent_span_id == app.span_id

    # Metrics went the same way (exported at shutdown).
    assert receiver.wait_for(receiver.metrics, timeout=5)
    metrics = receiver.latest_metrics()
    assert sum(p.count or 0 for p in metrics["db.client.operation.duration"]) == 2
    assert sum(p.sum or 0 for p in metrics["db.client.response.returned_rows"]) == 6


# --- auto_instrumentation.py -------------------------------------------------------------------


def test_auto_instrumentation(
    trips_warehouse: LocalWarehouse, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    run = run_example(
        "auto_instrumentation",
        trips_warehouse,
        tmp_path,
        receiver=receiver,
        prefix=(str(instrument),),
        env={
            "OTEL_SERVICE_NAME": "trip-stats",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            # An option of this package, from its environment variable.
            "OTEL_PYTHON_DBSQL_PROPAGATE_TRACE_CONTEXT": "true",
        },
    )
    expected = _query(
        trips_warehouse,
        "SELECT pickup_zip, dropoff_zip, COUNT(*) AS trips FROM trips "
        "GROUP BY pickup_zip, dropoff_zip ORDER BY trips DESC, pickup_zip, dropoff_zip LIMIT 3",
    )
    assert run.lines("route ") == [f"route {p} -> {d}: {n} trips" for p, d, n in expected]
    ((low, high),) = _query(
        trips_warehouse,
        f"SELECT MIN(fare_amount), MAX(fare_amount) FROM trips WHERE pickup_zip = {expected[0][0]}",
    )
    assert run.lines("fares ") == [f"fares from {expected[0][0]}: {low} .. {high}"]

    _wait_for_close(receiver)
    statements = _dbsql_spans(receiver, "STATEMENT")
    assert [s.name for s in statements] == ["SELECT trips", "SELECT trips"]
    assert {s.resource["service.name"] for s in statements} == {"trip-stats"}
    # No application span: each statement is the root of its own trace, and the traceparent
    # the warehouse received with it names exactly that span.
    sent = [t["traceparent"].split("-") for t in _sent_query_tags(trips_warehouse)]
    assert [(v, trace_id, span_id) for v, trace_id, span_id, _ in sent] == [
        ("00", s.trace_id, s.span_id) for s in statements
    ]
    assert all(int(flags, 16) & 1 for *_, flags in sent)  # sampled
    for statement in statements:
        assert statement.parent_span_id is None


# --- sqlalchemy_app.py -------------------------------------------------------------------------


def test_sqlalchemy_app(
    trips_warehouse: LocalWarehouse, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    run = run_example("sqlalchemy_app", trips_warehouse, tmp_path, receiver=receiver)
    core = _query(
        trips_warehouse,
        "SELECT pickup_zip, COUNT(*) FROM trips GROUP BY pickup_zip "
        "ORDER BY COUNT(*) DESC, pickup_zip LIMIT 3",
    )
    assert run.lines("core ") == [f"core pickup_zip {z}: {n} trips" for z, n in core]
    orm = _query(
        trips_warehouse,
        "SELECT trip_distance, fare_amount FROM trips WHERE trip_distance > 10 "
        "ORDER BY trip_distance DESC, fare_amount DESC LIMIT 3",
    )
    assert run.lines("orm ") == [f"orm trip {d} miles, fare {f}" for d, f in orm]

    _wait_for_close(receiver)
    (app,) = receiver.spans_named("fare-analysis")
    statements = _dbsql_spans(receiver, "STATEMENT")
    executed = [r for r in trips_warehouse.rpcs if r.name == "ExecuteStatement"]
    assert len(statements) == len(executed) == 2  # the dialect ran nothing of its own here
    core_span, orm_span = statements
    assert "GROUP BY trips.pickup_zip" in str(core_span.attributes["db.query.text"])
    assert "WHERE trips.trip_distance > :" in str(orm_span.attributes["db.query.text"])
    for statement in statements:
        assert statement.name == "SELECT trips"
        assert statement.parent_span_id == app.span_id
        assert _consumption(receiver, statement).attributes["db.response.returned_rows"] == 3


# --- pandas_read_sql.py ------------------------------------------------------------------------


def test_pandas_read_sql(
    trips_warehouse: LocalWarehouse, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    run = run_example("pandas_read_sql", trips_warehouse, tmp_path, receiver=receiver)
    expected = _query(
        trips_warehouse,
        "SELECT CAST(FLOOR(trip_distance) AS INT), COUNT(*) FROM trips "
        "WHERE trip_distance < 5 GROUP BY 1 ORDER BY 1",
    )
    assert run.lines("rows ") == [f"rows {len(expected)}"]
    table = run.stdout.splitlines()
    assert table[0].split() == ["miles", "trips", "avg_fare"]
    assert [line.split()[:2] for line in table[1 : 1 + len(expected)]] == [
        [str(m), str(n)] for m, n in expected
    ]

    _wait_for_close(receiver)
    (app,) = receiver.spans_named("fare-table")
    statements = _dbsql_spans(receiver, "STATEMENT")
    # pandas.read_sql first asks whether its argument is a table name (a failing DESCRIBE,
    # see examples/README.md); then the query itself.
    (query,) = [s for s in statements if s.name == "SELECT trips"]
    assert str(query.attributes["db.query.text"]).startswith("SELECT CAST(FLOOR(trip_distance)")
    assert query.parent_span_id == app.span_id
    result = _consumption(receiver, query)
    assert result.attributes["db.response.returned_rows"] == len(expected)
    probes = [s for s in statements if s is not query]
    assert len(probes) == 1
    assert probes[0].attributes["db.operation.name"] == "DESCRIBE TABLE EXTENDED"
    assert probes[0].status_code == "ERROR"


# --- statement_tags.py -------------------------------------------------------------------------


def test_statement_tags(trips_warehouse: LocalWarehouse, tmp_path: Path) -> None:
    run = run_example("statement_tags", trips_warehouse, tmp_path)
    assert run.lines("trips ") == ["trips 500"]
    printed_tags = [
        json.loads(line.split("tags=", 1)[1]) for line in run.lines("statement 'SELECT trips'")
    ]
    nightly = {"team": "data-eng", "job": "nightly"}
    assert printed_tags == [nightly, nightly, {}]
    printed_parents = [line.split()[1] for line in run.stdout.splitlines() if "traceparent" in line]

    # What the warehouse received: the tags inside the block (merged with the application's
    # own query_tags), and on every statement the traceparent of the span that was printed.
    sent = _sent_query_tags(trips_warehouse)
    assert sent == [
        {**nightly, "traceparent": printed_parents[0]},
        {"priority": "low", **nightly, "traceparent": printed_parents[1]},
        {"traceparent": printed_parents[2]},
    ]
    trace_ids = {parent.split("-")[1] for parent in printed_parents}
    assert len(trace_ids) == 1  # one application span around all three
    assert len({parent.split("-")[2] for parent in printed_parents}) == 3
