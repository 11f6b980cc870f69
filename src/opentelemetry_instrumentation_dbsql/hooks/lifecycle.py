"""Begin and finish of a statement, shared by execute, executemany, async and metadata hooks.

Every function here catches its own failures: they run around driver calls and must never
change what the driver returns or raises.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from opentelemetry import context as otel_context

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql import query_text
from opentelemetry_instrumentation_dbsql.hooks.failed_response import sqlstate_of_failed_response
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import command_of, statement_id_of
from opentelemetry_instrumentation_dbsql.hooks.statement_metrics import (
    record_result_metrics,
    record_statement_metrics,
)
from opentelemetry_instrumentation_dbsql.hooks.user_hooks import (
    call_hook,
    call_response_hook,
    captured_parameters,
)
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.spans import AttributeValue, SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import (
    RESULT_TRACKER_ATTR,
    ConnectionState,
    StatementTracker,
)
from opentelemetry_instrumentation_dbsql.statement_info import StatementInfo
from opentelemetry_instrumentation_dbsql.tags import current_tags

_PARAM_VALUE_LIMIT = 256

# Queues that hold a whole inline result (4.x Thrift and SEA).
_INLINE_QUEUES = frozenset({"ArrowQueue", "ColumnQueue", "JsonQueue"})

_FORMAT_BY_QUEUE = {
    "ColumnQueue": "COLUMNAR_INLINE",
    "ArrowQueue": "INLINE_ARROW",
    "ThriftCloudFetchQueue": "EXTERNAL_LINKS",
    "CloudFetchQueue": "EXTERNAL_LINKS",
    "SeaCloudFetchQueue": "EXTERNAL_LINKS",
    # The Statement Execution API's inline JSON rows; the kernel's telemetry names the format so.
    "JsonQueue": "INLINE_JSON",
}


def _parameter_attributes(parameters: object) -> dict[str, AttributeValue]:
    result: dict[str, AttributeValue] = {}
    items: Sequence[tuple[object, object]]
    if isinstance(parameters, Mapping):
        items = list(parameters.items())
    elif isinstance(parameters, list | tuple):
        items = list(enumerate(parameters))
    else:
        return result
    for key, value in items[:64]:
        raw = getattr(value, "value", value)
        text = raw if isinstance(raw, str) else repr(raw)
        result[attr.DB_QUERY_PARAMETER_PREFIX + str(key)] = text[:_PARAM_VALUE_LIMIT]
    return result


def begin_statement(
    state: ConnectionState,
    *,
    operation: object,
    parameters: object,
    operation_type: str,
    statement_type: str,
    method_name: str | None = None,
    extra: Mapping[str, AttributeValue] | None = None,
    is_async: bool = False,
    batch: bool = False,
    method: str = "execute",
) -> StatementTracker:
    """Start the STATEMENT span and its tracker. ``batch``: several executions of the same
    statement (``executemany`` with two or more parameter sets)."""
    runtime = state.runtime
    options = runtime.options
    excluded = options.exclude_statements is not None and options.exclude_statements.excludes(
        operation
    )
    attributes = dict(state.base_attributes)
    attributes[attr.SPAN_ROLE] = attr.ROLE_STATEMENT
    attributes[attr.OPERATION_TYPE] = operation_type
    attributes[attr.STATEMENT_TYPE] = statement_type
    if is_async:
        attributes[attr.IS_ASYNC] = True
    summary: str | None = None
    target: str | None = None
    operation_name: str | None = method_name
    # Query text, summary and operation feed spans and metrics only (never the Databricks
    # export): with no SDK provider in use, a statement skips analysing its SQL.
    if operation is not None and (runtime.tracing_live or runtime.metrics_live) and not excluded:
        info = runtime.query_info(operation, parameterized=bool(parameters))
        summary = info.summary
        target = info.target
        operation_name = info.operation_name or method_name
        if batch:
            # The conventions name a batch of one operation "BATCH <operation>".
            summary = _batch_name(summary)
            operation_name = _batch_name(operation_name)
        if info.text:
            attributes[attr.DB_QUERY_TEXT] = info.text
        if summary:
            attributes[attr.DB_QUERY_SUMMARY] = summary
        if target:
            attributes[attr.DB_COLLECTION_NAME] = target
        if parameters and runtime.options.capture_parameters:
            attributes.update(_parameter_attributes(parameters))
    if operation_name:
        attributes[attr.DB_OPERATION_NAME] = operation_name
    tags = current_tags()
    if tags:
        for key, value in tags.items():
            attributes[attr.TAG_PREFIX + key] = value
    if extra:
        attributes.update(extra)
    if options.semconv_dup:
        attr.add_old_names(attributes)
    name = summary or _name_of(operation_name, state)
    recorder = SpanRecorder(runtime, name, attributes, record=not excluded)
    tracker = StatementTracker(
        state, recorder, operation_name, summary, target, excluded=excluded, method=method
    )
    if options.request_hook is not None:
        call_hook(
            "request_hook",
            options.request_hook,
            recorder,
            StatementInfo(
                method,
                operation_name,
                summary,
                parameters=captured_parameters(parameters) if options.capture_parameters else None,
            ),
        )
    return tracker


def _batch_name(name: str | None) -> str | None:
    if not name:
        return "BATCH"
    return name if name.startswith("BATCH") else f"BATCH {name}"[: query_text.SUMMARY_MAX_LENGTH]


def _name_of(operation_name: str | None, state: ConnectionState) -> str:
    target = state.endpoint.namespace or state.endpoint.address
    if operation_name:
        return f"{operation_name} {target}" if target else operation_name
    return target or attr.DB_SYSTEM_VALUE


def describe_result(tracker: StatementTracker, result_set: object) -> None:
    """Read what the driver did from the result set: format, compression, modified rows."""
    results = getattr(result_set, "results", None)
    if results is not None:
        fmt = _FORMAT_BY_QUEUE.get(type(results).__name__)
        if fmt is not None:
            tracker.result_format = fmt
    compressed = getattr(result_set, "lz4_compressed", None)
    if isinstance(compressed, bool) and tracker.result_format not in (None, "COLUMNAR_INLINE"):
        tracker.compressed = compressed
    elif tracker.result_format == "COLUMNAR_INLINE":
        tracker.compressed = False


def modified_rows(tracker: StatementTracker, result_set: object) -> int | None:
    """The rows the latest execution modified: the driver's result set's count, else the one
    the server reported to a hook (SEA status, kernel); None when neither says."""
    modified = getattr(result_set, "num_modified_rows", None)
    reported, tracker.reported_modified_rows = tracker.reported_modified_rows, None
    if type(modified) is int and modified >= 0:
        return modified
    return reported


def statement_id_for(tracker: StatementTracker, cursor: object) -> str | None:
    """The server's id of the statement, from the cursor: None when the driver made it up, or
    when the cursor still holds the previous statement's (no answer from the server yet: the
    kernel's whole run, or a statement that failed before it got one)."""
    if tracker.local_statement_id:
        return None
    prior = tracker.prior_command
    if prior is not None and command_of(cursor) is prior:
        return None
    return statement_id_of(cursor)


