"""connect() latency when the feature-flag endpoint takes 2 s to answer.

Three variants against the local warehouse, run interleaved, each timed from
``databricks.sql.connect`` until the application gets its connection back:

* bare driver, native telemetry off (``enable_telemetry=False``);
* driver with its native telemetry on (the default): it waits for the flag on connect;
* driver with native telemetry off through ``native_telemetry_kwargs`` plus
  ``DatabricksTelemetrySink.register_connection`` with the server flag deciding: the flag is
  fetched on a background thread, so connect() must not wait;
* the whole instrumentation: ``DbsqlInstrumentor().instrument()`` (no SDK, the server flag
  deciding), then ``databricks.sql.connect``. A fresh ``instrument()`` per sample (untimed, as
  an application does it once at start-up) has a fresh flag cache, so every sample's connect
  is the host's first and starts the flag fetch; ``uninstrument()`` after the sample is not
  timed either.

The driver caches the flag per host for 15 minutes, so its cache entry is dropped before each
sample of the second variant, and the third variant uses a fresh sink (fresh flag cache) per
sample. The order of the variants rotates every run and each sample starts after a pause
(``--settle``), so that one variant's background work never lands in the next one's timing.
Run: ``.venv/bin/python benchmarks/bench_export.py [--runs N] [--delay S] [--settle S]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import databricks.sql
from databricks.sql.common.feature_flag import FeatureFlagsContextFactory

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.export.sink import (
    DatabricksTelemetrySink,
    native_telemetry_kwargs,
)
from opentelemetry_instrumentation_dbsql.export.stats import ExportStats
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse


def sample(runs: int, once: Callable[[], tuple[float, Any]]) -> list[float]:
    """Seconds of ``runs`` timed calls; each returns (elapsed, connection to close)."""
    times = []
    for _ in range(runs):
        elapsed, conn = once()
        times.append(elapsed)
        conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=2.0, help="flag endpoint delay (s)")
    parser.add_argument("--settle", type=float, default=0.3, help="pause before a sample (s)")
    args = parser.parse_args()

    with LocalWarehouse() as wh:
        wh.feature_flags.configure(enabled=True, delay=args.delay)
        base = wh.connect_kwargs()
        flag_cache: Any = FeatureFlagsContextFactory  # untyped driver class
        # Warm-up: imports and the first Thrift session, outside every timed region.
        databricks.sql.connect(**base, enable_telemetry=False).close()

        def bare() -> tuple[float, Any]:
            start = time.perf_counter()
            conn = databricks.sql.connect(**base, enable_telemetry=False)
            return time.perf_counter() - start, conn

        def native() -> tuple[float, Any]:
            flag_cache.remove_instance(wh.base_url)
            start = time.perf_counter()
            conn = databricks.sql.connect(**base)
            return time.perf_counter() - start, conn

        sinks: list[DatabricksTelemetrySink] = []
        register_times: list[float] = []

        def exporter() -> tuple[float, Any]:
            sink = DatabricksTelemetrySink(stats=ExportStats(), environ={})
            sinks.append(sink)
            start = time.perf_counter()
            conn = databricks.sql.connect(**{**base, **native_telemetry_kwargs(base)})
            registered = time.perf_counter()
            sink.register_connection(conn, base, None)
            end = time.perf_counter()
            register_times.append(end - registered)
            return end - start, conn

        instrumentors: list[DbsqlInstrumentor] = []

        def instrumented() -> tuple[float, Any]:
            start = time.perf_counter()
            conn = databricks.sql.connect(**base)
            return time.perf_counter() - start, conn

        # Interleaved, so that a change in machine load affects every variant alike.
        variants = {
            "bare driver (native telemetry off)": bare,
            "driver, native telemetry on": native,
            "driver + register_connection (flag decides)": exporter,
            "instrument() + connect (flag decides)": instrumented,
        }
        results: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for run in range(args.runs):
            # The order rotates, and background work of one sample (the driver's telemetry
            # flushing on close, a flag fetch still waiting) settles before the next one.
            for name in names[run % len(names) :] + names[: run % len(names)]:
                if instrumentors:
                    instrumentors.pop().uninstrument()  # the previous sample's, untimed
                if variants[name] is instrumented:
                    instrumentors.append(DbsqlInstrumentor())
                    instrumentors[-1].instrument()
                time.sleep(args.settle)
                results[name].extend(sample(1, variants[name]))
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        flag_requests = len(wh.feature_flags.requests)
        # Steady state: more connections to a host whose client and flag entry exist.
        known_host: list[float] = []
        sink = sinks[-1]
        conns = [
            databricks.sql.connect(**{**base, **native_telemetry_kwargs(base)})
            for _ in range(args.runs)
        ]
        for conn in conns:
            start = time.perf_counter()
            sink.register_connection(conn, base, None)
            known_host.append(time.perf_counter() - start)
        for conn in conns:
            conn.close()
        for sink in sinks:
            sink.shutdown(1.0)

    bare_median = statistics.median(results["bare driver (native telemetry off)"])
    print(f"connect() latency, feature-flag endpoint delay {args.delay:.1f} s, {args.runs} runs")
    print()
    header = (
        f"| {'variant':<45} | {'median ms':>9} | {'min ms':>8} | {'max ms':>8} | {'ratio':>6} |"
    )
    print(header)
    print("|" + "-" * 47 + "|" + "-" * 11 + "|" + "-" * 10 + "|" + "-" * 10 + "|" + "-" * 8 + "|")
    for name, times in results.items():
        median = statistics.median(times)
        print(
            f"| {name:<45} | {median * 1e3:>9.1f} | {min(times) * 1e3:>8.1f} | "
            f"{max(times) * 1e3:>8.1f} | {median / bare_median:>6.2f} |"
        )
    print()
    print(
        "register_connection alone, median: "
        f"{statistics.median(register_times) * 1e6:.0f} us for a new host (builds its client, "
        f"hands its threads to the launcher), {statistics.median(known_host) * 1e6:.0f} us for "
        "a known host"
    )
    print(
        f"flag requests served: {flag_requests} "
        "(driver: one per native sample, exporter and instrument(): one per fresh sink)"
    )


if __name__ == "__main__":
    main()
