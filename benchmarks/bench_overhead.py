"""Per-statement overhead of this instrumentation against the real driver and a local warehouse.

    .venv/bin/python benchmarks/bench_overhead.py [--iterations N] [--rounds R] [--replicas K]
        [--warmup W] [--variants a,b,...] [--profile VARIANT]... [--hook-path VARIANT]...
        [--ab-rounds N] [--json FILE]

One local warehouse runs in its own process (``python -m
opentelemetry_instrumentation_dbsql.testing.warehouse``), so its CPU time is not counted. Each
variant runs in its own client process (this script re-invoked with ``--worker VARIANT``), so
variants that patch the driver never share an interpreter and no global provider set by one is
seen by another. Every client opens ONE connection and ONE cursor and times
``cursor.execute("SELECT 1"); cursor.fetchall()`` in rounds of ``--iterations`` statements.
The parent runs one round per client in turn, rotating the order every round, so drift on
the machine (or the warehouse) hits all variants alike; idle clients block on their stdin.
Each variant runs in ``--replicas`` processes: two processes of the same variant differ by a
few microseconds per statement (memory layout), which is the size of the effects measured.

Per statement, each round measures the wall time, the CPU time of the whole client process
(``time.process_time``: every thread, including span export and telemetry threads) and the CPU
time of the calling thread (``time.thread_time``). The table shows medians over rounds. The
network round trip (milliseconds) dwarfs the overhead (microseconds), so the CPU columns are
the precise ones. Overheads are paired round by round (the variant's CPU minus the baseline's
in the same round, median over rounds), against the bare driver and against the bare driver
with its own telemetry off (which is how this package leaves the connections it instruments).

The driver alone spends well over a millisecond of CPU per statement and that figure drifts by
several percent with the machine's load, so a few microseconds are below what the rounds can
resolve across processes (two processes of the same code can differ by tens of microseconds:
memory layout, garbage collection over a different heap). For the no-SDK target the script
therefore adds two in-process measurements: an A/B in ONE process on ONE connection that
alternates rounds without and with ``instrument()`` (``--ab-rounds``, see ``_ab_rounds``), and
a replay of this package's wrappers with a no-op in place of the driver (``--hook-path``, see
``_hook_path``), which resolves fractions of a microsecond but runs with hot caches.

Variants:

``bare``
    The driver alone, with its defaults (the local warehouse answers the driver's telemetry
    feature flag with "on", so the driver's own telemetry client is active).
``bare-native-off``
    The driver alone with ``enable_telemetry=False`` (its telemetry client is a no-op). This
    package turns the driver's own telemetry off on the connections it instruments, so this is
    the baseline that isolates the cost of this package's own code.
``dbsql-sdk``
    ``DbsqlInstrumentor().instrument(tracer_provider=..., meter_provider=...)`` with an SDK
    ``TracerProvider`` + ``BatchSpanProcessor`` to an exporter that drops spans, and a
    ``MeterProvider`` whose ``InMemoryMetricReader`` is never collected. Options from the
    defaults, so Databricks telemetry export is decided by the server flag (on).
``dbsql-sdk-export-off``
    As ``dbsql-sdk`` with ``OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY=false``.
``dbapi-sdk``
    ``opentelemetry.instrumentation.dbapi.trace_integration(databricks.sql, "connect",
    "databricks", tracer_provider=..., meter_provider=...)`` with the same SDK set-up.
``dbsql-nosdk-export-off``
    ``DbsqlInstrumentor().instrument()`` with no SDK anywhere (no global providers are ever
    set in that process) and ``OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY=false``.
``dbsql-nosdk``
    As ``dbsql-nosdk-export-off`` without that variable (the server flag decides: on).
``uninstrumented-control``
    ``instrument()`` then ``uninstrument()`` before connecting (export off, driver telemetry
    off): every module of this package is imported but the driver runs unpatched. It shows
    what merely having the package (and the SDK modules it imports) in the process costs.

``--profile VARIANT`` runs one more round of that variant under cProfile (timer: the thread's
CPU time) and prints the functions of this package, the OpenTelemetry API and SDK, wrapt and
``os.environ`` with the most own time per statement. The profiler inflates every call, so these
figures rank where the time goes; they are not the overhead itself.
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import gc
import json
import os
import platform
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

WAREHOUSE_MODULE = "opentelemetry_instrumentation_dbsql.testing.warehouse"
STATEMENT = "SELECT 1"
RESULT_PREFIX = "@@bench "
EXPORT_OFF = {"OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY": "false"}
AB_VARIANT = "ab-nosdk-export-off"


@dataclass(frozen=True)
class Variant:
    """One client configuration; ``baseline`` is the bare variant its overhead is taken over."""

    name: str
    description: str
    baseline: str
    env: dict[str, str]


_NATIVE_OFF = "bare-native-off"
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("bare", "bare driver (driver telemetry per server flag: on)", "bare", {}),
        Variant(_NATIVE_OFF, "bare driver, enable_telemetry=False", _NATIVE_OFF, {}),
        Variant("dbsql-sdk", "this package + SDK", _NATIVE_OFF, {}),
        Variant("dbsql-sdk-export-off", "this package + SDK, export off", _NATIVE_OFF, EXPORT_OFF),
        Variant("dbapi-sdk", "contrib dbapi + SDK", "bare", {}),
        Variant(
            "dbsql-nosdk-export-off", "this package, no SDK, export off", _NATIVE_OFF, EXPORT_OFF
        ),
        Variant("dbsql-nosdk", "this package, no SDK (export per flag)", _NATIVE_OFF, {}),
        Variant("uninstrumented-control", "instrument() + uninstrument()", _NATIVE_OFF, EXPORT_OFF),
    )
}


# --------------------------------------------------------------------------- client process


def _sdk_providers() -> tuple[Any, Any]:
    """A TracerProvider exporting to a span-dropping exporter; a never-collected MeterProvider."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider


