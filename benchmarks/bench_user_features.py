"""Per-statement cost of the user-facing options, each against leaving it unset, in one run.

    .venv/bin/python benchmarks/bench_user_features.py [--number N] [--repeat R]

``bench_inprocess.py`` has an arm with these options set (``dbsql-sdk-hooks``), but its rounds
spread by tens of microseconds, more than these cost. This times the work itself, as the
statement path does it: the checks every statement makes when the options are unset, a
``request_hook`` and a ``response_hook`` that do nothing called on a recording SDK span with
their ``StatementInfo``, and an ``exclude_statements`` pattern that does not match.
"""

from __future__ import annotations

import argparse
import re
import timeit
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

from opentelemetry_instrumentation_dbsql.hooks.user_hooks import call_hook
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.runtime import Runtime
from opentelemetry_instrumentation_dbsql.spans import SpanRecorder
from opentelemetry_instrumentation_dbsql.statement_info import StatementFilter, StatementInfo


def _no_op(span: Span, info: StatementInfo) -> None:
    """A hook that does nothing."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    runtime = Runtime(InstrumentationOptions(), tracer_provider=TracerProvider())
    recorder = SpanRecorder(runtime, "SELECT", {"db.system.name": "databricks"})
    unset = InstrumentationOptions()
    pattern = StatementFilter.of([re.compile(r"(?i)select\s+2")])

    def options_unset() -> bool:
        return (
            unset.request_hook is not None
            or unset.response_hook is not None
            or unset.exclude_statements is not None
        )

    def two_hooks() -> None:
        call_hook("request_hook", _no_op, recorder, StatementInfo("execute", "SELECT", None))
        info = StatementInfo("execute", "SELECT", None, statement_id="01f0")
        call_hook("response_hook", _no_op, recorder, info)

    rows: list[tuple[str, Callable[[], object]]] = [
        ("options unset: the checks", options_unset),
        ("request_hook + response_hook", two_hooks),
        ("exclude_statements, no match", lambda: pattern.excludes("SELECT 1")),
    ]
    for name, fn in rows:
        best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name:<34}{best * 1e9:>8.0f} ns per statement")


if __name__ == "__main__":
    main()
