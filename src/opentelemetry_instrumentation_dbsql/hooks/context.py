"""The OpenTelemetry context around a driver call: the statement's span current, the
driver's own HTTP spans suppressed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.spans import SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import StatementTracker, current_statement

# The key urllib3/requests instrumentations check (what suppress_http_instrumentation() sets).
SUPPRESS_HTTP_KEY: str = getattr(
    otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation"
)


def enter_context(recorder: SpanRecorder, tracker: StatementTracker) -> tuple[object, object]:
    """Make the span current (and HTTP spans suppressed) for the driver call."""
    runtime = tracker.runtime
    if not (runtime.tracing_live or runtime.metrics_live):
        # No SDK: no span or HTTP telemetry of anyone's to parent or suppress.
        return None, current_statement.set(tracker)
    ctx = recorder.context()
    if runtime.options.suppress_http_spans:
        ctx = otel_context.set_value(SUPPRESS_HTTP_KEY, True, ctx)
    return otel_context.attach(ctx), current_statement.set(tracker)


def exit_context(tokens: tuple[object, object]) -> None:
    """Undo ``enter_context``."""
    try:
        current_statement.reset(tokens[1])  # type: ignore[arg-type]
        if tokens[0] is not None:
            otel_context.detach(tokens[0])  # type: ignore[arg-type]
    except Exception as exc:
        log_failure_once("context-exit", exc)


def remember_statement(attribute: str, kind: str) -> Callable[..., Any]:
    """A wrapper of a constructor that runs on the caller's thread for work another thread does
    later (a download, a link fetch): it stores the current statement on the new object under
    ``attribute``, where that thread, which has none of the caller's context, finds it."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        tracker = current_statement.get()
        if tracker is not None:
            try:
                setattr(instance, attribute, tracker)
            except Exception as exc:
                log_failure_once(kind, exc)
        return result

    return wrapper
