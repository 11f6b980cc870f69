"""``python -m opentelemetry_instrumentation_dbsql.testing.warehouse [--seed] [--port N] [--tls]``.

Serves a local warehouse until Ctrl+C (SIGINT) or SIGTERM. It prints the ``export`` lines of
the environment the scripts in ``examples/`` read; with ``--seed`` it first creates the table
they query (``samples.nyctaxi.trips``), so that in another shell::

    python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed
    # paste the printed export lines, then for example
    python examples/statement_tags.py
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from opentelemetry_instrumentation_dbsql.testing.warehouse.samples import (
    TRIPS_TABLE,
    example_environment,
    export_lines,
    seed_samples,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.warehouse import LocalWarehouse


def connect_snippet(warehouse: LocalWarehouse) -> str:
    """Python code that connects the real driver to ``warehouse``."""
    lines = ["import databricks.sql", "", "connection = databricks.sql.connect("]
    lines += [f"    {key}={value!r}," for key, value in warehouse.connect_kwargs().items()]
    lines.append(")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Serve a local warehouse until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m opentelemetry_instrumentation_dbsql.testing.warehouse",
        description="Serve a local Databricks SQL warehouse for the databricks-sql-connector.",
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed cert")
    parser.add_argument("--token", default=None, help="access token (default: a random one)")
    parser.add_argument(
        "--seed",
        action="store_true",
        help=f"create {TRIPS_TABLE}, the table the scripts in examples/ query",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Both installed explicitly: a process started in the background inherits SIGINT ignored
    # (and Python then installs no KeyboardInterrupt handler), so Ctrl+C must not rely on it.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with LocalWarehouse(
        port=args.port, tls=args.tls, host=args.host, access_token=args.token
    ) as wh:
        print(f"Local Databricks SQL warehouse serving at {wh.base_url}{wh.http_path}")
        if args.seed:
            print(f"Seeded {TRIPS_TABLE}: {seed_samples(wh)} rows")
        print("\nEnvironment of the scripts in examples/ (paste into the shell that runs them):\n")
        print("\n".join(export_lines(example_environment(wh, args.seed))))
        if not args.seed:
            print(f"\n(Not seeded: with --seed, {TRIPS_TABLE}, the table they query, is created.)")
        print("\nOr connect with:\n")
        print(connect_snippet(wh))
        print("\nPress Ctrl+C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