def _write_execute_totals(recorder: SpanRecorder, tracker: StatementTracker) -> None:
    # Zero counts are left out: every attribute costs the SDK a validation, and absent reads
    # as zero (to users and to the aggregation processor alike). Written to the dict directly:
    # this runs for every statement, before the span ends.
    end = recorder.end_attributes
    if tracker.poll_count:
        end[attr.POLL_COUNT] = tracker.poll_count
        end[attr.POLL_LATENCY_MS] = tracker.poll_ns // 1_000_000
    if tracker.retries:
        end[attr.RETRY_COUNT] = tracker.retries
    if tracker.result_format is not None:
        end[attr.RESULT_FORMAT] = tracker.result_format
    if tracker.compressed is not None:
        end[attr.RESULT_COMPRESSED] = tracker.compressed
    if tracker.chunks_present:
        end[attr.RESULT_CHUNKS_PRESENT] = tracker.chunks_present
    tracker.execute_bytes = tracker.result_bytes()
    tracker.execute_retries = tracker.retries
    if tracker.execute_bytes:
        end[attr.RESULT_BYTES] = tracker.execute_bytes


def _write_server_time(recorder: SpanRecorder, tracker: StatementTracker, end_ns: int) -> None:
    server_ms = tracker.server_duration_ms
    if server_ms is None:
        return
    recorder.set(attr.SERVER_DURATION_MS, server_ms)
    span_ms = (end_ns - recorder.start_ns) // 1_000_000
    recorder.set(attr.CLIENT_NETWORK_DURATION_MS, max(0, span_ms - server_ms))


