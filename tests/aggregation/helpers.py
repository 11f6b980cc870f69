"""Span builders and sinks shared by the aggregation tests."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan, Tracer
from opentelemetry.trace import SpanContext

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation.direct import make_readable_span
from opentelemetry_instrumentation_dbsql.aggregation.records import TelemetryRecord

Attrs = Mapping[str, Any]


def statement_attrs(statement_id: str | None, *, session: str = "sess-1", **extra: Any) -> dict:
    """Typical STATEMENT span attributes."""
    attrs: dict[str, Any] = {
        A.SERVER_ADDRESS: "example.cloud.databricks.com",
        A.SERVER_PORT: 443,
        A.SESSION_ID: session,
        A.OPERATION_TYPE: "EXECUTE_STATEMENT",
        A.STATEMENT_TYPE: "QUERY",
        A.POLL_COUNT: 2,
        A.POLL_LATENCY_MS: 40,
        A.RETRY_COUNT: 1,
        A.RESULT_FORMAT: "INLINE_ARROW",
        A.RESULT_COMPRESSED: True,
        A.RESULT_CHUNKS_PRESENT: 1,
        A.RESULT_BYTES: 1000,
        A.IS_ASYNC: False,
        A.RESULT_OPEN: True,
    }
    if statement_id is not None:
        attrs[A.STATEMENT_ID] = statement_id
    attrs.update(extra)
    return attrs


def result_attrs(statement_id: str | None, **extra: Any) -> dict:
    """Typical RESULT span attributes."""
    attrs: dict[str, Any] = {
        A.DB_RESPONSE_RETURNED_ROWS: 500,
        A.RESULT_FETCH_CALLS: 3,
        A.RESULT_FETCH_ROUND_TRIPS: 2,
        A.RESULT_FETCH_TIME_MS: 25,
        A.RESULT_CHUNKS_PRESENT: 3,
        A.RESULT_CHUNKS_ITERATED: 3,
        A.RESULT_CHUNKS_INITIAL_MS: 7,
        A.RESULT_CHUNKS_SLOWEST_MS: 11,
        A.RESULT_CHUNKS_DOWNLOAD_MS: 24,
        A.RESULT_BYTES: 3000,
        A.RETRY_COUNT: 2,
        A.RESULT_CLOSE_REASON: "closed",
    }
    if statement_id is not None:
        attrs[A.STATEMENT_ID] = statement_id
    attrs.update(extra)
    return attrs


def session_attrs(session: str | None = "sess-1", **extra: Any) -> dict:
    """Typical CREATE_SESSION / DELETE_SESSION attributes."""
    attrs: dict[str, Any] = {
        A.SERVER_ADDRESS: "example.cloud.databricks.com",
        A.SERVER_PORT: 443,
        A.HTTP_PATH: "/sql/1.0/warehouses/abc",
        A.BACKEND: "thrift",
        A.AUTH_MECH: "PAT",
    }
    if session is not None:
        attrs[A.SESSION_ID] = session
    attrs.update(extra)
    return attrs


def end_span(
    tracer: Tracer,
    role: str,
    attrs: Attrs,
    *,
    duration_ms: int = 10,
    start_ns: int = 1_700_000_000_000_000_000,
    events: Sequence[tuple[str, Attrs, int]] = (),
    parent: Any = None,
) -> Any:
    """Start and end one SDK span of the instrumentation's scope; returns it."""
    all_attrs = dict(attrs)
    all_attrs[A.SPAN_ROLE] = role
    span = tracer.start_span(role, context=parent, attributes=all_attrs, start_time=start_ns)
    for name, event_attrs, ts in events:
        span.add_event(name, event_attrs, ts)
    span.end(start_ns + duration_ms * 1_000_000)
    return span


def direct_span(
    role: str,
    attrs: Attrs,
    *,
    duration_ms: int = 10,
    start_ns: int = 1_700_000_000_000_000_000,
    events: Sequence[Event] = (),
    parent: SpanContext | None = None,
    context: SpanContext | None = None,
) -> ReadableSpan:
    """A ReadableSpan built for the direct path."""
    return make_readable_span(
        role,
        role,
        attrs,
        start_ns=start_ns,
        end_ns=start_ns + duration_ms * 1_000_000,
        events=events,
        parent=parent,
        context=context,
    )


class ManualClock:
    """A clock that runs with real time and jumps ahead on ``advance``, with a timed wait on
    that clock: pass it as a processor's ``clock`` and ``wait`` to move it past its timers.

    Timers minutes away are reached only through ``advance``, so the test decides when they
    fire; real time still flows, so no deadline can hang a failing test.
    """

    POLL_S = 0.005

    def __init__(self) -> None:
        self._offset = 0.0
        self._changed = threading.Condition()
        self._sleepers: dict[int, tuple[threading.Event, float]] = {}

    def __call__(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead; sleepers whose deadline passed wake up."""
        with self._changed:
            self._offset += seconds

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """``event.wait(timeout)`` with ``timeout`` in this clock's time."""
        deadline = self() + timeout
        me = threading.get_ident()
        with self._changed:
            self._sleepers[me] = (event, deadline)
            self._changed.notify_all()
        try:
            while True:
                remaining = deadline - self()
                if remaining <= 0:
                    return event.is_set()
                # An Event cannot notify a Condition: poll it, and the clock with it.
                if event.wait(min(remaining, self.POLL_S)):
                    return True
        finally:
            with self._changed:
                del self._sleepers[me]
                self._changed.notify_all()

    def wait_for_sleeper(self, timeout_s: float = 10.0) -> None:
        """Block until a thread sleeps in ``wait`` with nothing to wake it before its deadline:
        the worker has done everything it had to do and waits for its next timer."""
        end = time.monotonic() + timeout_s
        with self._changed:
            while not any(
                not event.is_set() and self() < deadline
                for event, deadline in self._sleepers.values()
            ):
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no thread went to sleep on the clock in {timeout_s} s")
                self._changed.wait(min(remaining, self.POLL_S))


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


class HangingSink:
    """A sink whose export blocks until ``release`` (or forever)."""

    def __init__(self, hang_calls: int | None = None) -> None:
        self.release_event = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.exported: list[TelemetryRecord] = []
        self._hang_calls = hang_calls  # None: every call hangs
        self._lock = threading.Lock()

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        with self._lock:
            self.calls += 1
            call = self.calls
        if self._hang_calls is None or call <= self._hang_calls:
            self.entered.set()
            self.release_event.wait()
        with self._lock:
            self.exported.extend(records)

    def shutdown(self, timeout_s: float) -> None:
        pass

    def release(self) -> None:
        self.release_event.set()


class RaisingSink:
    """A sink that raises on the first ``fail_calls`` exports, then collects."""

    def __init__(self, fail_calls: int) -> None:
        self.fail_calls = fail_calls
        self.calls = 0
        self.exported: list[TelemetryRecord] = []
        self.done = threading.Event()

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        self.calls += 1
        if self.calls <= self.fail_calls:
            raise RuntimeError("sink down")
        self.exported.extend(records)
        self.done.set()

    def shutdown(self, timeout_s: float) -> None:
        pass


class FileSink:
    """Appends one JSON line per record to a file (usable across fork)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        lines = []
        for record in records:
            data = asdict(record)
            data["kind"] = type(record).__name__
            data["pid"] = os.getpid()
            lines.append(json.dumps(data) + "\n")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(lines))

    def shutdown(self, timeout_s: float) -> None:
        pass


def read_lines(path: str) -> list[dict]:
    """The records a FileSink wrote."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
