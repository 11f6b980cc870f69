"""Wrappers of the driver's internals: status polls, result pages, CloudFetch downloads,
retries, and the closing of result sets (the completion of a statement).

These hook private driver methods; the instrumentor installs each one only where the
installed connector has it, so a missing one costs only its detail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.hooks.context import SUPPRESS_HTTP_KEY, remember_statement
from opentelemetry_instrumentation_dbsql.hooks.cursor import finish_result_of
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.spans import AttributeValue, SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import (
    RESULT_TRACKER_ATTR,
    StatementTracker,
    closing_connection,
    current_statement,
)

Wrapped = Callable[..., Any]
_HANDLER_ATTR = "_otel_dbsql_handler"
_WIRE_BYTES_ATTR = "_otel_dbsql_wire_bytes"

# TSparkRowSetType values.
_ROW_SET_FORMAT = {
    0: "INLINE_ARROW",
    1: "COLUMNAR_INLINE",
    2: "COLUMNAR_INLINE",
    3: "EXTERNAL_LINKS",
}


def poll_for_status(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """One GetOperationStatus poll: counted with its latency on the current statement."""
    tracker = current_statement.get()
    if tracker is None:
        return wrapped(*args, **kwargs)
    started = time.perf_counter_ns()
    try:
        return wrapped(*args, **kwargs)
    finally:
        tracker.poll_count += 1
        tracker.poll_ns += time.perf_counter_ns() - started


def check_operation_state(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
) -> Any:
    """The driver's check of an operation status (the direct result's, every poll's): the
    server's own start and completion times, and on failure its ``sqlState``."""
    status = kwargs.get("get_operations_resp", args[1] if len(args) > 1 else None)
    try:
        result = wrapped(*args, **kwargs)
    except Exception:
        _note_protocol_sqlstate(status)
        _note_server_times(status)
        raise
    _note_server_times(status)
    return result


def _note_server_times(status: object) -> None:
    try:
        completed = getattr(status, "operationCompleted", None)
        if type(completed) is not int or completed <= 0:
            return  # still running, or a server that does not say
        started = getattr(status, "operationStarted", None)
        tracker = current_statement.get()
        # A batch's members each report their own times; no one pair describes the batch.
        if tracker is None or tracker.method == "executemany":
            return
        if type(started) is int and 0 < started <= completed:
            tracker.server_duration_ms = completed - started
    except Exception as exc:
        log_failure_once("server-times", exc)


def _note_protocol_sqlstate(status: object) -> None:
    # The driver raises with the message only; the SQLSTATE field would be lost.
    try:
        tracker = current_statement.get()
        sqlstate = getattr(status, "sqlState", None)
        if tracker is not None and isinstance(sqlstate, str) and tracker.protocol_sqlstate is None:
            tracker.protocol_sqlstate = sqlstate
    except Exception as exc:
        log_failure_once("protocol-sqlstate", exc)