def delivered_rows(result_set: object) -> int | None:
    """The row count of a result that arrived whole with the execute response (nothing left on
    the server, no CloudFetch links), else None: consuming it will take more round trips."""
    try:
        if getattr(result_set, "has_more_rows", True) is not False:
            return None
        results = getattr(result_set, "results", None)
        if type(results).__name__ not in _INLINE_QUEUES:
            return None
        total = getattr(results, "n_valid_rows", None)
        if total is None:
            total = getattr(results, "num_rows", None)  # the SEA JSON queue
        position = getattr(results, "cur_row_index", 0)
        fetched = getattr(result_set, "_next_row_index", 0)
        if type(total) is int and type(position) is int and type(fetched) is int:
            return max(0, total - position) + fetched
    except Exception as exc:
        log_failure_once("delivered-rows", exc)
    return None


def _identify(tracker: StatementTracker, cursor: object) -> SpanRecorder:
    """The statement id the server gave (known once the driver returns), on the span."""
    recorder = tracker.statement_recorder
    tracker.statement_id = statement_id_for(tracker, cursor)
    recorder.set(attr.STATEMENT_ID, tracker.statement_id)
    recorder.set(attr.SESSION_ID, tracker.connection.session_id)
    return recorder


def finish_statement_ok(tracker: StatementTracker, cursor: object) -> None:
    """The statement's results are ready: end the STATEMENT span. A result that arrived whole
    completes the statement here; otherwise a RESULT span will cover its consumption."""
    try:
        end_ns = time.time_ns()
        recorder = _identify(tracker, cursor)
        result_set = getattr(cursor, "active_result_set", None)
        rows: int | None = None
        if result_set is not None:
            describe_result(tracker, result_set)
            modified = modified_rows(tracker, result_set)
            if tracker.batch_modified is not None:
                recorder.set(attr.ROWS_MODIFIED, tracker.batch_modified)
            elif modified is not None:
                recorder.set(attr.ROWS_MODIFIED, modified)
            status = getattr(result_set, "status", None)
            if getattr(status, "name", None) == "CANCELLED":
                tracker.cancelled = True
            rows = delivered_rows(result_set)
        error_type: str | None = None
        if tracker.cancelled:
            recorder.set(attr.CANCELLED, True)
            recorder.add_event(attr.EVENT_CANCELLED, {})
            recorder.mark_error("cancelled", "statement cancelled")
            error_type = "cancelled"
        _write_execute_totals(recorder, tracker)
        _write_server_time(recorder, tracker, end_ns)
        result_follows = result_set is not None and rows is None and not tracker.cancelled
        if result_follows:
            recorder.set(attr.RESULT_OPEN, True)
        else:
            recorder.set(attr.DB_RESPONSE_RETURNED_ROWS, rows)
        tracker.ready_ns = end_ns
        call_response_hook(tracker, error_type)
        recorder.end(end_ns)
        # One read of the current context serves both records of a statement.
        context = otel_context.get_current() if tracker.metrics_on else None
        if context is not None:
            record_statement_metrics(
                tracker, (end_ns - recorder.start_ns) / 1e9, error_type, context
            )
        if result_follows:
            try:
                setattr(result_set, RESULT_TRACKER_ATTR, tracker)
                return
            except Exception as exc:
                log_failure_once("result-attach", exc)
        tracker.result_done = True
        if context is not None:
            record_result_metrics(tracker, rows, tracker.result_bytes(), 0, context)
    except Exception as exc:
        log_failure_once("statement-finish", exc)


