"""The mutable accumulator of one statement, and its conversion into a ``StatementRecord``.

Application threads only store references (the ended spans' attribute mappings, which the SDK
makes immutable at span end, and the timestamps); reading, validating and converting the
values happens once, on the worker, in ``build``. A state is mutated only under the statement
table's lock while it is live, and never again once it has been handed to the batcher.
"""

from __future__ import annotations

from typing import ClassVar, Final

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import _values as V
from opentelemetry_instrumentation_dbsql.aggregation.records import (
    COMPLETION_CLOSED,
    COMPLETION_CONNECTION_CLOSED,
    COMPLETION_FAILED,
    COMPLETION_UNINSTRUMENTED,
    UNKNOWN,
    ChunkDetails,
    StatementRecord,
)

_RESULT_CLOSE_REASONS: Final = frozenset(
    {COMPLETION_CLOSED, COMPLETION_CONNECTION_CLOSED, COMPLETION_FAILED, COMPLETION_UNINSTRUMENTED}
)


class StatementState:
    """What the spans of one statement said so far."""

    __slots__ = (
        "cancelled",
        "complete",
        "key",
        "last_seen",
        "reason",
        "result",
        "result_end",
        "result_start",
        "session_id",
        "stmt",
        "stmt_end",
        "stmt_start",
    )

    KIND: ClassVar[int] = 0  # statement record (see batcher)

    def __init__(self, key: str, session_id: str | None, now: float) -> None:
        self.key = key
        self.session_id = session_id
        self.stmt: V.Attrs | None = None
        self.stmt_start: int | None = None
        self.stmt_end: int | None = None
        self.result: V.Attrs | None = None
        self.result_start: int | None = None
        self.result_end: int | None = None
        self.cancelled = False
        self.last_seen = now
        self.complete = True
        # None: derived from the spans in build(); else set by whoever completed the statement.
        self.reason: str | None = None

    @property
    def terminal(self) -> bool:
        """True when a terminal error was reported (the record is flushed at once)."""
        return V.is_terminal(self.stmt) or V.is_terminal(self.result)

    def build(self) -> StatementRecord:
        """Convert to the immutable record; tolerant of any attribute value."""
        s = self.stmt
        r = self.result
        error = V.error(s) or V.error(r)  # execution precedes fetching: its error is first
        reason = self.reason
        if reason is None:
            close = V.as_str(r.get(A.RESULT_CLOSE_REASON)) if r is not None else None
            if close in _RESULT_CLOSE_REASONS:
                reason = close
            else:
                reason = COMPLETION_FAILED if error is not None else COMPLETION_CLOSED
        if type(self.stmt_start) is int:
            start = self.stmt_start
        elif type(self.result_start) is int:
            start = self.result_start
        else:
            start = 0
        cancelled = (
            self.cancelled
            or (s is not None and s.get(A.CANCELLED) is True)
            or (r is not None and r.get(A.CANCELLED) is True)
        )
        return StatementRecord(
            session_id=self.session_id or V.first_str(s, r, A.SESSION_ID),
            statement_id=self.key,
            host=V.first_str(s, r, A.SERVER_ADDRESS) or "",
            port=V.port(s) or V.port(r),
            operation_type=V.first_str(s, r, A.OPERATION_TYPE) or UNKNOWN,
            statement_type=V.first_str(s, r, A.STATEMENT_TYPE) or UNKNOWN,
            start_time_ns=start,
            execute_latency_ms=V.duration_ms(self.stmt_start, self.stmt_end) or 0,
            consumption_latency_ms=V.duration_ms(self.result_start, self.result_end),
            poll_count=V.count(s, A.POLL_COUNT) or 0,
            poll_latency_ms=V.count(s, A.POLL_LATENCY_MS) or 0,
            retry_count=V.sum_counts(s, r, A.RETRY_COUNT) or 0,
            result_format=V.first_str(s, r, A.RESULT_FORMAT),
            compressed=V.first_bool(s, r, A.RESULT_COMPRESSED),
            returned_rows=V.count(r, A.DB_RESPONSE_RETURNED_ROWS),
            rows_modified=V.first_count(s, r, A.ROWS_MODIFIED),
            result_bytes=V.sum_counts(s, r, A.RESULT_BYTES),
            fetch_round_trips=V.count(r, A.RESULT_FETCH_ROUND_TRIPS) or 0,
            chunks=ChunkDetails(
                initial_chunk_latency_ms=V.first_count(r, s, A.RESULT_CHUNKS_INITIAL_MS),
                slowest_chunk_latency_ms=V.max_count(r, s, A.RESULT_CHUNKS_SLOWEST_MS),
                total_chunks_present=V.max_count(s, r, A.RESULT_CHUNKS_PRESENT),
                total_chunks_iterated=V.first_count(r, s, A.RESULT_CHUNKS_ITERATED),
                sum_chunks_download_time_ms=V.first_count(r, s, A.RESULT_CHUNKS_DOWNLOAD_MS),
            ),
            is_async=V.first_bool(s, r, A.IS_ASYNC) or False,
            batch_size=V.count(s, A.DB_OPERATION_BATCH_SIZE),
            cancelled=cancelled,
            error=error,
            complete=self.complete,
            completion_reason=reason,
            fetch_calls=V.count(r, A.RESULT_FETCH_CALLS) or 0,
            fetch_time_ms=V.count(r, A.RESULT_FETCH_TIME_MS) or 0,
        )
