"""``python -m opentelemetry_instrumentation_dbsql.testing.warehouse [--port N] [--tls]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

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
    parser.add_argument("--token", default=None, help="access token to show in the snippet")
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
        print("Connect with:\n")
        print(connect_snippet(wh))
        print("\nPress Ctrl+C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