def finish_statement_failed(tracker: StatementTracker, cursor: object, exc: BaseException) -> None:
    """The statement failed: record the error; no RESULT span follows."""
    try:
        end_ns = time.time_ns()
        recorder = _identify(tracker, cursor)
        recorder.set(attr.ROWS_MODIFIED, tracker.batch_modified)  # members done before it
        if tracker.cancelled:
            # The REST backends raise for a statement cancelled while it ran (Thrift returns).
            recorder.set(attr.CANCELLED, True)
            recorder.add_event(attr.EVENT_CANCELLED, {})
        sqlstate = tracker.protocol_sqlstate or sqlstate_of_failed_response(exc)
        info = recorder.record_error(exc, sqlstate=sqlstate)
        _write_execute_totals(recorder, tracker)
        _write_server_time(recorder, tracker, end_ns)
        tracker.result_done = True
        call_response_hook(tracker, info.error_type)
        recorder.end(end_ns)
        if tracker.metrics_on:
            record_statement_metrics(
                tracker,
                (end_ns - recorder.start_ns) / 1e9,
                info.error_type,
                otel_context.get_current(),
            )
    except Exception as inner:
        log_failure_once("statement-fail", inner)


def finish_result(tracker: StatementTracker, result_set: object, reason: str) -> None:
    """The statement completed: end its RESULT span with the consumption totals."""
    if tracker.result_done:
        return
    tracker.result_done = True
    try:
        recorder = tracker.ensure_result_recorder()
        rows = getattr(result_set, "_next_row_index", None)
        if isinstance(rows, int):
            recorder.set(attr.DB_RESPONSE_RETURNED_ROWS, rows)
        recorder.set(attr.SESSION_ID, tracker.connection.session_id)
        if tracker.fetch_calls:
            recorder.set(attr.RESULT_FETCH_CALLS, tracker.fetch_calls)
            recorder.set(attr.RESULT_FETCH_TIME_MS, tracker.fetch_ns // 1_000_000)
        if tracker.round_trips:
            recorder.set(attr.RESULT_FETCH_ROUND_TRIPS, tracker.round_trips)
        if tracker.chunks_present:
            recorder.set(attr.RESULT_CHUNKS_PRESENT, tracker.chunks_present)
        with tracker.lock:
            if tracker.chunk_downloads:
                recorder.set(attr.RESULT_CHUNKS_ITERATED, tracker.chunk_downloads)
                recorder.set(attr.RESULT_CHUNKS_DOWNLOAD_MS, tracker.chunk_sum_ms)
                recorder.set(attr.RESULT_CHUNKS_INITIAL_MS, tracker.chunk_initial_ms)
                recorder.set(attr.RESULT_CHUNKS_SLOWEST_MS, tracker.chunk_slowest_ms)
        total_bytes = tracker.result_bytes()
        # Each span reports its own phase; the statement's totals are their sums. Zero
        # counts are left out, as on the STATEMENT span.
        if total_bytes - tracker.execute_bytes:
            recorder.set(attr.RESULT_BYTES, total_bytes - tracker.execute_bytes)
        if tracker.retries - tracker.execute_retries:
            recorder.set(attr.RETRY_COUNT, tracker.retries - tracker.execute_retries)
        recorder.set(attr.RESULT_CLOSE_REASON, reason)
        recorder.end()
        if tracker.metrics_on:
            record_result_metrics(
                tracker,
                rows if isinstance(rows, int) else None,
                total_bytes,
                tracker.retries - tracker.execute_retries,
                otel_context.get_current(),
            )
    except Exception as exc:
        log_failure_once("result-finish", exc)
