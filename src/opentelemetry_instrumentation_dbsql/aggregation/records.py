"""The immutable records the aggregation processor emits, and the sink protocol that takes them.

A record holds only identifiers, enumerations and numbers: never SQL text, parameter values,
error messages, table names, tokens or URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

# ``StatementRecord.completion_reason`` values.
COMPLETION_CLOSED: Final = "closed"  # result closed, cursor closed or re-executed, no result
COMPLETION_CONNECTION_CLOSED: Final = "connection_closed"
COMPLETION_FAILED: Final = "failed"
COMPLETION_UNINSTRUMENTED: Final = "uninstrumented"  # result closed by a path not instrumented
COMPLETION_EVICTED_IDLE: Final = "evicted_idle"  # incomplete: no span for the idle timeout
COMPLETION_EVICTED_CAPACITY: Final = "evicted_capacity"  # incomplete: too many live statements
COMPLETION_SHUTDOWN: Final = "shutdown"  # incomplete: still open when the processor shut down

# A statement that never received a server statement id (it failed before the server assigned
# one) is keyed by its STATEMENT span: ``statement_id`` is this prefix + 16 hex digits of the
# span id. Exporters that must send only server ids test for this prefix.
LOCAL_STATEMENT_ID_PREFIX: Final = "span-"

# ``StatementRecord.operation_type`` / ``statement_type`` when the span did not say.
UNKNOWN: Final = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """The first error of a statement or connection."""

    error_type: str  # qualified exception class name, e.g. "databricks.sql.exc.Error"
    category: str  # errors.ErrorCategory value, e.g. "syntax_error"
    terminal: bool
    sqlstate: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkDetails:
    """Result chunks of a statement (CloudFetch files, or inline result pages)."""

    initial_chunk_latency_ms: int | None = None
    slowest_chunk_latency_ms: int | None = None
    total_chunks_present: int | None = None
    total_chunks_iterated: int | None = None
    sum_chunks_download_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StatementRecord:
    """Everything that happened to one statement.

    ``statement_id`` is the server's statement id, or ``LOCAL_STATEMENT_ID_PREFIX`` + span id
    when the server never assigned one. Counters the spans did not carry are 0; values that
    were never known are None.
    """

    session_id: str | None
    statement_id: str
    host: str  # server.address the statement ran against (export routing key)
    port: int | None
    operation_type: str  # EXECUTE_STATEMENT, LIST_CATALOGS, LIST_SCHEMAS, LIST_TABLES, ...
    statement_type: str  # QUERY | SQL | UPDATE | METADATA
    start_time_ns: int
    execute_latency_ms: int  # until results are ready (result_set_ready_latency)
    consumption_latency_ms: int | None  # result set open until completion
    poll_count: int
    poll_latency_ms: int
    retry_count: int
    result_format: str | None  # INLINE_ARROW | EXTERNAL_LINKS | COLUMNAR_INLINE
    compressed: bool | None
    returned_rows: int | None
    rows_modified: int | None
    result_bytes: int | None
    fetch_round_trips: int
    chunks: ChunkDetails
    is_async: bool
    batch_size: int | None
    cancelled: bool
    error: ErrorRecord | None
    complete: bool  # False when evicted before completion
    completion_reason: str  # one of the COMPLETION_* values
    fetch_calls: int = 0  # fetchone/fetchmany/fetchall/... calls on the result
    fetch_time_ms: int = 0  # time spent inside those calls
    # A staging (volume) statement's transfer, as the wire format's DriverVolumeOperationType:
    # PUT | GET | DELETE (the statement's REMOVE). The volume path is never kept.
    volume_operation_type: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """Opening (CREATE_SESSION) or closing (DELETE_SESSION) of a session."""

    operation_type: str  # CREATE_SESSION | DELETE_SESSION
    session_id: str | None
    host: str
    port: int | None
    http_path: str | None
    backend: str | None  # thrift | sea
    auth_mechanism: str | None  # PAT | OAUTH | OTHER
    start_time_ns: int
    latency_ms: int
    error: ErrorRecord | None


TelemetryRecord = StatementRecord | ConnectionRecord


@runtime_checkable
class RecordSink(Protocol):
    """Receives batches of records on the aggregation processor's background worker.

    ``export`` may block (the worker waits for it up to the flush deadline) and may raise
    (the processor counts the batch as failed). It is never called on an application thread,
    and never concurrently with itself, except that an export abandoned after the export
    timeout may still be running when the next one starts. Instrumentation is suppressed on
    the calling thread, so HTTP calls made by the sink create no spans.
    """

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        """Take one batch of records."""

    def shutdown(self, timeout_s: float) -> None:
        """Release resources; return within ``timeout_s``."""
