"""The application's ``request_hook`` and ``response_hook``: called safely, with a read-only
``StatementInfo``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry_instrumentation_dbsql.log_once import log_hook_failure_once
from opentelemetry_instrumentation_dbsql.spans import SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import StatementTracker
from opentelemetry_instrumentation_dbsql.statement_info import StatementHook, StatementInfo


def call_hook(name: str, hook: StatementHook, recorder: SpanRecorder, info: StatementInfo) -> None:
    """A hook of the user's: called for recording spans only; its failure never escapes."""
    span = recorder.span
    if not span.is_recording():
        return
    try:
        hook(span, info)
    except Exception as exc:
        log_hook_failure_once(name, exc)


def call_response_hook(tracker: StatementTracker, error_type: str | None = None) -> None:
    """Tell the user's ``response_hook`` that the statement completed (before its span ends)."""
    hook = tracker.runtime.options.response_hook
    if hook is None:
        return
    call_hook(
        "response_hook",
        hook,
        tracker.statement_recorder,
        StatementInfo(
            tracker.method,
            tracker.operation_name,
            tracker.summary,
            statement_id=tracker.statement_id,
            error_type=error_type,
        ),
    )


def captured_parameters(parameters: object) -> Mapping[str, object] | Sequence[object] | None:
    if isinstance(parameters, Mapping | list | tuple):
        return parameters
    return None
