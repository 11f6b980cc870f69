"""Per-statement cost of each instrumentation arm, measured side by side in ONE process.

    .venv/bin/python benchmarks/bench_inprocess.py [--rounds R] [--iterations N] [--warmup W]
        [--arms a,b,...]

Across processes the driver's own CPU per statement differs by tens of microseconds (memory
layout, a different heap for the garbage collector), which is the size of the effects to
measure (see ``bench_overhead.py``). Here every arm runs in the same interpreter against one
local warehouse (in its own process, so its CPU is not counted). A round runs every arm once,
in an order rotated each round: the arm is set up (``instrument()``, or nothing), a fresh
connection is opened, ``--warmup`` statements run, then ``--iterations`` x
``cursor.execute("SELECT 1"); cursor.fetchall()`` are timed, then the connection is closed and
the arm torn down (``uninstrument()``). Each arm's cost is its CPU per statement minus its
baseline's in the same round (median over rounds, +/- half the interquartile range).

CPU is ``time.process_time``: every thread of the process, so the work of span processors,
this package's exporter and the driver's own telemetry threads is counted wherever it runs.
The calling thread's CPU (``time.thread_time``) is printed beside it.

Arms (baseline in brackets):

``bare-off``          the driver, ``enable_telemetry=False`` (its own telemetry off)
``control``           ``instrument()`` and ``uninstrument()`` before connecting: the driver as
                      restored [bare-off]; its spread shows what a difference of zero looks like
``bare-native``       the driver with its own telemetry forced on [bare-off]
``dbsql-sdk``         this package, SDK tracer and meter providers, Databricks export off
                      [bare-off]
``dbsql-sdk-hooks``   as ``dbsql-sdk``, with a do-nothing ``request_hook`` and ``response_hook``
                      and an ``exclude_statements`` pattern that matches no statement of the
                      workload [bare-off]
``dbapi-sdk``         the contrib dbapi instrumentation on the connection, same SDK set-up
                      [bare-off]
``span-floor``        no instrumentation package: a bare wrapper on ``Cursor.execute`` that makes
                      only the span this package makes for a ``SELECT 1`` (16 attributes), no
                      metric, same SDK set-up [bare-off]
``wrapt-noop``        no instrumentation package: do-nothing wrapt wrappers on the four driver
                      methods a ``SELECT 1`` goes through (execute, fetchall, result close, queue
                      building): the floor of any wrapt-based instrumentation [bare-off]
``dbsql-nosdk``       this package with no SDK, export off [bare-off]
``dbsql-export``      this package with no SDK, Databricks export forced on (the driver's own
                      telemetry is then off on the connection) [bare-off]; compared with
                      ``bare-native`` for the export target
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import _sdk_providers, start_warehouse

STATEMENT = "SELECT 1"


@dataclass
class Arm:
    """One configuration: how to set it up, the connect kwargs it adds, what it is relative to."""

    name: str
    baseline: str | None
    set_up: Callable[[], Callable[[], None]] = lambda: lambda: None
    connect_kwargs: dict[str, Any] = field(default_factory=dict)
    wrap: Callable[[Any], Any] = lambda connection: connection


def _instrumented(**options: Any) -> Callable[[], Callable[[], None]]:
    def set_up() -> Callable[[], None]:
        from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

        instrumentor = DbsqlInstrumentor()
        instrumentor.instrument(**options)
        return instrumentor.uninstrument

    return set_up


def _control() -> Callable[[], None]:
    from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(enable_telemetry=False)
    instrumentor.uninstrument()
    return lambda: None


def _span_floor(tracer_provider: Any) -> Callable[[], Callable[[], None]]:
    """A lower bound of what this package must record: only the span of a ``SELECT 1``
    statement with its attributes (no metric, no other code), from a bare wrapt wrapper on
    ``Cursor.execute``."""

    def set_up() -> Callable[[], None]:
        import wrapt
        from databricks.sql import client
        from opentelemetry.trace import SpanKind

        tracer = tracer_provider.get_tracer("floor")
        start = {
            "db.system.name": "databricks",
            "server.address": "127.0.0.1",
            "server.port": 443,
            "db.namespace": "main|default",
            "databricks.span.role": "STATEMENT",
            "databricks.operation.type": "EXECUTE_STATEMENT",
            "databricks.statement.type": "QUERY",
            "db.query.text": "SELECT ?",
            "db.query.summary": "SELECT",
            "db.operation.name": "SELECT",
        }
        end = {
            "databricks.statement.id": "d6a0e63e-56f8-489a-8055-4c8cc4ef6424",
            "databricks.session.id": "1eac1453-b10c-4b89-80f9-b4247e7a0004",
            "databricks.result.format": "INLINE_ARROW",
            "databricks.result.compressed": True,
            "databricks.result.bytes": 126,
            "db.response.returned_rows": 1,
        }

        def execute(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span = tracer.start_span("SELECT", kind=SpanKind.CLIENT, attributes=dict(start))
            try:
                return wrapped(*args, **kwargs)
            finally:
                span.set_attributes(end)
                span.end()

        original = client.Cursor.__dict__["execute"]
        wrapt.wrap_function_wrapper(client, "Cursor.execute", execute)
        return lambda: setattr(client.Cursor, "execute", original)

    return set_up


def _wrapt_noop() -> Callable[[], None]:
    """Do-nothing wrapt wrappers on the four driver methods a ``SELECT 1`` passes through."""
    import wrapt
    from databricks.sql import client, result_set, utils

    targets = [
        (client.Cursor, "execute"),
        (client.Cursor, "fetchall"),
        (result_set.ResultSet, "close"),
        (utils.ThriftResultSetQueueFactory, "build_queue"),
    ]
    originals = [(owner, name, vars(owner)[name]) for owner, name in targets]
    for owner, name in targets:
        wrapt.wrap_function_wrapper(owner, name, lambda w, _i, a, k: w(*a, **k))

    def restore() -> None:
        for owner, name, original in originals:
            setattr(owner, name, original)

    return restore


def _no_op_hook(span: Any, info: Any) -> None:
    """A request/response hook that does nothing: the cost of calling one."""


def _arms() -> dict[str, Arm]:
    tracer_provider, meter_provider = _sdk_providers()
    dbapi_tracer_provider, dbapi_meter_provider = _sdk_providers()

    def dbapi_wrap(connection: Any) -> Any:
        from opentelemetry.instrumentation import dbapi

        return dbapi.instrument_connection(
            "databricks",
            connection,
            "databricks",
            tracer_provider=dbapi_tracer_provider,
            meter_provider=dbapi_meter_provider,
        )

    off = {"enable_telemetry": False}
    arms = (
        Arm("bare-off", None, connect_kwargs=off),
        Arm("control", "bare-off", _control, off),
        Arm("bare-native", "bare-off", connect_kwargs={"force_enable_telemetry": True}),
        Arm(
            "dbsql-sdk",
            "bare-off",
            _instrumented(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                enable_telemetry=False,
            ),
            off,
        ),
        Arm(
            "dbsql-sdk-hooks",
            "bare-off",
            _instrumented(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                enable_telemetry=False,
                request_hook=_no_op_hook,
                response_hook=_no_op_hook,
                exclude_statements=re.compile(r"(?i)select\s+2"),
            ),
            off,
        ),
        Arm("dbapi-sdk", "bare-off", connect_kwargs=off, wrap=dbapi_wrap),
        Arm("span-floor", "bare-off", _span_floor(tracer_provider), off),
        Arm("wrapt-noop", "bare-off", _wrapt_noop, off),
        Arm("dbsql-nosdk", "bare-off", _instrumented(enable_telemetry=False), off),
        Arm("dbsql-export", "bare-off", _instrumented(force_enable_telemetry=True)),
    )
    return {arm.name: arm for arm in arms}


def _run_arm(arm: Arm, base_kwargs: dict[str, Any], warmup: int, iterations: int) -> Any:
    import databricks.sql

    tear_down = arm.set_up()
    try:
        kwargs = dict(base_kwargs)
        kwargs.update(arm.connect_kwargs)
        connection = arm.wrap(databricks.sql.connect(**kwargs))
        try:
            cursor = connection.cursor()
            for _ in range(warmup):
                cursor.execute(STATEMENT)
                cursor.fetchall()
            gc.collect()
            cpu0, thread0 = time.process_time_ns(), time.thread_time_ns()
            for _ in range(iterations):
                cursor.execute(STATEMENT)
                cursor.fetchall()
            thread1, cpu1 = time.thread_time_ns(), time.process_time_ns()
            cursor.close()
        finally:
            connection.close()
    finally:
        tear_down()
    return (cpu1 - cpu0) / iterations / 1e3, (thread1 - thread0) / iterations / 1e3


def _spread(values: Sequence[float]) -> float:
    if len(values) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--arms", default="")
    args = parser.parse_args(argv)

    import databricks.sql.client  # noqa: F401  (instrument() patches at once, not on import)

    arms = _arms()
    names = [n.strip() for n in args.arms.split(",") if n.strip()] or list(arms)
    for name in names:
        if name not in arms:
            parser.error(f"--arms: unknown arm {name!r}; accepted: {', '.join(arms)}")
    needed = {arms[n].baseline for n in names if arms[n].baseline} | set(names)
    order = [n for n in arms if n in needed]
    process, base_kwargs = start_warehouse()
    cpu: dict[str, list[float]] = {n: [] for n in order}
    thread: dict[str, list[float]] = {n: [] for n in order}
    try:
        for index in range(args.rounds):
            shift = index % len(order)
            for name in order[shift:] + order[:shift]:
                c, t = _run_arm(arms[name], base_kwargs, args.warmup, args.iterations)
                cpu[name].append(c)
                thread[name].append(t)
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(10)

    print(
        f"\n{args.iterations} x execute({STATEMENT!r}) + fetchall() per arm and round,"
        f" {args.rounds} rounds, one process\n"
    )
    header = (
        f"{'arm':<14} {'CPU us':>8} {'thread us':>10} | {'CPU vs baseline':>22} {'thread vs':>10}"
    )
    print(header)
    print("-" * len(header))
    deltas: dict[str, list[float]] = {}
    for name in order:
        arm = arms[name]
        cpu_us, thread_us = statistics.median(cpu[name]), statistics.median(thread[name])
        line = f"{name:<14} {cpu_us:8.1f} {thread_us:10.1f} |"
        if arm.baseline is not None:
            d = [a - b for a, b in zip(cpu[name], cpu[arm.baseline], strict=True)]
            dt = [a - b for a, b in zip(thread[name], thread[arm.baseline], strict=True)]
            deltas[name] = d
            line += (
                f" {statistics.median(d):+8.1f} +/-{_spread(d):5.1f} ({arm.baseline})"
                f" {statistics.median(dt):+8.1f}"
            )
        print(line)
    print()
    for mine, theirs in (
        ("dbsql-sdk", "dbapi-sdk"),
        ("dbsql-sdk-hooks", "dbsql-sdk"),
        ("span-floor", "dbapi-sdk"),
        ("dbsql-sdk", "span-floor"),
        ("dbsql-nosdk", "wrapt-noop"),
        ("dbsql-export", "bare-native"),
    ):
        if mine in deltas and theirs in deltas:
            paired = [a - b for a, b in zip(deltas[mine], deltas[theirs], strict=True)]
            ratio = statistics.median(deltas[mine]) / statistics.median(deltas[theirs])
            print(
                f"{mine} - {theirs}: {statistics.median(paired):+.1f} +/- {_spread(paired):.1f}"
                f" us per statement (overhead ratio {ratio:.2f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
