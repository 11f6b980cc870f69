"""Statement latency with Databricks export on, telemetry endpoint healthy vs hanging.

    .venv/bin/python benchmarks/bench_export_hang.py [--rounds R] [--iterations N]

Two local warehouses in this process, identical but for their telemetry endpoint: one answers,
the other hangs every POST until released. The instrumentation exports to both (forced on, so
flag fetches play no part, batches of 10 so exports happen during the rounds). Rounds alternate
between the two connections; each round times ``execute("SELECT 1"); fetchall()``. Prints the
median wall time per statement for each and the ratio (target: within 5%).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import databricks.sql

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.export.stats import get_export_stats
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse


def _round(cursor: Any, iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        cursor.execute("SELECT 1")
        cursor.fetchall()
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    instrumentor = DbsqlInstrumentor()
    instrumentor.instrument(force_enable_telemetry=True, aggregation_batch_size=10)
    with LocalWarehouse() as healthy, LocalWarehouse() as hanging:
        hanging.telemetry.hang()
        connections = {
            "healthy endpoint": databricks.sql.connect(**healthy.connect_kwargs()),
            "hanging endpoint": databricks.sql.connect(**hanging.connect_kwargs()),
        }
        cursors = {name: conn.cursor() for name, conn in connections.items()}
        for cursor in cursors.values():
            _round(cursor, 100)  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in cursors}
        for number in range(args.rounds):
            order = list(cursors) if number % 2 == 0 else list(reversed(cursors))
            for name in order:
                samples[name].append(_round(cursors[name], args.iterations))
        for cursor in cursors.values():
            cursor.close()
        for conn in connections.values():
            conn.close()
        started = time.monotonic()
        instrumentor.uninstrument()
        shutdown_s = time.monotonic() - started
        hanging.telemetry.release()
        delivered = len(healthy.telemetry.events())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["healthy endpoint"]
    print(f"{args.rounds} rounds x {args.iterations} x execute('SELECT 1') + fetchall()")
    print(f"{'telemetry endpoint':<20} {'wall us/stmt':>12} {'ratio':>7}")
    for name, value in medians.items():
        print(f"{name:<20} {value:>12.1f} {value / base:>7.3f}")
    print(f"uninstrument() with the endpoint hanging: {shutdown_s:.2f} s")
    print(f"events delivered by the healthy endpoint: {delivered}")
    print(f"export stats: {get_export_stats()}")


if __name__ == "__main__":
    main()
