"""Cost of turning statement records into a ``/telemetry-ext`` request body, two ways side by side.

    .venv/bin/python benchmarks/bench_encoding.py [--events N] [--repeat R]

``reference``: each event built as nested dicts (``wire_format.frontend_log``) and dumped with
``json``, then the body escapes every event again (``encode_request``), as a straightforward
encoder does. ``direct``: what the export worker does, each event written as the escaped JSON
string the body carries (``proto_log_literal``, the per-connection part encoded once) and the
body joined (``encode_literals``). Both produce the same JSON (the tests check it). Printed: the
best of ``--repeat`` runs, per event, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.export.helpers import statement_record

from opentelemetry_instrumentation_dbsql.export import wire_format as W


def _context() -> W.ConnectionContext:
    return W.ConnectionContext(
        driver_version="4.9.0",
        user_agent="PyDatabricksSqlConnector/4.9.0 (opentelemetry-instrumentation-dbsql)",
        params=W.DriverConnectionParams(
            http_path="/sql/1.0/warehouses/abc123",
            mode="THRIFT",
            host_info=W.HostInfo("example.cloud.databricks.com", 443),
            auth_mech="PAT",
            socket_timeout=900,
            enable_arrow=True,
            enable_direct_results=True,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Time both encoders and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100, help="events per request body")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    ctx = _context()
    session = "01f0a1b2-c3d4-e5f6-0718-293a4b5c6d7e"
    records = [
        statement_record(session, "example.cloud.databricks.com", 443) for _ in range(args.events)
    ]

    def reference() -> bytes:
        logs = [json.dumps(W.frontend_log(r, ctx), separators=(",", ":")) for r in records]
        return W.encode_request(logs)

    def direct() -> bytes:
        encoded = W.encode_context(ctx)  # once per connection; counted here per body
        return W.encode_literals([W.proto_log_literal(r, encoded) for r in records])

    def strip_ids(body: bytes) -> list[object]:
        logs = [json.loads(log) for log in json.loads(body)["protoLogs"]]
        for log in logs:
            log.pop("frontend_log_event_id")
        return logs

    if strip_ids(reference()) != strip_ids(direct()):
        raise SystemExit("the two encoders disagree")
    results = {}
    for name, run in (("reference", reference), ("direct", direct)):
        number = max(1, 2000 // args.events)
        best = min(timeit.repeat(run, number=number, repeat=args.repeat)) / number
        results[name] = best / args.events * 1e6
    print(f"request body of {args.events} statement events, best of {args.repeat} runs\n")
    print(f"{'encoder':<10} {'us per event':>13}")
    for name, per_event in results.items():
        print(f"{name:<10} {per_event:13.2f}")
    print(f"\ndirect / reference: {results['direct'] / results['reference']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
