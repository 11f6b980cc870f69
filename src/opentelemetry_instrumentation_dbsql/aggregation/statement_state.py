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

_EMPTY: Final[V.Attrs] = {}
_NO_CHUNKS: Final = ChunkDetails()  # records are immutable: one instance serves them all
_RESULT_CLOSE_REASONS: Final = frozenset(
    {COMPLETION_CLOSED, COMPLETION_CONNECTION_CLOSED, COMPLETION_FAILED, COMPLETION_UNINSTRUMENTED}
)
# The statement's staging operation -> the wire format's DriverVolumeOperationType.
_VOLUME_OPERATION_TYPES: Final = {"PUT": "PUT", "GET": "GET", "REMOVE": "DELETE"}


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
        "terminal",
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
        self.terminal = False  # a terminal error was reported: the record is flushed at once
        self.last_seen = now
        self.complete = True
        # None: derived from the spans in build(); else set by whoever completed the statement.
        self.reason: str | None = None

    def build(self) -> StatementRecord:
        """Convert to the immutable record; tolerant of any attribute value.

        Each value is read from the span the contract puts it on (``attributes.py``); values
        both spans carry are combined: retries and bytes add up (each span counts its own
        phase), chunks present is the larger, descriptive values prefer the STATEMENT span.
        """
        s = self.stmt or _EMPTY
        r = self.result or _EMPTY
        sg = s.get
        rg = r.get
        count = V.as_count
        error = V.error(s) or V.error(r)  # execution precedes fetching: its error is first
        reason = self.reason
        if reason is None:
            close = rg(A.RESULT_CLOSE_REASON)
            if type(close) is str and close in _RESULT_CLOSE_REASONS:
                reason = close
            else:
                reason = COMPLETION_FAILED if error is not None else COMPLETION_CLOSED
        if type(self.stmt_start) is int:
            start = self.stmt_start
        elif type(self.result_start) is int:
            start = self.result_start
        else:
            start = 0
        session_id = self.session_id
        if session_id is None:
            session_id = V.as_str(sg(A.SESSION_ID)) or V.as_str(rg(A.SESSION_ID))
        compressed = sg(A.RESULT_COMPRESSED)
        if type(compressed) is not bool:
            compressed = rg(A.RESULT_COMPRESSED)
        is_async = sg(A.IS_ASYNC)
        initial = count(rg(A.RESULT_CHUNKS_INITIAL_MS))
        slowest = count(rg(A.RESULT_CHUNKS_SLOWEST_MS))
        present = V.larger(count(sg(A.RESULT_CHUNKS_PRESENT)), count(rg(A.RESULT_CHUNKS_PRESENT)))
        iterated = count(rg(A.RESULT_CHUNKS_ITERATED))
        download = count(rg(A.RESULT_CHUNKS_DOWNLOAD_MS))
        if initial is None and slowest is None and present is None and iterated is None:
            chunks = (
                _NO_CHUNKS if download is None else ChunkDetails(None, None, None, None, download)
            )
        else:
            chunks = ChunkDetails(initial, slowest, present, iterated, download)
        volume = sg(A.VOLUME_OPERATION)
        returned_rows = count(rg(A.DB_RESPONSE_RETURNED_ROWS))
        if returned_rows is None:  # a result that arrived whole is counted on the STATEMENT span
            returned_rows = count(sg(A.DB_RESPONSE_RETURNED_ROWS))
        return StatementRecord(
            session_id=session_id,
            statement_id=self.key,
            host=V.as_str(sg(A.SERVER_ADDRESS)) or V.as_str(rg(A.SERVER_ADDRESS)) or "",
            port=V.port(s) or V.port(r),
            operation_type=V.as_str(sg(A.OPERATION_TYPE)) or UNKNOWN,
            statement_type=V.as_str(sg(A.STATEMENT_TYPE)) or UNKNOWN,
            start_time_ns=start,
            execute_latency_ms=V.duration_ms(self.stmt_start, self.stmt_end) or 0,
            consumption_latency_ms=V.duration_ms(self.result_start, self.result_end),
            poll_count=count(sg(A.POLL_COUNT)) or 0,
            poll_latency_ms=count(sg(A.POLL_LATENCY_MS)) or 0,
            retry_count=(count(sg(A.RETRY_COUNT)) or 0) + (count(rg(A.RETRY_COUNT)) or 0),
            result_format=V.as_str(sg(A.RESULT_FORMAT)) or V.as_str(rg(A.RESULT_FORMAT)),
            compressed=compressed if type(compressed) is bool else None,
            returned_rows=returned_rows,
            rows_modified=count(sg(A.ROWS_MODIFIED)),
            result_bytes=V.add(count(sg(A.RESULT_BYTES)), count(rg(A.RESULT_BYTES))),
            fetch_round_trips=count(rg(A.RESULT_FETCH_ROUND_TRIPS)) or 0,
            chunks=chunks,
            is_async=is_async if type(is_async) is bool else False,
            batch_size=count(sg(A.DB_OPERATION_BATCH_SIZE)),
            cancelled=self.cancelled or sg(A.CANCELLED) is True or rg(A.CANCELLED) is True,
            error=error,
            complete=self.complete,
            completion_reason=reason,
            fetch_calls=count(rg(A.RESULT_FETCH_CALLS)) or 0,
            fetch_time_ms=count(rg(A.RESULT_FETCH_TIME_MS)) or 0,
            volume_operation_type=_VOLUME_OPERATION_TYPES.get(volume)
            if type(volume) is str
            else None,
        )
