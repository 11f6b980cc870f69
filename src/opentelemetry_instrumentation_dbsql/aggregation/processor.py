"""``StatementAggregationProcessor``: a SpanProcessor that turns this package's spans into one
immutable record per statement and per session open/close, exported in batches to a
``RecordSink``.

Sampling: the processor is attached to the SDK ``TracerProvider`` like any processor and sees
every span the SDK records. A statement whose span is not recorded still needs its record, so
the instrumentation feeds the processor itself, through ``on_end_direct``, with a plain
``direct.DirectSpan``, exactly when the SDK will not: when ``span.is_recording()``
is False (the sampler dropped it, or no SDK provider is configured) or when the span came from
a provider this processor is not attached to. Each span therefore reaches the processor once
(a STATEMENT or RESULT span fed twice anyway is counted as late and ignored).

Cost on the application thread: ``on_end`` reads the role and the few attributes that decide
what happens (statement id, session id, ``databricks.result.open``), then does constant work
under one short lock (the statement table) and one more to queue a completed statement. It
keeps references to the ended spans' attribute mappings; values are validated and records
built on the worker (or by the completing thread itself when the worker falls behind, see
``batcher``). It never calls the sink, never blocks on it, and swallows every exception (the
SDK would propagate it into the application's ``cursor.execute()``).

Ordering across threads: see ``statement_table`` (a statement completes when all its expected
spans have ended, in any order). Deadlines and fork: see ``batcher``. Interpreter exit: every
processor registers with ``process_events``, whose one hook shuts it down (flushing into the
sink) within the exit budget, whether or not an SDK provider also calls ``shutdown``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from time import monotonic
from typing import Final, cast

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql import process_events
from opentelemetry_instrumentation_dbsql.aggregation import _values as V
from opentelemetry_instrumentation_dbsql.aggregation.batcher import BatcherCounters, RecordBatcher
from opentelemetry_instrumentation_dbsql.aggregation.config import AggregationConfig, resolve_config
from opentelemetry_instrumentation_dbsql.aggregation.direct import DirectSpan
from opentelemetry_instrumentation_dbsql.aggregation.pending import (
    BatchStatementItem,
    ConnectionItem,
    PendingItem,
)
from opentelemetry_instrumentation_dbsql.aggregation.records import (
    LOCAL_STATEMENT_ID_PREFIX,
    RecordSink,
)
from opentelemetry_instrumentation_dbsql.aggregation.statement_state import StatementState
from opentelemetry_instrumentation_dbsql.aggregation.statement_table import (
    SWEEP_LIMIT,
    StatementTable,
)
from opentelemetry_instrumentation_dbsql.aggregation.stats import AggregationStats

_logger = logging.getLogger(__name__)

# What the SDK's TracerProvider.shutdown (also run at exit) gives the processor: the exit budget.
DEFAULT_SHUTDOWN_TIMEOUT_S: Final = process_events.EXIT_BUDGET_S

_Handler = Callable[[ReadableSpan, V.Attrs], None]


def local_statement_id(span_id: object, suffix: str = "") -> str | None:
    """The record key of a statement without a server id: ``span-`` + 16 hex digits."""
    if type(span_id) is not int or span_id <= 0:
        return None
    return f"{LOCAL_STATEMENT_ID_PREFIX}{span_id:016x}{suffix}"


class StatementAggregationProcessor(SpanProcessor):
    """Aggregates this package's spans into statement and connection records for ``sink``.

    Options left as None come from the ``OTEL_PYTHON_DBSQL_AGGREGATION_*`` environment
    variables, else from the defaults (batches of 100, flush every 5 s, at most 10,000 live
    statements, 30 min idle timeout, queue of 2048 records, 10 s export timeout). Invalid
    explicit values raise ``ValueError``. ``clock`` and ``wait`` (``time.monotonic`` and
    ``threading.Event.wait``) are the time source and the worker's timed wait: a test passes
    its own to move time itself.
    """

    def __init__(
        self,
        sink: RecordSink,
        *,
        max_batch_size: int | None = None,
        flush_interval_s: float | None = None,
        max_live_statements: int | None = None,
        statement_idle_timeout_s: float | None = None,
        max_queue_size: int | None = None,
        export_timeout_s: float | None = None,
        clock: Callable[[], float] = monotonic,
        wait: Callable[[threading.Event, float], object] = threading.Event.wait,
    ) -> None:
        if not isinstance(sink, RecordSink):
            raise TypeError(f"sink must implement RecordSink (export, shutdown), got {sink!r}")
        self._config = resolve_config(
            max_batch_size=max_batch_size,
            flush_interval_s=flush_interval_s,
            max_live_statements=max_live_statements,
            statement_idle_timeout_s=statement_idle_timeout_s,
            max_queue_size=max_queue_size,
            export_timeout_s=export_timeout_s,
        )
        self._sink = sink
        self._clock = clock
        idle = self._config.statement_idle_timeout_s
        self._table = StatementTable(self._config.max_live_statements)
        self._batcher = RecordBatcher(
            sink,
            self._config,
            tick=self._sweep_idle,
            tick_interval_s=min(1.0, max(0.005, idle / 4)),
            clock=clock,
            wait=wait,
        )
        self._handlers: dict[str, _Handler] = {
            A.ROLE_STATEMENT: self._on_statement,
            A.ROLE_RESULT: self._on_result,
            A.ROLE_CANCEL: self._on_cancel,
            A.ROLE_CREATE_SESSION: self._on_create_session,
            A.ROLE_DELETE_SESSION: self._on_delete_session,
        }
        self._local_ids = itertools.count(1)
        self._closed = False
        self._init_runtime()
        process_events.after_fork(self._after_fork_in_child)
        process_events.register_processor(self)

    def _init_runtime(self) -> None:
        self._counter_lock = threading.Lock()
        self._shutdown_lock = threading.Lock()
        self._shutdown_done = threading.Event()
        self._shutdown_result = False
        self._started = False
        self._ignored = 0
        self._after_shutdown = 0
        self._errors = 0

    def _after_fork_in_child(self) -> None:
        # The batcher resets itself: it registered with process_events before this processor.
        self._table.reset_after_fork()
        self._init_runtime()
        if self._closed:
            self._shutdown_done.set()

    @property
    def config(self) -> AggregationConfig:
        """The resolved options."""
        return self._config

    # --- SpanProcessor -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do: everything is read when spans end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Account for one ended span; also the entry point for spans the SDK did not record."""
        try:
            scope = span.instrumentation_scope
            if scope is None or scope.name != A.INSTRUMENTATION_SCOPE:
                self._count_ignored()
                return
            attrs = V.span_attributes(span)
            if attrs is None:
                self._count_ignored()
                return
            self._dispatch(span, attrs)
        except Exception:
            self._count_error()

    def on_end_direct(self, span: DirectSpan) -> None:
        """Account for a span of this package that the SDK did not hand to this processor
        (sampled out, no SDK, another provider): the instrumentation calls this itself."""
        try:
            self._dispatch(cast(ReadableSpan, span), span.attributes)
        except Exception:
            self._count_error()

    def _dispatch(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        role = attrs.get(A.SPAN_ROLE)
        handler = self._handlers.get(role) if type(role) is str else None
        if handler is None:
            self._count_ignored()
            return
        if self._closed:
            with self._counter_lock:
                self._after_shutdown += 1
            return
        if not self._started:
            self._started = True
            self._batcher.start()  # the idle sweep runs before any record exists
        handler(span, attrs)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every record completed before the call; False if the deadline passed first.

        After shutdown there is nothing left to flush: True. (``uninstrument()`` shuts the
        processor down but cannot take it out of the SDK provider, whose own force_flush must
        not fail because of it.)
        """
        if self._closed:
            return True
        try:
            return self._batcher.force_flush(timeout_millis / 1000.0)
        except Exception:
            _logger.warning("aggregation force_flush failed", exc_info=True)
            return False

    def shutdown(self) -> None:
        """``shutdown_with_timeout`` with the default deadline (5 s, the exit budget)."""
        self.shutdown_with_timeout(DEFAULT_SHUTDOWN_TIMEOUT_S)

    @property
    def is_shutdown(self) -> bool:
        """True once ``shutdown`` started."""
        return self._closed

    def shutdown_with_timeout(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Emit live statements as incomplete, flush, stop the worker and the sink.

        Returns within ``timeout_s`` whatever the sink does; True when everything was exported
        and the sink shut down in time. Idempotent; concurrent callers wait for the first one
        (up to their own deadline). Records dropped meanwhile are logged as one warning.
        """
        deadline = self._clock() + max(0.0, timeout_s)
        with self._shutdown_lock:
            first = not self._closed
            self._closed = True
        if not first:
            finished = self._shutdown_done.wait(max(0.0, deadline - self._clock()))
            return finished and self._shutdown_result
        result = False
        before: BatcherCounters | None = None
        try:
            before = self._batcher.counters()
            open_states = self._table.close()
            if open_states:
                self._batcher.put_many(open_states, False)
            result = self._batcher.shutdown(deadline)
        except Exception:
            _logger.warning("aggregation shutdown failed", exc_info=True)
        finally:
            self._shutdown_result = result
            self._shutdown_done.set()
        if before is not None:
            self._report_shutdown_drops(before, timeout_s)
        return result

    def _report_shutdown_drops(self, before: BatcherCounters, timeout_s: float) -> None:
        try:
            after = self._batcher.counters()
            lost = {
                "shutdown": after.dropped_shutdown - before.dropped_shutdown,
                "export_timeout": after.dropped_export_timeout - before.dropped_export_timeout,
                "sink_error": after.dropped_sink_error - before.dropped_sink_error,
                "queue_full": after.dropped_queue_full - before.dropped_queue_full,
                "invalid": after.dropped_invalid - before.dropped_invalid,
            }
            total = sum(lost.values())
            if total:
                _logger.warning(
                    "aggregation shutdown (%.1f s budget): %d records not exported (%s); "
                    "%d exported",
                    timeout_s,
                    total,
                    ", ".join(f"{k}={v}" for k, v in lost.items() if v),
                    after.records_exported - before.records_exported,
                )
        except Exception:
            _logger.debug("aggregation shutdown report failed", exc_info=True)

    def stats(self) -> AggregationStats:
        """A snapshot of the processor's counters."""
        b = self._batcher.counters()
        t = self._table
        with self._counter_lock:
            ignored, after, errors = self._ignored, self._after_shutdown, self._errors
        return AggregationStats(
            statement_records=b.statement_records,
            connection_records=b.connection_records,
            batches_exported=b.batches_exported,
            records_exported=b.records_exported,
            dropped_queue_full=b.dropped_queue_full,
            dropped_sink_error=b.dropped_sink_error,
            dropped_shutdown=b.dropped_shutdown,
            dropped_export_timeout=b.dropped_export_timeout,
            dropped_invalid=b.dropped_invalid,
            evicted_idle=t.evicted_idle,
            evicted_capacity=t.evicted_capacity,
            exports_abandoned=b.exports_abandoned,
            spans_ignored=ignored,
            spans_late=t.late_spans,
            spans_after_shutdown=after,
            on_end_errors=errors,
            live_statements=len(t),
            queued_records=b.queued,
        )

    # --- roles -------------------------------------------------------------------------------

    def _on_statement(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        sid = attrs.get(A.STATEMENT_ID)
        key = sid if type(sid) is str and sid else self._own_key(span)
        session = attrs.get(A.SESSION_ID)
        fresh = StatementState(
            key, session if type(session) is str and session else None, self._clock()
        )
        fresh.stmt = attrs
        fresh.stmt_start = span.start_time
        fresh.stmt_end = span.end_time
        if attrs.get(A.ERROR_TERMINAL) is True:
            fresh.terminal = True
        if attrs.get(A.DB_OPERATION_BATCH_SIZE) is not None:
            self._emit_batch_events(span, attrs)
        completed, evicted = self._table.statement_ended(fresh, attrs.get(A.RESULT_OPEN) is True)
        if evicted is not None:
            self._batcher.put(evicted, evicted.terminal)
        if completed is not None:
            self._batcher.put(completed, completed.terminal)

    def _on_result(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        sid = attrs.get(A.STATEMENT_ID)
        if type(sid) is str and sid:
            key = sid
        else:  # the RESULT span is a child of the STATEMENT span, which was keyed by span id
            parent = span.parent
            key = (parent is not None and local_statement_id(parent.span_id)) or self._own_key(span)
        session = attrs.get(A.SESSION_ID)
        fresh = StatementState(
            key, session if type(session) is str and session else None, self._clock()
        )
        fresh.result = attrs
        fresh.result_start = span.start_time
        fresh.result_end = span.end_time
        if attrs.get(A.ERROR_TERMINAL) is True:
            fresh.terminal = True
        completed, evicted = self._table.result_ended(fresh)
        if evicted is not None:
            self._batcher.put(evicted, evicted.terminal)
        if completed is not None:
            self._batcher.put(completed, completed.terminal)

    def _on_cancel(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        sid = attrs.get(A.STATEMENT_ID)
        if type(sid) is str and sid:
            self._table.cancel(sid, self._clock())
        else:
            self._count_ignored()

    def _on_create_session(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        item = ConnectionItem(A.ROLE_CREATE_SESSION, attrs, span.start_time, span.end_time)
        self._batcher.put(item, True)

    def _on_delete_session(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        session = attrs.get(A.SESSION_ID)
        items: list[PendingItem] = []
        if type(session) is str and session:
            items.extend(self._table.close_session(session))
        items.append(ConnectionItem(A.ROLE_DELETE_SESSION, attrs, span.start_time, span.end_time))
        self._batcher.put_many(items, True)

    def _emit_batch_events(self, span: ReadableSpan, attrs: V.Attrs) -> None:
        context = span.get_span_context()
        span_id = context.span_id if context is not None else None
        items: list[PendingItem] = []
        terminal = False
        own_id = attrs.get(A.STATEMENT_ID)
        for index, event in enumerate(span.events):
            if event.name != A.EVENT_BATCH_STATEMENT:
                continue
            event_attrs = V.plain(event.attributes) or {}
            if own_id and event_attrs.get(A.STATEMENT_ID) == own_id:
                continue  # the last member: the span's own record
            fallback = local_statement_id(span_id, f"-{index}") or (
                f"{LOCAL_STATEMENT_ID_PREFIX}local-{next(self._local_ids)}"
            )
            item = BatchStatementItem(attrs, event_attrs, event.timestamp, fallback)
            terminal = terminal or item.terminal
            items.append(item)
        if items:
            self._batcher.put_many(items, terminal)

    # --- helpers -----------------------------------------------------------------------------

    def _own_key(self, span: ReadableSpan) -> str:
        context: SpanContext | None = span.get_span_context()
        key = local_statement_id(context.span_id) if context is not None else None
        return key or f"{LOCAL_STATEMENT_ID_PREFIX}local-{next(self._local_ids)}"

    def _sweep_idle(self) -> None:
        idle = self._config.statement_idle_timeout_s
        while True:
            states = self._table.sweep_idle(self._clock(), idle)
            if states:
                self._batcher.put_many(states, any(s.terminal for s in states))
            if len(states) < SWEEP_LIMIT:
                return

    def _count_ignored(self) -> None:
        with self._counter_lock:
            self._ignored += 1

    def _count_error(self) -> None:
        with self._counter_lock:
            self._errors += 1
            first = self._errors == 1
        if first:
            _logger.warning("aggregation on_end failed; span ignored", exc_info=True)
        else:
            _logger.debug("aggregation on_end failed; span ignored", exc_info=True)
