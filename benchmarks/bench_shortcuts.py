"""The shortcuts this package keeps on hot paths, each against its plain twin.

    .venv/bin/python benchmarks/bench_shortcuts.py [--number N] [--repeat R]

Each row times one thing the instrumentation does per statement (or per span the aggregation
processor reads), first as the package does it, then the plain way (public API, standard
library), in the same run, and prints both and their ratio. A shortcut (a private read, a
hand-written replacement) stays in the package only where this shows a gain worth it; the
comment beside it cites the row.

``no-SDK provider check``
    ``Runtime`` asks, on every statement while no SDK provider is in use, whether one has been
    set since: the module globals behind ``trace.get_tracer_provider()`` and
    ``metrics.get_meter_provider()``, against calling the two getters (which read the
    environment each time).
``processor attribute reads``
    The aggregation processor reads about 30 keys of each ended span, most of them absent: the
    plain dict behind the SDK's ``BoundedAttributes`` against the mapping's own ``get``.
``statement id text``
    The statement id as UUID text from the 16 bytes of the operation handle, as the driver's
    ``query_id`` writes it: ``ids.uuid_text`` against ``str(uuid.UUID(bytes=...))``.
"""

from __future__ import annotations

import argparse
import os
import timeit
import uuid
from collections.abc import Callable

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_internal
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import _values as V
from opentelemetry_instrumentation_dbsql.ids import uuid_text

_KEYS = [value for name, value in vars(A).items() if name.isupper() and isinstance(value, str)]


def _private_provider_check() -> bool:
    return (
        getattr(trace, "_TRACER_PROVIDER", None) is None
        and getattr(_metrics_internal, "_METER_PROVIDER", None) is None
    )


def _public_provider_check() -> bool:
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) and (
        type(metrics.get_meter_provider()).__module__.startswith("opentelemetry.metrics")
    )


def _ended_span() -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attributes = {
        A.SPAN_ROLE: A.ROLE_STATEMENT,
        A.STATEMENT_ID: "01f0-statement",
        A.SESSION_ID: "01f0-session",
        A.DB_SYSTEM_NAME: A.DB_SYSTEM_VALUE,
        A.DB_OPERATION_NAME: "SELECT",
        A.DB_QUERY_SUMMARY: "SELECT orders",
        A.SERVER_ADDRESS: "adb-1.azuredatabricks.net",
        A.SERVER_PORT: 443,
    }
    provider.get_tracer(A.INSTRUMENTATION_SCOPE).start_span("s", attributes=attributes).end()
    (span,) = exporter.get_finished_spans()
    return span


def _reads_private(span: ReadableSpan) -> Callable[[], int]:
    def run() -> int:
        attrs = V.span_attributes(span) or {}
        return sum(1 for key in _KEYS if attrs.get(key) is not None)

    return run


def _reads_public(span: ReadableSpan) -> Callable[[], int]:
    def run() -> int:
        attrs = span.attributes or {}
        return sum(1 for key in _KEYS if attrs.get(key) is not None)

    return run


def _best_ns(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    span = _ended_span()
    guid = os.urandom(16)
    rows = [
        ("no-SDK provider check", _private_provider_check, _public_provider_check),
        (
            f"processor attribute reads ({len(_KEYS)} keys)",
            _reads_private(span),
            _reads_public(span),
        ),
        ("statement id text", lambda: uuid_text(guid.hex()), lambda: str(uuid.UUID(bytes=guid))),
    ]
    print(f"{'check':<42}{'package ns':>12}{'public ns':>12}{'public/package':>16}")
    for name, private, public in rows:
        mine = _best_ns(private, args.number, args.repeat)
        theirs = _best_ns(public, args.number, args.repeat)
        print(f"{name:<42}{mine:>12.0f}{theirs:>12.0f}{theirs / mine:>16.2f}")


if __name__ == "__main__":
    main()
