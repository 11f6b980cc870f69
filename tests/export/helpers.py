"""Helpers of the export tests: fast configurations, records, real driver connections."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import databricks.sql

from opentelemetry_instrumentation_dbsql.aggregation.records import (
    ChunkDetails,
    ConnectionRecord,
    ErrorRecord,
    StatementRecord,
)
from opentelemetry_instrumentation_dbsql.export.circuit_breaker import BreakerConfig
from opentelemetry_instrumentation_dbsql.export.launcher import ThreadLauncher
from opentelemetry_instrumentation_dbsql.export.sink import (
    ConnectionHandle,
    DatabricksTelemetrySink,
    SinkConfig,
    native_telemetry_kwargs,
)
from opentelemetry_instrumentation_dbsql.export.telemetry_client import ClientConfig
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

FAST_CLIENT = ClientConfig(
    batch_deadline_s=3.0,
    attempt_timeout_s=1.0,
    backoff_initial_s=0.02,
    backoff_max_s=0.1,
    close_linger_s=0.05,
    close_flush_timeout_s=1.0,
)
FAST_BREAKER = BreakerConfig(
    window_size=10, min_calls=4, failure_ratio=0.5, open_seconds=0.5, half_open_successes=2
)
# Retry tests must not trip the breaker; the breaker tests use FAST_BREAKER.
LENIENT_BREAKER = BreakerConfig(window_size=50, min_calls=50)
FAST = SinkConfig(
    client=FAST_CLIENT,
    breaker=LENIENT_BREAKER,
    flag_fetch_timeout_s=1.5,
    connect_timeout_s=1.0,
)


def statement_record(
    session_id: str | None, host: str, port: int | None, **changes: Any
) -> StatementRecord:
    """A complete statement record; ``changes`` override fields."""
    record = StatementRecord(
        session_id=session_id,
        statement_id=str(uuid.uuid4()),
        host=host,
        port=port,
        operation_type="EXECUTE_STATEMENT",
        statement_type="QUERY",
        start_time_ns=time.time_ns(),
        execute_latency_ms=42,
        consumption_latency_ms=17,
        poll_count=3,
        poll_latency_ms=9,
        retry_count=2,
        result_format="EXTERNAL_LINKS",
        compressed=True,
        returned_rows=1000,
        rows_modified=None,
        result_bytes=123456,
        fetch_round_trips=4,
        chunks=ChunkDetails(
            initial_chunk_latency_ms=5,
            slowest_chunk_latency_ms=11,
            total_chunks_present=6,
            total_chunks_iterated=4,
            sum_chunks_download_time_ms=30,
        ),
        is_async=False,
        batch_size=None,
        cancelled=False,
        error=None,
        complete=True,
        completion_reason="closed",
    )
    return replace(record, **changes)


def connection_record(
    session_id: str | None, host: str, port: int | None, **changes: Any
) -> ConnectionRecord:
    """A CREATE_SESSION record; ``changes`` override fields."""
    record = ConnectionRecord(
        operation_type="CREATE_SESSION",
        session_id=session_id,
        host=host,
        port=port,
        http_path="/sql/1.0/warehouses/abc123",
        backend="thrift",
        auth_mechanism="PAT",
        start_time_ns=time.time_ns(),
        latency_ms=55,
        error=None,
    )
    return replace(record, **changes)


def error_record(category: str = "syntax_error") -> ErrorRecord:
    """A terminal error of the given category."""
    return ErrorRecord(
        error_type="databricks.sql.exc.ServerOperationError",
        category=category,
        terminal=True,
        sqlstate="42601",
    )


def open_connection(
    wh: LocalWarehouse,
    sink: DatabricksTelemetrySink | None,
    options: InstrumentationOptions | None = None,
    **connect_extra: Any,
) -> tuple[Any, ConnectionHandle | None]:
    """Connect the real driver as the instrumentor does: override, connect, register."""
    # One attempt: a test that fails must not leave the driver retrying a stopped server.
    kwargs = wh.connect_kwargs(
        _retry_stop_after_attempts_count=1, _socket_timeout=10, **connect_extra
    )
    override = native_telemetry_kwargs(kwargs, options)
    conn = databricks.sql.connect(**{**kwargs, **override})
    handle = sink.register_connection(conn, kwargs, options) if sink is not None else None
    return conn, handle


class RecordingLauncher(ThreadLauncher):
    """Starts the threads handed to it (at once, or on ``release`` when built with ``hold``)
    and keeps them: a test can tell whether a flag fetch was started and wait for it to end."""

    def __init__(self, *, hold: bool = False) -> None:
        super().__init__("test-launcher")
        self._kept_lock = threading.Lock()
        self._kept: list[threading.Thread] = []
        self._hold = hold

    def launch(self, thread: threading.Thread) -> None:
        with self._kept_lock:
            self._kept.append(thread)
            if self._hold:
                return
        thread.start()

    def release(self) -> None:
        """Start the held threads, and from now on every thread at once."""
        with self._kept_lock:
            self._hold = False
            held = [t for t in self._kept if t.ident is None]
        for thread in held:
            thread.start()

    @property
    def launched(self) -> int:
        """Threads handed over so far."""
        with self._kept_lock:
            return len(self._kept)

    def join(self, timeout_s: float = 10.0) -> None:
        """Wait until every thread handed over so far has ended."""
        with self._kept_lock:
            threads = list(self._kept)
        end = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
            assert not thread.is_alive(), f"{thread.name} still running after {timeout_s} s"


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _session_of(proto_log: Any) -> str | None:
    try:
        decoded = json.loads(proto_log) if isinstance(proto_log, str) else proto_log
        return str(decoded["entry"]["sql_driver_log"].get("session_id"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def session_payloads(wh: LocalWarehouse, *session_ids: str) -> list[dict[str, Any]]:
    """Telemetry POSTs carrying events of these sessions.

    Test processes run side by side on this machine and a port may be reused: a stray POST
    retried by another process's driver can reach this warehouse. Filtering by session keeps
    the assertions about this test's own traffic.
    """
    wanted = set(session_ids)
    return [
        p
        for p in wh.telemetry.payloads
        if any(_session_of(log) in wanted for log in p.get("protoLogs") or [])
    ]


def session_events(
    wh: LocalWarehouse, *session_ids: str, include_rejected: bool = False
) -> list[dict[str, Any]]:
    """Decoded events of these sessions (accepted POSTs only unless ``include_rejected``)."""
    wanted = set(session_ids)
    return [
        e
        for e in wh.telemetry.events(include_rejected=include_rejected)
        if e.get("session_id") in wanted
    ]
