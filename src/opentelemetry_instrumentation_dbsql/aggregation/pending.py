"""Items waiting in the batcher's queue; each becomes one record on the worker (``build``).

Converting on the worker keeps validation and record construction off application threads.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import _values as V
from opentelemetry_instrumentation_dbsql.aggregation.records import (
    COMPLETION_CLOSED,
    COMPLETION_FAILED,
    UNKNOWN,
    ChunkDetails,
    ConnectionRecord,
    StatementRecord,
    TelemetryRecord,
)

KIND_STATEMENT = 0
KIND_CONNECTION = 1

_OPERATION_EXECUTE = "EXECUTE_STATEMENT"
_NS_PER_MS = 1_000_000


class PendingItem(Protocol):
    """Anything the batcher can turn into a record."""

    @property
    def KIND(self) -> int:
        """KIND_STATEMENT or KIND_CONNECTION."""
        ...

    def build(self) -> TelemetryRecord:
        """The immutable record (called once, on the worker)."""
        ...


class ConnectionItem:
    """An ended CREATE_SESSION or DELETE_SESSION span."""

    __slots__ = ("attrs", "end_ns", "operation_type", "start_ns")

    KIND: ClassVar[int] = KIND_CONNECTION

    def __init__(
        self, operation_type: str, attrs: V.Attrs, start_ns: int | None, end_ns: int | None
    ) -> None:
        self.operation_type = operation_type
        self.attrs = attrs
        self.start_ns = start_ns
        self.end_ns = end_ns

    def build(self) -> ConnectionRecord:
        """The connection record."""
        a = self.attrs
        return ConnectionRecord(
            operation_type=self.operation_type,
            session_id=V.as_str(a.get(A.SESSION_ID)),
            host=V.as_str(a.get(A.SERVER_ADDRESS)) or "",
            port=V.port(a),
            http_path=V.as_str(a.get(A.HTTP_PATH)),
            backend=V.as_str(a.get(A.BACKEND)),
            auth_mechanism=V.as_str(a.get(A.AUTH_MECH)),
            start_time_ns=self.start_ns if type(self.start_ns) is int else 0,
            latency_ms=V.duration_ms(self.start_ns, self.end_ns) or 0,
            error=V.error(a),
        )


class BatchStatementItem:
    """One inner execution of ``executemany`` reported as a span event (a complete statement)."""

    __slots__ = ("event_attrs", "fallback_id", "span_attrs", "timestamp_ns")

    KIND: ClassVar[int] = KIND_STATEMENT

    def __init__(
        self,
        span_attrs: V.Attrs,
        event_attrs: V.Attrs,
        timestamp_ns: int | None,
        fallback_id: str,
    ) -> None:
        self.span_attrs = span_attrs
        self.event_attrs = event_attrs
        self.timestamp_ns = timestamp_ns
        self.fallback_id = fallback_id

    @property
    def terminal(self) -> bool:
        """True when this execution failed with a terminal error."""
        return V.is_terminal(self.event_attrs)

    def build(self) -> StatementRecord:
        """The statement record of this inner execution."""
        s = self.span_attrs
        e = self.event_attrs
        latency = V.as_count(e.get(A.BATCH_LATENCY_MS)) or 0
        ts = self.timestamp_ns
        error = V.error(e)
        return StatementRecord(
            session_id=V.as_str(s.get(A.SESSION_ID)),
            statement_id=V.as_str(e.get(A.STATEMENT_ID)) or self.fallback_id,
            host=V.as_str(s.get(A.SERVER_ADDRESS)) or "",
            port=V.port(s),
            operation_type=_OPERATION_EXECUTE,
            statement_type=V.as_str(s.get(A.STATEMENT_TYPE)) or UNKNOWN,
            start_time_ns=max(0, ts - latency * _NS_PER_MS) if type(ts) is int else 0,
            execute_latency_ms=latency,
            consumption_latency_ms=None,
            poll_count=V.count(e, A.POLL_COUNT) or 0,
            poll_latency_ms=V.count(e, A.POLL_LATENCY_MS) or 0,
            retry_count=V.count(e, A.RETRY_COUNT) or 0,
            result_format=None,
            compressed=None,
            returned_rows=None,
            rows_modified=V.count(e, A.ROWS_MODIFIED),
            result_bytes=None,
            fetch_round_trips=0,
            chunks=ChunkDetails(),
            is_async=False,
            batch_size=V.count(s, A.DB_OPERATION_BATCH_SIZE),
            cancelled=e.get(A.CANCELLED) is True,
            error=error,
            complete=True,
            completion_reason=COMPLETION_FAILED if error is not None else COMPLETION_CLOSED,
        )


class BuiltItem:
    """A record already built by the thread that completed it (see ``RecordBatcher.put``)."""

    __slots__ = ("KIND", "record")

    def __init__(self, record: TelemetryRecord) -> None:
        self.record = record
        self.KIND = KIND_CONNECTION if type(record) is ConnectionRecord else KIND_STATEMENT

    def build(self) -> TelemetryRecord:
        """The record."""
        return self.record
