"""One span of this instrumentation, with the attributes it will carry kept beside it.

The attributes are held in a plain dict while the span is open and written once at the end:
that is cheaper than one SDK call per attribute, and it lets a span that the user's sampler
dropped (or that no SDK recorded) still reach the aggregation processor, as a ``DirectSpan``
over the same dict. Attributes set after ``end()`` are not recorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.aggregation.direct import DirectEvent, DirectSpan
from opentelemetry_instrumentation_dbsql.errors import ErrorInfo, classify
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once

if TYPE_CHECKING:
    from opentelemetry_instrumentation_dbsql.runtime import Runtime

AttributeValue = str | bool | int | float


class SpanRecorder:
    """An open span and the attributes and events it will end with."""

    __slots__ = (
        "end_attributes",
        "ended",
        "events",
        "name",
        "parent",
        "runtime",
        "span",
        "start_attributes",
        "start_ns",
        "status_error",
    )

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        start_attributes: dict[str, AttributeValue],
        *,
        parent: Context | None = None,
        start_ns: int | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        record: bool = True,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.start_ns = start_ns if start_ns is not None else time.time_ns()
        self.start_attributes = start_attributes
        self.events: list[tuple[str, dict[str, AttributeValue], int]] = []
        self.status_error: str | None = None
        self.ended = False
        self.parent = parent  # read only by _direct_span
        if record and runtime.tracing_on():
            self.span: trace.Span = runtime.tracer.start_span(
                name,
                context=parent,
                kind=kind,
                attributes=start_attributes,
                start_time=self.start_ns,
            )
            self.end_attributes: dict[str, AttributeValue] = {}
        else:
            # Nobody records spans (or the user left this statement out of them): only the
            # aggregation processor reads this one. No SDK saw the start attributes, so the end
            # attributes join them in the same dict.
            self.span = trace.INVALID_SPAN
            self.end_attributes = start_attributes

    def context(self, base: Context | None = None) -> Context:
        """A context in which this span is the current span."""
        return trace.set_span_in_context(self.span, base)

    def set(self, key: str, value: AttributeValue | None) -> None:
        """Set an attribute written at the end; None values are skipped."""
        if value is not None and not self.ended:
            self.end_attributes[key] = value

    def add_event(self, name: str, attributes: dict[str, AttributeValue]) -> None:
        """Add an event, timestamped now."""
        self.events.append((name, attributes, time.time_ns()))

    def record_error(self, exc: BaseException, *, sqlstate: str | None = None) -> ErrorInfo:
        """Record a failure: ``error.type``, category, SQLSTATE, an exception event, error status.

        ``sqlstate`` is the one the protocol's status fields carried, if any; it wins over the
        message text. The exception message is sanitized like query text: server messages may
        quote literals.
        """
        info = classify(exc, sqlstate=sqlstate)
        self.end_attributes.setdefault(attr.ERROR_TYPE, info.error_type)
        self.end_attributes.setdefault(attr.ERROR_CATEGORY, info.category.value)
        self.end_attributes.setdefault(attr.ERROR_TERMINAL, info.terminal)
        if info.sqlstate:
            self.end_attributes.setdefault(attr.DB_RESPONSE_STATUS_CODE, info.sqlstate)
        message = self.runtime.safe_error_text(info.message)
        event: dict[str, AttributeValue] = {"exception.type": info.error_type}
        if message:
            event["exception.message"] = message
        self.add_event("exception", event)
        if self.status_error is None:
            self.status_error = message or info.error_type
        return info

    def mark_error(self, error_type: str, description: str) -> None:
        """Record a failure that is not an exception (e.g. a cancelled statement)."""
        self.end_attributes.setdefault(attr.ERROR_TYPE, error_type)
        if self.status_error is None:
            self.status_error = description

    def end(self, end_ns: int | None = None) -> None:
        """End the span; feed the aggregation processor directly when the SDK will not."""
        if self.ended:
            return
        self.ended = True
        end_time = end_ns if end_ns is not None else time.time_ns()
        span = self.span
        try:
            if span is trace.INVALID_SPAN:
                pass  # no SDK span: nothing to end
            elif span.is_recording():
                if self.end_attributes:
                    span.set_attributes(self.end_attributes)
                for name, event_attributes, timestamp in self.events:
                    span.add_event(name, event_attributes, timestamp)
                if self.status_error is not None:
                    span.set_status(Status(StatusCode.ERROR, self.status_error))
                span.end(end_time)
                if self.runtime.processor_sees(span):
                    return
            else:
                span.end(end_time)
            if self.runtime.wants_direct_feed():
                self.runtime.feed_processor(self._direct_span(end_time))
        except Exception as exc:
            log_failure_once("span-end", exc)

    def _direct_span(self, end_ns: int) -> DirectSpan:
        """This span as the aggregation processor reads it, for when the SDK does not pass it."""
        own = self.span
        context = None if own is trace.INVALID_SPAN else own.get_span_context()
        parent = self.parent
        return DirectSpan(
            self.name,
            self.all_attributes(),
            start_ns=self.start_ns,
            end_ns=end_ns,
            context=context if context is not None and context.is_valid else None,
            parent=trace.get_current_span(parent).get_span_context()
            if parent is not None
            else None,
            events=[DirectEvent(*event) for event in self.events] if self.events else (),
        )

    def all_attributes(self) -> Mapping[str, Any]:
        """Start and end attributes together."""
        if self.end_attributes is self.start_attributes:
            return self.start_attributes
        merged = dict(self.start_attributes)
        merged.update(self.end_attributes)
        return merged
