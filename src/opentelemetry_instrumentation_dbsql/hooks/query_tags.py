"""Trace context into the workspace: the ``traceparent`` and statement tags in ``query_tags``."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.statement import StatementTracker
from opentelemetry_instrumentation_dbsql.tags import current_tags


def query_tags_with_context(
    tracker: StatementTracker, existing: object
) -> dict[str, str | None] | None:
    """Query tags carrying the traceparent and the statement tags, or None to leave as is."""
    try:
        span_context = tracker.statement_recorder.span.get_span_context()
        if not span_context.is_valid:
            return None
        merged: dict[str, str | None] = {}
        if isinstance(existing, Mapping):
            merged.update({str(k): (None if v is None else str(v)) for k, v in existing.items()})
        tags = current_tags()
        if tags:
            for key, value in tags.items():
                merged.setdefault(key, value)
        flags = int(span_context.trace_flags)
        merged["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"
        )
        return merged
    except Exception as exc:
        log_failure_once("query-tags", exc)
        return None
