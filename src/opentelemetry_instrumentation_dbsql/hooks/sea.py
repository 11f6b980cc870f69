"""Wrappers of the SEA backend's internals (``use_sea=True``, the Statement Execution REST API):
the status of a failed statement, the result it answered with, the chunk-link requests of
its external links, and the modified rows its status reports.

Status polls (``SeaDatabricksClient._poll_query``, one GetStatement) and result-set closes
use the Thrift backend's wrappers in ``internals``; CloudFetch downloads go through the same
download handler on every backend. Each wrapper here is installed only where the connector
has its hook point; one that is missing costs only its detail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context

from opentelemetry_instrumentation_dbsql.hooks.context import SUPPRESS_HTTP_KEY, remember_statement
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.statement import StatementTracker, current_statement

Wrapped = Callable[..., Any]
_FETCHER_ATTR = "_otel_dbsql_statement"


def note_sqlstate(tracker: StatementTracker | None, sqlstate: object) -> None:
    """Keep the SQLSTATE of a failing status; the first one reported wins."""
    if (
        tracker is not None
        and isinstance(sqlstate, str)
        and sqlstate
        and tracker.protocol_sqlstate is None
    ):
        tracker.protocol_sqlstate = sqlstate


def check_status(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``_check_command_not_in_failed_or_closed_state(status, command_id)``: the driver raises
    with the error code and message only; the status's ``sql_state`` would be lost."""
    try:
        return wrapped(*args, **kwargs)
    except Exception:
        try:
            status = kwargs.get("status", args[0] if args else None)
            note_sqlstate(current_statement.get(), getattr(status, "sql_state", None))
        except Exception as exc:
            log_failure_once("sea-sqlstate", exc)
        raise


def statement_response(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``ExecuteStatementResponse.from_dict`` / ``GetStatementResponse.from_dict``: the rows a
    finished statement modified (``status.num_modified_rows``), which the driver drops."""
    result = wrapped(*args, **kwargs)
    tracker = current_statement.get()
    if tracker is not None:
        try:
            data = kwargs.get("data", args[0] if args else None)
            status = data.get("status") if isinstance(data, Mapping) else None
            modified = status.get("num_modified_rows") if isinstance(status, Mapping) else None
            if type(modified) is int and modified >= 0:
                tracker.reported_modified_rows = modified
        except Exception as exc:
            log_failure_once("sea-response", exc)
    return result


def build_queue(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``SeaResultSetQueueFactory.build_queue``: the Arrow bytes that came inline (an
    ``attachment``) or the number of external links (CloudFetch files) the result has."""
    tracker = current_statement.get()
    if tracker is not None:
        try:
            result_data = kwargs.get("result_data", args[0] if args else None)
            manifest = kwargs.get("manifest", args[1] if len(args) > 1 else None)
            if getattr(manifest, "format", None) == "ARROW_STREAM":
                attachment = getattr(result_data, "attachment", None)
                if isinstance(attachment, bytes | bytearray):
                    with tracker.lock:
                        tracker.inline_bytes += len(attachment)
                else:
                    chunks = getattr(manifest, "total_chunk_count", None)
                    if type(chunks) is int and chunks > 0:
                        tracker.chunks_present += chunks
        except Exception as exc:
            log_failure_once("sea-build-queue", exc)
    return wrapped(*args, **kwargs)


# A ``LinkFetcher`` is made for a result's external links (on the caller's thread): remember
# for which statement, before its worker thread starts.
link_fetcher_init = remember_statement(_FETCHER_ATTR, "sea-fetcher-init")


def link_fetcher_worker(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``LinkFetcher._worker_loop``, on the fetcher's own thread: its chunk-link requests (and
    their retries) count toward the statement, and their HTTP spans are suppressed like the
    statement's other requests."""
    tracker = getattr(instance, _FETCHER_ATTR, None)
    if not isinstance(tracker, StatementTracker):
        return wrapped(*args, **kwargs)
    try:
        ctx = tracker.current_context()
        if tracker.runtime.options.suppress_http_spans:
            ctx = otel_context.set_value(SUPPRESS_HTTP_KEY, True, ctx)
        token = otel_context.attach(ctx)
        statement_token = current_statement.set(tracker)
    except Exception as exc:
        log_failure_once("sea-fetcher-begin", exc)
        return wrapped(*args, **kwargs)
    try:
        return wrapped(*args, **kwargs)
    finally:
        current_statement.reset(statement_token)
        otel_context.detach(token)


def chunk_links(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``SeaDatabricksClient.get_chunk_links``: one GetStatementResultChunk round trip."""
    tracker = current_statement.get()
    try:
        return wrapped(*args, **kwargs)
    finally:
        if tracker is not None:
            with tracker.lock:
                tracker.round_trips += 1
