"""The metric records of a statement: its duration when results are ready, its rows, chunks,
bytes and retries when it completes."""

from __future__ import annotations

from opentelemetry.context import Context

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.statement import StatementTracker


def record_statement_metrics(
    tracker: StatementTracker, duration_s: float, error_type: str | None, context: Context
) -> None:
    """The statement's duration, polls and execute-phase retries (callers check
    ``metrics_live`` first). ``context`` is the current one, for exemplars."""
    instruments = tracker.runtime.instruments
    attributes = tracker.metric_attributes
    if error_type is not None:
        attributes = dict(attributes)
        attributes[attr.ERROR_TYPE] = error_type
        sqlstate = tracker.statement_recorder.end_attributes.get(attr.DB_RESPONSE_STATUS_CODE)
        if isinstance(sqlstate, str):
            attributes[attr.DB_RESPONSE_STATUS_CODE] = sqlstate
    instruments.deferred.record(instruments.operation_duration, duration_s, attributes, context)
    if tracker.server_duration_ms is not None:
        instruments.deferred.record(
            instruments.server_duration, tracker.server_duration_ms / 1e3, attributes, context
        )
    connection = tracker.connection
    if tracker.poll_count:
        instruments.polls.add(
            tracker.poll_count, connection.metric_key, connection.metric_attributes
        )
    if tracker.retries:
        instruments.retries.add(
            tracker.retries, connection.metric_key, connection.metric_attributes
        )


def record_result_metrics(
    tracker: StatementTracker, rows: int | None, total_bytes: int, retries: int, context: Context
) -> None:
    """Returned rows, result chunks and bytes of a completed statement, and the retries of its
    fetch phase (those of the execute phase were counted when it ended). Callers check
    ``metrics_live`` first. ``context`` is the current one, for exemplars."""
    instruments = tracker.runtime.instruments
    if rows is not None:
        instruments.deferred.record(
            instruments.returned_rows, rows, tracker.metric_attributes, context
        )
    # Chunks as the connector means them: CloudFetch files, never inline result pages.
    chunks = tracker.chunk_downloads
    connection = tracker.connection
    if chunks:
        instruments.chunks.add(chunks, connection.metric_key, connection.metric_attributes)
    if total_bytes:
        instruments.result_bytes.add(
            total_bytes, connection.metric_key, connection.metric_attributes
        )
    if retries:
        instruments.retries.add(retries, connection.metric_key, connection.metric_attributes)
