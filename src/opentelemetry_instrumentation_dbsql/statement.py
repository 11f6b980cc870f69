"""Per-statement and per-connection state held while the driver works.

A ``StatementTracker`` is created when a statement starts; the driver's internal hooks (polls,
result pages, CloudFetch downloads, retries) find it through a context variable on the
caller's thread, or through the result set / download handler it was attached to on other
threads, and add to its counters. Its two spans (STATEMENT, then RESULT) carry the totals.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.endpoint import Endpoint
from opentelemetry_instrumentation_dbsql.spans import AttributeValue, SpanRecorder

if TYPE_CHECKING:
    from opentelemetry_instrumentation_dbsql.connection_export import ExportRegistration
    from opentelemetry_instrumentation_dbsql.runtime import Runtime

# The statement the driver is working on for this thread / task, if any.
current_statement: ContextVar[StatementTracker | None] = ContextVar(
    "opentelemetry_instrumentation_dbsql_statement", default=None
)
# Set while executemany runs, so the driver's nested execute() calls make no spans of their own.
current_batch: ContextVar[StatementTracker | None] = ContextVar(
    "opentelemetry_instrumentation_dbsql_batch", default=None
)
# Set while Connection.close() runs, so results closed by it say why.
closing_connection: ContextVar[bool] = ContextVar(
    "opentelemetry_instrumentation_dbsql_closing", default=False
)

CONNECTION_STATE_ATTR = "_otel_dbsql"
RESULT_TRACKER_ATTR = "_otel_dbsql"
ASYNC_TRACKER_ATTR = "_otel_dbsql_async"
RUNNING_TRACKER_ATTR = "_otel_dbsql_running"


@dataclass(slots=True)
class ConnectionState:
    """What the instrumentation keeps on an instrumented connection."""

    runtime: Runtime
    endpoint: Endpoint
    session_id: str | None
    base_attributes: dict[str, AttributeValue]
    metric_attributes: dict[str, AttributeValue]
    metric_key: tuple[tuple[str, AttributeValue], ...] = ()
    export_handle: ExportRegistration | None = None
    closed: bool = False
    enabled: bool = True
    counted: bool = False  # added to db.client.connection.count; must be taken off at close
    extra: dict[str, Any] = field(default_factory=dict)


class StatementTracker:
    """Counters of one statement, filled by the driver hooks, written to its spans."""

    __slots__ = (
        "batch_events",
        "batch_modified",
        "cancelled",
        "chunk_bytes",
        "chunk_downloads",
        "chunk_initial_ms",
        "chunk_slowest_ms",
        "chunk_sum_ms",
        "chunks_present",
        "compressed",
        "connection",
        "excluded",
        "execute_bytes",
        "execute_retries",
        "fetch_calls",
        "fetch_ns",
        "inline_bytes",
        "local_statement_id",
        "lock",
        "method",
        "metric_attributes",
        "operation_name",
        "poll_count",
        "poll_ns",
        "prior_command",
        "protocol_sqlstate",
        "ready_ns",
        "reported_modified_rows",
        "result_done",
        "result_format",
        "result_recorder",
        "retries",
        "round_trips",
        "runtime",
        "server_duration_ms",
        "statement_id",
        "statement_recorder",
        "summary",
        "wire_bytes",
    )

    def __init__(
        self,
        connection: ConnectionState,
        recorder: SpanRecorder,
        operation_name: str | None,
        summary: str | None,
        target: str | None = None,
        *,
        excluded: bool = False,
        method: str = "execute",
    ) -> None:
        self.connection = connection
        self.method = method  # the driver method that ran it
        # Left out of spans and metrics by the user; its Databricks record is still kept.
        self.excluded = excluded
        self.runtime: Runtime = connection.runtime  # what records this statement
        self.statement_recorder = recorder
        self.result_recorder: SpanRecorder | None = None
        self.operation_name = operation_name
        self.summary = summary
        self.statement_id: str | None = None
        self.metric_attributes: dict[str, AttributeValue] = dict(connection.metric_attributes)
        if operation_name:
            self.metric_attributes[attr.DB_OPERATION_NAME] = operation_name
        if summary or target:
            # Bounded per meter provider: statement text can name tables without limit.
            limits = self.runtime.instruments
            if summary:
                self.metric_attributes[attr.DB_QUERY_SUMMARY] = limits.summaries.admit(summary)
            if target:
                self.metric_attributes[attr.DB_COLLECTION_NAME] = limits.collections.admit(target)
        self.poll_count = 0
        self.poll_ns = 0
        # The SQLSTATE of a failing response's status fields, read before the driver drops it.
        self.protocol_sqlstate: str | None = None
        # operationCompleted - operationStarted of the final status response: the server's own
        # time for the statement (Thrift only: the other backends do not send it).
        self.server_duration_ms: int | None = None
        # Modified rows the server reported for the latest execution where the driver's result
        # set keeps none (the SEA status, the kernel's count); None: not reported.
        self.reported_modified_rows: int | None = None
        # The driver's id for this statement is its own, not the server's (the kernel's
        # metadata calls): it is not recorded as the statement id.
        self.local_statement_id = False
        # The cursor's command id when the statement began (the previous statement's).
        self.prior_command: object = None
        self.retries = 0
        self.round_trips = 0
        self.result_format: str | None = None
        self.compressed: bool | None = None
        self.chunks_present = 0
        self.inline_bytes = 0
        self.fetch_calls = 0
        self.fetch_ns = 0
        self.ready_ns = 0
        self.cancelled = False
        self.result_done = False
        self.batch_events = 0
        # Totals at the end of the execute phase: the RESULT span reports only what came after.
        self.execute_bytes = 0
        self.execute_retries = 0
        # executemany: modified rows of the members so far (None until one reports a count).
        self.batch_modified: int | None = None
        # CloudFetch downloads finish on the driver's thread pool: their totals take a lock.
        self.lock = threading.Lock()
        self.chunk_downloads = 0
        self.chunk_sum_ms = 0
        self.chunk_initial_ms: int | None = None
        self.chunk_slowest_ms = 0
        self.chunk_bytes = 0
        self.wire_bytes = 0

    def current_context(self) -> Context:
        """Context for child spans: the RESULT span once it exists, else the STATEMENT span."""
        recorder = self.result_recorder or self.statement_recorder
        return recorder.context()

    def add_download(self, latency_ms: int, wire_bytes: int) -> None:
        """Fold one finished CloudFetch download into the totals."""
        with self.lock:
            self.chunk_downloads += 1
            self.chunk_sum_ms += latency_ms
            if self.chunk_initial_ms is None:
                self.chunk_initial_ms = latency_ms
            self.chunk_slowest_ms = max(self.chunk_slowest_ms, latency_ms)
            self.wire_bytes += wire_bytes

    def ensure_result_recorder(self) -> SpanRecorder:
        """The RESULT span, started (back-dated to when results were ready) on first need."""
        recorder = self.result_recorder
        if recorder is None:
            name = "FETCH " + (self.summary or self.operation_name or "databricks")
            # A child of the STATEMENT span, which carries the server and namespace.
            start_attributes: dict[str, AttributeValue] = {
                attr.DB_SYSTEM_NAME: attr.DB_SYSTEM_VALUE,
                attr.SPAN_ROLE: attr.ROLE_RESULT,
            }
            if self.statement_id:
                start_attributes[attr.STATEMENT_ID] = self.statement_id
            if self.operation_name:
                start_attributes[attr.DB_OPERATION_NAME] = self.operation_name
            recorder = SpanRecorder(
                self.runtime,
                name,
                start_attributes,
                parent=self.statement_recorder.context(),
                start_ns=self.ready_ns or time.time_ns(),
                record=not self.excluded,
            )
            self.result_recorder = recorder
        return recorder

    @property
    def metrics_on(self) -> bool:
        """Whether this statement's metrics are recorded."""
        return self.runtime.metrics_live and not self.excluded

    def result_bytes(self) -> int:
        """Result bytes received so far: inline Arrow batches plus CloudFetch wire bytes."""
        with self.lock:
            return self.inline_bytes + self.wire_bytes