def _set_up(variant: str, connect_kwargs: dict[str, Any]) -> Callable[[], None]:
    """Instrument per ``variant``; returns the clean-up to run after the connection closed."""
    if variant in ("bare", "bare-native-off"):
        if variant == "bare-native-off":
            connect_kwargs["enable_telemetry"] = False
        return lambda: None
    if variant == AB_VARIANT:
        import databricks.sql.client  # so that instrument() installs its hooks at once

        connect_kwargs["enable_telemetry"] = False
        return lambda: None
    if variant == "uninstrumented-control":
        import databricks.sql.client  # so that instrument() installs its hooks at once

        from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

        instrumentor = DbsqlInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        connect_kwargs["enable_telemetry"] = False
        return lambda: None
    if variant.startswith("dbsql-"):
        from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

        instrumentor = DbsqlInstrumentor()
        if variant.startswith("dbsql-sdk"):
            tracer_provider, meter_provider = _sdk_providers()
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

            def done() -> None:
                instrumentor.uninstrument()
                tracer_provider.shutdown()
                meter_provider.shutdown()

            return done
        instrumentor.instrument()
        uninstrument: Callable[[], None] = instrumentor.uninstrument
        return uninstrument
    if variant == "dbapi-sdk":
        import databricks.sql
        from opentelemetry.instrumentation.dbapi import trace_integration

        tracer_provider, meter_provider = _sdk_providers()
        module: Any = databricks.sql  # typed as a callable by the contrib package
        trace_integration(
            module,
            "connect",
            "databricks",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

        def shutdown() -> None:
            tracer_provider.shutdown()
            meter_provider.shutdown()

        return shutdown
    raise SystemExit(f"unknown variant {variant!r}")


def _reply(out: IO[str], payload: dict[str, Any]) -> None:
    out.write(RESULT_PREFIX + json.dumps(payload) + "\n")
    out.flush()


def _profile_round(one: Callable[[], None], iterations: int, top: int) -> str:
    """One round under cProfile (timer: this thread's CPU time); the functions of this package,
    the OpenTelemetry API/SDK, wrapt and ``os.environ`` by own time per statement."""
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for _ in range(iterations):
        one()
    profiler.disable()
    stats: Any = pstats.Stats(profiler)
    keep = ("opentelemetry", "wrapt", "<frozen os>")
    rows: list[tuple[float, float, float, str]] = []
    everything = 0.0
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        everything += tottime
        if not any(part in filename for part in keep):
            continue
        where = f"{_short(filename)}:{line}({function})"
        rows.append((tottime, cumtime, calls, where))
    rows.sort(reverse=True)
    per = 1e6 / iterations
    lines = [f"{'own us':>8} {'cum us':>8} {'calls':>6}  function (per statement)"]
    for tottime, cumtime, calls, where in rows[:top]:
        lines.append(
            f"{tottime * per:8.2f} {cumtime * per:8.2f} {calls / iterations:6.1f}  {where}"
        )
    instrumentation = sum(r[0] for r in rows) * per
    lines.append(
        f"{instrumentation:8.2f} {'':8} {'':6}  own time of all such functions"
        f" (of {everything * per:.1f} us profiled CPU per statement)"
    )
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _hook_path(one: Callable[[], None], statements: int, number: int) -> dict[str, Any]:
    """This package's own code per statement, replayed without the driver.

    Only for variants where nothing is recorded (no SDK, export off): there every wrapper just
    decides to pass through. A profiling pass counts the calls of each installed wrapper per
    statement and keeps the arguments of one call; each wrapper is then called many times with
    those arguments and a no-op in place of the driver method, and the cost of wrapt's dispatch
    (a pass-through ``FunctionWrapper`` around a no-op) is added per call.
    """
    import timeit

    import wrapt

    from opentelemetry_instrumentation_dbsql.hooks.patching import _find_owner, hook_points

    by_code: dict[Any, tuple[list[str], Callable[..., Any]]] = {}
    for point in hook_points():
        owner = _find_owner(point)
        installed = vars(owner).get(point.name) if owner is not None else None
        if not isinstance(installed, wrapt.FunctionWrapper):
            continue
        wrapper: Any = installed._self_wrapper
        code = getattr(wrapper, "__func__", wrapper).__code__
        names, _ = by_code.setdefault(code, ([], wrapper))
        names.append(f"{owner.__name__}.{point.name}")
    counts: dict[Any, int] = {}
    samples: dict[Any, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {}

    def count(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and code in by_code:
            counts[code] = counts.get(code, 0) + 1
            if code not in samples:
                local = frame.f_locals
                samples[code] = (local["instance"], local["args"], dict(local["kwargs"]))

    sys.setprofile(count)
    try:
        for _ in range(statements):
            one()
    finally:
        sys.setprofile(None)

    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    def best(call: Callable[[], object]) -> float:
        return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6

    wrapped_noop: Callable[[], None] = wrapt.FunctionWrapper(noop, passthrough)
    dispatch_us = best(wrapped_noop) - best(lambda: passthrough(noop, None, (), {}))
    rows = []
    for code, calls in sorted(counts.items(), key=lambda item: -item[1]):
        names, wrapper = by_code[code]
        instance, args, kwargs = samples[code]

        def hooked(w: Any = wrapper, i: Any = instance, a: Any = args, k: Any = kwargs) -> Any:
            return w(noop, i, a, k)

        def bare(a: Any = args, k: Any = kwargs) -> Any:
            return noop(*a, **k)

        own_us = best(hooked) - best(bare)
        rows.append(
            {
                "hook": "/".join(names),
                "calls": calls / statements,
                "wrapper_us": own_us,
                "dispatch_us": dispatch_us,
            }
        )
    return {"rows": rows}


def _print_hook_path(variant: str, report: dict[str, Any]) -> None:
    print(
        f"\nThis package's code per statement in {variant}, replayed in-process without the"
        " driver\n(wrapper: the wrapper function with a no-op in place of the driver method;"
        " dispatch: wrapt):"
    )
    print(f"{'hook':<58} {'calls':>5} {'wrapper us':>10} {'dispatch us':>11} {'us/stmt':>8}")
    total = 0.0
    for row in report["rows"]:
        per_statement = row["calls"] * (row["wrapper_us"] + row["dispatch_us"])
        total += per_statement
        print(
            f"{row['hook'][:58]:<58} {row['calls']:5.1f} {row['wrapper_us']:10.2f}"
            f" {row['dispatch_us']:11.2f} {per_statement:8.2f}"
        )
    print(f"{'total':<58} {'':5} {'':10} {'':11} {total:8.2f}")


def _ab_rounds(one: Callable[[], None], connection: Any, rounds: int, iterations: int) -> Any:
    """In one process and on one connection: ``iterations`` statements uninstrumented and
    ``iterations`` instrumented (no SDK, export off), per round, alternating which goes first.
    Returns the per-round differences (instrumented - not) of CPU per statement."""
    from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
    from opentelemetry_instrumentation_dbsql.statement import CONNECTION_STATE_ATTR

    instrumentor = DbsqlInstrumentor()

    def measure() -> tuple[float, float]:
        gc.collect()
        cpu0, thread0 = time.process_time_ns(), time.thread_time_ns()
        for _ in range(iterations):
            one()
        thread1, cpu1 = time.thread_time_ns(), time.process_time_ns()
        return (cpu1 - cpu0) / iterations / 1e3, (thread1 - thread0) / iterations / 1e3

    def instrumented() -> tuple[float, float]:
        instrumentor.instrument()
        try:
            return measure()
        finally:
            instrumentor.uninstrument()
            if hasattr(connection, CONNECTION_STATE_ATTR):
                delattr(connection, CONNECTION_STATE_ATTR)  # adopted afresh next time

    instrumented()  # warm-up of the instrumented path
    cpu: list[float] = []
    thread: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            off = measure()
            on = instrumented()
        else:
            on = instrumented()
            off = measure()
        cpu.append(on[0] - off[0])
        thread.append(on[1] - off[1])
    return {"cpu": cpu, "thread": thread}


def _print_ab(report: dict[str, list[float]], rounds: int, iterations: int) -> None:
    print(
        f"\nIn-process A/B ({AB_VARIANT}): one process, one connection, {rounds} rounds of"
        f" {iterations} statements\nuninstrumented and {iterations} instrumented (instrument() /"
        " uninstrument() between them, no SDK,\nexport off), order alternating; instrumented -"
        " uninstrumented CPU per statement:"
    )
    for key, label in (("cpu", "process CPU"), ("thread", "thread CPU")):
        deltas = report[key]
        q1, _, q3 = statistics.quantiles(deltas, n=4)
        error = statistics.stdev(deltas) / len(deltas) ** 0.5
        print(
            f"  {label:<12} median {statistics.median(deltas):+6.1f} us  mean"
            f" {statistics.mean(deltas):+6.1f} us +/- {error:.1f} (standard error)"
            f"  quartiles {q1:+.1f} .. {q3:+.1f}"
        )


def worker(variant: str, connect_json: str, warmup: int) -> int:
    """The client process: instrument, connect, warm up, then serve rounds from stdin."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed must not mix with the replies
    connect_kwargs: dict[str, Any] = json.loads(connect_json)
    done = _set_up(variant, connect_kwargs)
    import databricks.sql

    connection: Any = databricks.sql.connect(**connect_kwargs)
    cursor: Any = connection.cursor()

    def one() -> None:
        cursor.execute(STATEMENT)
        cursor.fetchall()

    for _ in range(warmup):
        one()
    _reply(out, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "round":
            iterations = int(command["iterations"])
            gc.collect()
            wall0, cpu0 = time.perf_counter_ns(), time.process_time_ns()
            thread0 = time.thread_time_ns()
            for _ in range(iterations):
                one()
            thread1 = time.thread_time_ns()
            wall1, cpu1 = time.perf_counter_ns(), time.process_time_ns()
            _reply(
                out,
                {
                    "iterations": iterations,
                    "wall_ns": wall1 - wall0,
                    "cpu_ns": cpu1 - cpu0,
                    "thread_ns": thread1 - thread0,
                },
            )
        elif op == "ab":
            _reply(
                out,
                _ab_rounds(one, connection, int(command["rounds"]), int(command["iterations"])),
            )
        elif op == "hooks":
            _reply(out, _hook_path(one, int(command["statements"]), int(command["number"])))
        elif op == "profile":
            report = _profile_round(one, int(command["iterations"]), int(command["top"]))
            _reply(out, {"profile": report})
        elif op == "quit":
            break
    cursor.close()
    connection.close()
    done()
    _reply(out, {"bye": True})
    return 0


# --------------------------------------------------------------------------- parent process


class Client:
    """One worker process and its stdin/stdout command channel."""

    def __init__(
        self, variant: Variant, replica: int, connect_kwargs: dict[str, Any], warmup: int
    ) -> None:
        self.variant = variant
        self.replica = replica
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(variant.env)
        env["PYTHONHASHSEED"] = "0"  # same dict and set layouts in every client
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                variant.name,
                "--connect",
                json.dumps(connect_kwargs),
                "--warmup",
                str(warmup),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def read(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            if line.startswith(RESULT_PREFIX):
                reply: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return reply
        raise RuntimeError(f"worker {self.variant.name} exited ({self.process.wait()})")

    def send(self, command: dict[str, Any]) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return self.read()

    def quit(self) -> None:
        try:
            self.send({"op": "quit"})
        finally:
            self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_warehouse() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """The standalone local warehouse in its own process, and the connect kwargs it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", WAREHOUSE_MODULE, "--port", str(_free_port())],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    kwargs: dict[str, Any] = {}
    in_call = False
    for line in process.stdout:
        stripped = line.strip()
        if stripped.startswith("connection = databricks.sql.connect("):
            in_call = True
        elif in_call and stripped == ")":
            break
        elif in_call:
            key, _, value = stripped.rstrip(",").partition("=")
            kwargs[key] = ast.literal_eval(value)
    if not kwargs:
        process.kill()
        raise RuntimeError("the warehouse printed no connect snippet")
    stdout = process.stdout
    # Keep reading what it prints later, so that a full pipe never blocks it.
    threading.Thread(target=stdout.read, name="warehouse-stdout", daemon=True).start()
    return process, kwargs


def _per_statement_us(round_: dict[str, Any], key: str) -> float:
    return float(round_[key]) / float(round_["iterations"]) / 1e3


def summarize(replicas: list[list[dict[str, Any]]]) -> dict[str, float]:
    """Medians over all rounds of all processes of one variant; ``cpu_spread_us`` is half the
    range of the per-process CPU medians (with one process: of the per-round values)."""
    pooled = [r for rounds in replicas for r in rounds]
    summary = {
        f"{name}_us": statistics.median(_per_statement_us(r, f"{name}_ns") for r in pooled)
        for name in ("wall", "cpu", "thread")
    }
    if len(replicas) > 1:
        values = [
            statistics.median(_per_statement_us(r, "cpu_ns") for r in rounds) for rounds in replicas
        ]
    else:
        values = [_per_statement_us(r, "cpu_ns") for r in pooled]
    summary["cpu_spread_us"] = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return summary


def _round_means(replicas: list[list[dict[str, Any]]]) -> list[float]:
    """Per round: the CPU per statement, averaged over the variant's processes."""
    rounds = min(len(r) for r in replicas)
    return [
        statistics.mean(_per_statement_us(r[i], "cpu_ns") for r in replicas) for i in range(rounds)
    ]


def paired_overhead(
    variant: list[list[dict[str, Any]]], baseline: list[list[dict[str, Any]]]
) -> tuple[float, float]:
    """Median over rounds of (variant - baseline) CPU per statement, both from the same round
    (so machine drift between rounds cancels), and half the interquartile range."""
    deltas = [v - b for v, b in zip(_round_means(variant), _round_means(baseline), strict=True)]
    if len(deltas) < 2:
        return deltas[0], 0.0
    q1, _, q3 = statistics.quantiles(deltas, n=4)
    return statistics.median(deltas), (q3 - q1) / 2


def print_table(
    summary: dict[str, dict[str, float]],
    results: dict[str, list[list[dict[str, Any]]]],
    variants: Sequence[Variant],
    args: Any,
) -> None:
    print(
        f"\n{args.iterations} x execute({STATEMENT!r}) + fetchall() per round, {args.rounds}"
        f" rounds x {args.replicas} process(es) per variant; Python"
        f" {platform.python_version()}, {os.cpu_count()} CPUs, load average"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    header = (
        f"{'variant':<23} {'wall us':>7} {'CPU us':>7} {'thread':>7} {'+/-':>5}"
        f" | {'vs bare':>14} {'ratio':>5} | {'vs same-telemetry bare':>22}"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        row = summary[variant.name]
        versus_bare, ratio, versus_same = "", "", ""
        if "bare" in results and variant.name != "bare":
            delta, spread = paired_overhead(results[variant.name], results["bare"])
            versus_bare = f"{delta:+7.1f} +/-{spread:4.1f}"
            ratio = f"{row['cpu_us'] / summary['bare']['cpu_us']:.3f}"
        same = variant.baseline
        if same not in ("bare", variant.name) and same in results:
            delta, spread = paired_overhead(results[variant.name], results[same])
            versus_same = f"{delta:+7.1f} +/-{spread:4.1f} ({same})"
        print(
            f"{variant.name:<23} {row['wall_us']:7.0f} {row['cpu_us']:7.1f}"
            f" {row['thread_us']:7.1f} {row['cpu_spread_us']:5.1f}"
            f" | {versus_bare:>14} {ratio:>5} | {versus_same}"
        )
    print(
        "\nPer statement, medians over rounds: wall time; CPU of the client process (all"
        " threads); thread:\nCPU of the calling thread; +/-: half the range of the per-process"
        " CPU medians. vs bare: CPU\nminus the bare driver's, paired round by round (median, +/-"
        " half the interquartile range);\nratio: CPU / bare CPU. vs same-telemetry bare: the same"
        " against the bare driver with its own\ntelemetry off, as this package sets it on the"
        " connections it instruments."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=500, help="statements per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--replicas", type=int, default=2, help="client processes per variant")
    parser.add_argument("--warmup", type=int, default=200, help="statements before timing")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--profile", action="append", default=[], help="cProfile a variant")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--ab-rounds", type=int, default=30, help="rounds of the in-process A/B (0: none)"
    )
    parser.add_argument(
        "--hook-path",
        action="append",
        default=None,
        help="replay the wrappers of a variant that records nothing"
        " (default: dbsql-nosdk-export-off)",
    )
    parser.add_argument("--json", default=None, help="write the raw rounds here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--connect", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.connect, args.warmup)

    variants = [VARIANTS[name] for name in args.variants.split(",")]
    if args.hook_path is None:
        args.hook_path = [v.name for v in variants if v.name == "dbsql-nosdk-export-off"]
    warehouse, connect_kwargs = start_warehouse()
    clients: list[Client] = []
    try:
        clients = [
            Client(v, replica, connect_kwargs, args.warmup)
            for replica in range(args.replicas)
            for v in variants
        ]
        for client in clients:
            client.read()  # ready: imported, connected, warmed up
        results: dict[str, list[list[dict[str, Any]]]] = {
            v.name: [[] for _ in range(args.replicas)] for v in variants
        }
        for round_index in range(args.rounds):
            shift = round_index % len(clients)
            for client in clients[shift:] + clients[:shift]:
                reply = client.send({"op": "round", "iterations": args.iterations})
                results[client.variant.name][client.replica].append(reply)
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        summary = {v.name: summarize(results[v.name]) for v in variants}
        print_table(summary, results, variants, args)
        for name in args.hook_path:
            client = next(c for c in clients if c.variant.name == name)
            _print_hook_path(
                name, client.send({"op": "hooks", "statements": 200, "number": 100_000})
            )
        if args.ab_rounds > 0:
            ab = Client(Variant(AB_VARIANT, "A/B", AB_VARIANT, EXPORT_OFF), 0, connect_kwargs, 0)
            clients.append(ab)
            ab.read()
            _print_ab(
                ab.send({"op": "ab", "rounds": args.ab_rounds, "iterations": args.iterations}),
                args.ab_rounds,
                args.iterations,
            )
        for name in args.profile:
            client = next(c for c in clients if c.variant.name == name)
            reply = client.send(
                {"op": "profile", "iterations": args.iterations, "top": args.profile_top}
            )
            print(f"\ncProfile of {name} (timer: thread CPU; profiler overhead inflates):")
            print(reply["profile"])
        if args.json:
            Path(args.json).write_text(
                json.dumps({"summary": summary, "rounds": results}, indent=1)
            )
        for client in clients:
            client.quit()
    finally:
        for client in clients:
            if client.process.poll() is None:
                client.process.kill()
        warehouse.send_signal(signal.SIGTERM)
        try:
            warehouse.wait(timeout=10)
        except subprocess.TimeoutExpired:
            warehouse.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