def fill_results_buffer(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """One FetchResults round trip; also reached from ``fetchone`` and row iteration."""
    tracker = getattr(instance, RESULT_TRACKER_ATTR, None)
    if not isinstance(tracker, StatementTracker):
        tracker = current_statement.get()
    if tracker is None:
        return wrapped(*args, **kwargs)
    token = current_statement.set(tracker) if current_statement.get() is not tracker else None
    try:
        return wrapped(*args, **kwargs)
    finally:
        tracker.round_trips += 1
        if token is not None:
            current_statement.reset(token)


def build_queue(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """A result page arrived: its format, compression, inline bytes and CloudFetch links."""
    tracker = current_statement.get()
    if tracker is not None:
        try:
            row_set_type = kwargs.get("row_set_type", args[0] if args else None)
            t_row_set = kwargs.get("t_row_set", args[1] if len(args) > 1 else None)
            fmt = _ROW_SET_FORMAT.get(row_set_type) if isinstance(row_set_type, int) else None
            if fmt is not None:
                tracker.result_format = fmt
            lz4 = kwargs.get("lz4_compressed", args[5] if len(args) > 5 else None)
            if isinstance(lz4, bool) and fmt != "COLUMNAR_INLINE":
                tracker.compressed = lz4
            if t_row_set is not None:
                links = getattr(t_row_set, "resultLinks", None) or ()
                tracker.chunks_present += len(links)
                inline = 0
                for batch in getattr(t_row_set, "arrowBatches", None) or ():
                    inline += len(getattr(batch, "batch", b"") or b"")
                if inline:
                    with tracker.lock:
                        tracker.inline_bytes += inline
        except Exception as exc:
            log_failure_once("build-queue", exc)
    return wrapped(*args, **kwargs)


def retry_increment(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """One urllib3-level retry of the driver: counted on the current statement."""
    tracker = current_statement.get()
    result = wrapped(*args, **kwargs)
    # increment() raises when retries are exhausted, so reaching here means one more attempt.
    if tracker is not None and type(instance).__name__ == "DatabricksRetryPolicy":
        tracker.retries += 1
    return result


def result_set_close(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """A result set closes: its statement completes (RESULT span ends)."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        if getattr(instance, RESULT_TRACKER_ATTR, None) is not None:
            reason = (
                attr.CLOSE_CONNECTION_CLOSED
                if closing_connection.get()
                else attr.CLOSE_RESULT_CLOSED
            )
            finish_result_of(instance, reason)


# A CloudFetch download is scheduled (on the caller's thread): remember for whom.
download_handler_init = remember_statement(_HANDLER_ATTR, "download-init")


def log_download_metrics(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
) -> Any:
    """The compressed wire size of a CloudFetch file. The URL argument is never read."""
    try:
        size = kwargs.get("bytes_downloaded", args[1] if len(args) > 1 else None)
        if isinstance(size, int):
            setattr(instance, _WIRE_BYTES_ATTR, size)
    except Exception as exc:
        log_failure_once("download-metrics", exc)
    return wrapped(*args, **kwargs)


def download_run(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """One CloudFetch file download on the driver's thread pool: a CHUNK_DOWNLOAD span,
    parented to the statement although this thread has none of the caller's context."""
    tracker = getattr(instance, _HANDLER_ATTR, None)
    if not isinstance(tracker, StatementTracker):
        return wrapped(*args, **kwargs)
    try:
        attributes: dict[str, AttributeValue] = {
            attr.DB_SYSTEM_NAME: attr.DB_SYSTEM_VALUE,
            attr.SPAN_ROLE: attr.ROLE_CHUNK_DOWNLOAD,
        }
        attributes[attr.DB_OPERATION_NAME] = "download"
        # Downloads can start before execute() returns, when the tracker has no id yet; the
        # handler knows its statement on releases that pass it one.
        statement_id = getattr(instance, "statement_id", None) or tracker.statement_id
        if isinstance(statement_id, str) and statement_id:
            attributes[attr.STATEMENT_ID] = statement_id
        chunk_id = getattr(instance, "chunk_id", None)
        if isinstance(chunk_id, int):
            attributes[attr.CHUNK_INDEX] = chunk_id
        recorder = SpanRecorder(
            tracker.runtime,
            "download " + (tracker.summary or "result chunk"),
            attributes,
            parent=tracker.current_context(),
            kind=SpanKind.CLIENT,
            record=not tracker.excluded,
        )
        ctx = recorder.context()
        if tracker.runtime.options.suppress_http_spans:
            ctx = otel_context.set_value(SUPPRESS_HTTP_KEY, True, ctx)
        token = otel_context.attach(ctx)
        statement_token = current_statement.set(tracker)
        started = time.perf_counter_ns()
    except Exception as exc:
        log_failure_once("download-begin", exc)
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        current_statement.reset(statement_token)
        otel_context.detach(token)
        _download_failed(recorder, exc)
        raise
    current_statement.reset(statement_token)
    otel_context.detach(token)
    _download_done(tracker, instance, recorder, result, started)
    return result


def _download_done(
    tracker: StatementTracker, handler: Any, recorder: SpanRecorder, result: Any, started: int
) -> None:
    try:
        latency_ms = (time.perf_counter_ns() - started) // 1_000_000
        wire = getattr(handler, _WIRE_BYTES_ATTR, None)
        data = getattr(result, "file_bytes", None)
        rows = getattr(result, "row_count", None)
        if isinstance(wire, int):
            recorder.set(attr.CHUNK_WIRE_BYTES, wire)
        if isinstance(data, bytes | bytearray | memoryview):
            recorder.set(attr.CHUNK_BYTES, len(data))
        if isinstance(rows, int):
            recorder.set(attr.CHUNK_ROWS, rows)
        if attr.STATEMENT_ID not in recorder.start_attributes and tracker.statement_id:
            recorder.set(attr.STATEMENT_ID, tracker.statement_id)
        recorder.end()
        tracker.add_download(latency_ms, wire if isinstance(wire, int) else 0)
    except Exception as exc:
        log_failure_once("download-finish", exc)


def _download_failed(recorder: SpanRecorder, exc: BaseException) -> None:
    try:
        recorder.record_error(exc)
        recorder.end()
    except Exception as inner:
        log_failure_once("download-fail", inner)
