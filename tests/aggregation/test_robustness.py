"""on_end never raises, whatever the span holds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import CollectingSink, StatementRecord

from .helpers import direct_span, statement_attrs

SCOPE = InstrumentationScope(A.INSTRUMENTATION_SCOPE)

GARBAGE: list[Any] = [
    None,
    "",
    "text",
    -5,
    2**80,
    math.nan,
    math.inf,
    -0.5,
    True,
    [1, 2],
    ("a", "b"),
    b"bytes",
    {"nested": 1},
    object(),
]
NAMES = [
    A.STATEMENT_ID,
    A.SESSION_ID,
    A.SERVER_ADDRESS,
    A.SERVER_PORT,
    A.OPERATION_TYPE,
    A.STATEMENT_TYPE,
    A.POLL_COUNT,
    A.POLL_LATENCY_MS,
    A.RETRY_COUNT,
    A.RESULT_FORMAT,
    A.RESULT_COMPRESSED,
    A.RESULT_CHUNKS_PRESENT,
    A.RESULT_BYTES,
    A.ROWS_MODIFIED,
    A.IS_ASYNC,
    A.DB_OPERATION_BATCH_SIZE,
    A.CANCELLED,
    A.ERROR_TYPE,
    A.ERROR_CATEGORY,
    A.ERROR_TERMINAL,
    A.DB_RESPONSE_STATUS_CODE,
    A.RESULT_OPEN,
    A.DB_RESPONSE_RETURNED_ROWS,
    A.RESULT_FETCH_CALLS,
    A.RESULT_FETCH_ROUND_TRIPS,
    A.RESULT_CHUNKS_ITERATED,
    A.RESULT_CLOSE_REASON,
]


@pytest.mark.parametrize(
    "role",
    [A.ROLE_STATEMENT, A.ROLE_RESULT, A.ROLE_CANCEL, A.ROLE_CREATE_SESSION, A.ROLE_DELETE_SESSION],
)
def test_garbage_attribute_values_never_raise(
    make_processor, sink: CollectingSink, role: str
) -> None:
    processor = make_processor(sink, flush_interval_s=3600.0, statement_idle_timeout_s=3600.0)
    for value in GARBAGE:
        attrs = {name: value for name in NAMES}
        span = ReadableSpan(
            name="garbage",
            attributes={**attrs, A.SPAN_ROLE: role},
            events=[Event(A.EVENT_BATCH_STATEMENT, {name: value for name in NAMES}, None)],
            start_time=value if isinstance(value, int) else None,
            end_time=None,
            instrumentation_scope=SCOPE,
        )
        processor.on_end(span)  # no context, no timestamps, wrong types everywhere
    assert processor.shutdown_with_timeout(5.0)
    stats = processor.stats()
    assert stats.on_end_errors == 0
    assert stats.dropped_invalid == 0
    for record in sink.statement_records:
        assert isinstance(record, StatementRecord)
        assert isinstance(record.statement_id, str) and record.statement_id
        assert record.execute_latency_ms >= 0
        assert record.poll_count >= 0


def test_a_statement_with_garbage_values_still_yields_a_usable_record(
    make_processor, sink: CollectingSink
) -> None:
    processor = make_processor(sink, flush_interval_s=3600.0)
    attrs = statement_attrs("g-1", **{A.RESULT_OPEN: False})
    attrs.update(
        {
            A.POLL_COUNT: "many",
            A.SERVER_PORT: 99999,
            A.RETRY_COUNT: -1,
            A.RESULT_COMPRESSED: "yes",
            A.RESULT_BYTES: 12.6,
        }
    )
    processor.on_end(direct_span(A.ROLE_STATEMENT, attrs))
    assert processor.force_flush(5000)
    (record,) = sink.statement_records
    assert record.statement_id == "g-1"
    assert record.poll_count == 0
    assert record.port is None
    assert record.retry_count == 0
    assert record.compressed is None
    assert record.result_bytes == 13


class Weird:
    """Not a span at all, or a span whose properties raise."""

    @property
    def instrumentation_scope(self) -> Any:
        return SCOPE

    @property
    def attributes(self) -> Any:
        raise RuntimeError("boom")


class WeirdContext(ReadableSpan):
    def get_span_context(self) -> Any:
        raise RuntimeError("no context")


def test_objects_that_are_not_spans_never_raise(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink)
    processor.on_end(Weird())  # type: ignore[arg-type]
    processor.on_end(object())  # type: ignore[arg-type]
    processor.on_end(None)  # type: ignore[arg-type]
    processor.on_end(
        WeirdContext(
            name="x",
            attributes={A.SPAN_ROLE: A.ROLE_STATEMENT, A.RESULT_OPEN: False},
            instrumentation_scope=SCOPE,
        )
    )
    stats = processor.stats()
    assert stats.on_end_errors == 4
    processor.on_end(
        direct_span(A.ROLE_STATEMENT, statement_attrs("fine", **{A.RESULT_OPEN: False}))
    )
    assert processor.force_flush(5000)
    assert [r.statement_id for r in sink.statement_records] == ["fine"]


def test_on_start_does_nothing(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink)
    processor.on_start(None)  # type: ignore[arg-type]
    assert processor.stats().spans_ignored == 0


def test_sink_must_implement_the_protocol() -> None:
    from opentelemetry_instrumentation_dbsql.aggregation import StatementAggregationProcessor

    with pytest.raises(TypeError, match="RecordSink"):
        StatementAggregationProcessor(object())  # type: ignore[arg-type]


def test_sdk_attribute_fast_path_still_applies(tracer, processor) -> None:
    """Canary: the SDK still keeps span attributes in a plain dict behind BoundedAttributes.

    If an SDK release changes that, the processor silently falls back to the slower public
    mapping; this test points at the reason for the slowdown.
    """
    from opentelemetry.attributes import BoundedAttributes

    from opentelemetry_instrumentation_dbsql.aggregation import _values as V

    from .helpers import end_span

    captured: list[ReadableSpan] = []
    original = processor.on_end

    def spy(span: ReadableSpan) -> None:
        captured.append(span)
        original(span)

    processor.on_end = spy  # type: ignore[method-assign]
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("fast", **{A.RESULT_OPEN: False}))
    (span,) = captured
    assert type(span) is ReadableSpan
    raw = span._attributes
    assert type(raw) is BoundedAttributes
    assert V.plain(raw) is raw._dict
    assert V.span_attributes(span) is raw._dict
