"""Spans that the instrumentation feeds to the aggregation processor itself.

The SDK passes a span to processors only when it records it. When the sampler dropped the
span, or no SDK ``TracerProvider`` is configured, or the span came from a provider the
aggregation processor is not attached to, the instrumentation calls
``processor.on_end_direct(DirectSpan(...))`` with the same attributes it would have set, so
every statement still yields its record. It must do so only in those cases (for a recording
span of the processor's own provider the SDK already calls ``on_end``): each span reaches the
processor exactly once.

``make_readable_span`` builds the SDK ``ReadableSpan`` of such a span instead, for callers that
go through the public ``on_end``.

A RESULT span of a statement that has no server statement id is matched to its STATEMENT span
by parent span id: pass the STATEMENT span's context (``statement_span.get_span_context()``)
as ``parent`` of the RESULT span.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_dbsql.attributes import INSTRUMENTATION_SCOPE, SPAN_ROLE
from opentelemetry_instrumentation_dbsql.version import __version__

SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)
_UNSET = Status(StatusCode.UNSET)


class DirectEvent:
    """An event of a ``DirectSpan``: what the processor reads of an SDK ``Event``."""

    __slots__ = ("attributes", "name", "timestamp")

    def __init__(self, name: str, attributes: Mapping[str, AttributeValue], timestamp: int) -> None:
        self.name = name
        self.attributes = attributes
        self.timestamp = timestamp


class DirectSpan:
    """An ended span of this package handed to ``StatementAggregationProcessor.on_end_direct``.

    It carries only what the processor reads, as plain values: building an SDK
    ``ReadableSpan`` for a span the SDK never saw costs more than the processor's own work.
    """

    __slots__ = ("attributes", "context", "end_time", "events", "name", "parent", "start_time")

    instrumentation_scope = SCOPE

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, object],
        *,
        start_ns: int,
        end_ns: int,
        context: SpanContext | None,
        parent: SpanContext | None = None,
        events: Sequence[DirectEvent] = (),
    ) -> None:
        self.name = name
        self.attributes = attributes
        self.start_time = start_ns
        self.end_time = end_ns
        self.context = context
        self.parent = parent
        self.events = events

    def get_span_context(self) -> SpanContext | None:
        """The span's own context (None when it had no valid one)."""
        return self.context


# The module-level generator, not a private one: it is reseeded in forked children.
def _new_span_id() -> int:
    span_id = random.getrandbits(64)
    while span_id == INVALID_SPAN_ID:
        span_id = random.getrandbits(64)
    return span_id


def _new_trace_id() -> int:
    trace_id = random.getrandbits(128)
    while trace_id == INVALID_TRACE_ID:
        trace_id = random.getrandbits(128)
    return trace_id


def make_readable_span(
    name: str,
    role: str,
    attributes: Mapping[str, AttributeValue] | None,
    *,
    start_ns: int,
    end_ns: int,
    events: Sequence[Event] = (),
    status: Status | None = None,
    parent: SpanContext | None = None,
    context: SpanContext | None = None,
    kind: SpanKind = SpanKind.CLIENT,
) -> ReadableSpan:
    """An ended span of this package's scope, as the SDK would have passed it to ``on_end``.

    ``attributes`` are copied and ``databricks.span.role`` is set to ``role``. ``context`` is
    the span's own context (for example the non-recording span's, which the SDK gave valid
    ids); when it is None or invalid a new, not-sampled context is generated, in the parent's
    trace if the parent is valid. The resource is the empty one (``Resource.create`` would
    cost more than the whole ``on_end``).
    """
    attrs: dict[str, AttributeValue] = dict(attributes) if attributes else {}
    attrs[SPAN_ROLE] = role
    if context is None or not context.is_valid:
        trace_id = parent.trace_id if parent is not None and parent.is_valid else _new_trace_id()
        context = SpanContext(
            trace_id=trace_id,
            span_id=_new_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=Resource.get_empty(),
        attributes=attrs,
        events=tuple(events),
        kind=kind,
        status=status if status is not None else _UNSET,
        start_time=start_ns,
        end_time=end_ns,
        instrumentation_scope=SCOPE,
    )
