"""Spans the SDK never passes to processors still yield records through the direct path."""

from __future__ import annotations

from opentelemetry.sdk.trace import Event, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, Status, StatusCode

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import (
    CollectingSink,
    ConnectionRecord,
    make_readable_span,
)
from opentelemetry_instrumentation_dbsql.aggregation.records import LOCAL_STATEMENT_ID_PREFIX

from .helpers import result_attrs, session_attrs, statement_attrs

T0 = 1_700_000_000_000_000_000


def feed(processor, tracer, role: str, attrs: dict, *, parent: SpanContext | None = None):
    """What the instrumentation does: SDK span; direct feed when it is not recording."""
    span = tracer.start_span(role, attributes={**attrs, A.SPAN_ROLE: role}, start_time=T0)
    recording = span.is_recording()
    span.end(T0 + 5_000_000)
    context = span.get_span_context()
    if not recording:
        processor.on_end(
            make_readable_span(
                role,
                role,
                attrs,
                start_ns=T0,
                end_ns=T0 + 5_000_000,
                parent=parent,
                context=context,
            )
        )
    return context


def test_always_off_sampler_still_yields_every_record(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, flush_interval_s=3600.0)
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(A.INSTRUMENTATION_SCOPE)
    feed(processor, tracer, A.ROLE_CREATE_SESSION, session_attrs())
    for i in range(20):
        feed(processor, tracer, A.ROLE_STATEMENT, statement_attrs(f"s-{i}"))
        feed(processor, tracer, A.ROLE_RESULT, result_attrs(f"s-{i}"))
    stmt_ctx = feed(processor, tracer, A.ROLE_STATEMENT, statement_attrs(None))
    feed(processor, tracer, A.ROLE_RESULT, result_attrs(None), parent=stmt_ctx)
    feed(processor, tracer, A.ROLE_DELETE_SESSION, session_attrs())
    assert processor.force_flush(5000)
    statements = sink.statement_records
    assert len(statements) == 21  # each exactly once: the SDK passed none of them
    assert all(r.complete and r.returned_rows == 500 for r in statements)
    assert statements[-1].statement_id.startswith(LOCAL_STATEMENT_ID_PREFIX)
    assert [r.operation_type for r in sink.connection_records] == [
        "CREATE_SESSION",
        "DELETE_SESSION",
    ]
    stats = processor.stats()
    assert stats.spans_late == 0
    assert stats.live_statements == 0


def test_no_sdk_provider_direct_path_only(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, flush_interval_s=3600.0)
    stmt = make_readable_span(
        "SELECT orders",
        A.ROLE_STATEMENT,
        statement_attrs("n-1"),
        start_ns=T0,
        end_ns=T0 + 40_000_000,
    )
    processor.on_end(stmt)
    processor.on_end(
        make_readable_span(
            "fetch",
            A.ROLE_RESULT,
            result_attrs("n-1"),
            start_ns=T0 + 40_000_000,
            end_ns=T0 + 100_000_000,
            parent=stmt.get_span_context(),
            status=Status(StatusCode.OK),
        )
    )
    assert processor.force_flush(5000)
    (record,) = sink.statement_records
    assert record.execute_latency_ms == 40
    assert record.consumption_latency_ms == 60


def test_make_readable_span_shape() -> None:
    parent = make_readable_span("p", A.ROLE_STATEMENT, {}, start_ns=1, end_ns=2)
    event = Event(A.EVENT_BATCH_STATEMENT, {A.STATEMENT_ID: "x"}, 5)
    attrs = {A.STATEMENT_ID: "q"}
    span = make_readable_span(
        "child",
        A.ROLE_RESULT,
        attrs,
        start_ns=10,
        end_ns=20,
        events=[event],
        parent=parent.get_span_context(),
    )
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == A.INSTRUMENTATION_SCOPE
    assert span.attributes[A.SPAN_ROLE] == A.ROLE_RESULT
    assert A.SPAN_ROLE not in attrs  # the caller's mapping is not modified
    context = span.get_span_context()
    parent_context = parent.get_span_context()
    assert context is not None and parent_context is not None
    assert context.is_valid
    assert context.trace_id == parent_context.trace_id
    assert context.span_id != parent_context.span_id
    assert not context.trace_flags.sampled
    assert span.parent == parent_context
    assert (span.start_time, span.end_time) == (10, 20)
    assert span.events == (event,)


def test_sampled_spans_are_not_double_counted(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, flush_interval_s=3600.0)
    provider = TracerProvider(shutdown_on_exit=False)  # ALWAYS_ON (parent based)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(A.INSTRUMENTATION_SCOPE)
    feed(processor, tracer, A.ROLE_CREATE_SESSION, session_attrs())
    feed(processor, tracer, A.ROLE_STATEMENT, statement_attrs("once", **{A.RESULT_OPEN: False}))
    assert processor.force_flush(5000)
    assert len(sink.statement_records) == 1
    assert len([r for r in sink.records if isinstance(r, ConnectionRecord)]) == 1


def test_span_with_no_sdk_reaches_the_processor_once_and_closes_at_end(
    make_processor, sink: CollectingSink
) -> None:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import INVALID_SPAN, NoOpTracerProvider

    from opentelemetry_instrumentation_dbsql.options import resolve_options
    from opentelemetry_instrumentation_dbsql.runtime import Runtime
    from opentelemetry_instrumentation_dbsql.spans import SpanRecorder

    processor = make_processor(sink, flush_interval_s=3600.0)
    runtime = Runtime(
        resolve_options({}, environ={}),
        tracer_provider=NoOpTracerProvider(),
        meter_provider=NoOpMeterProvider(),
        processor=processor,
    )
    start = statement_attrs("d-1", **{A.SPAN_ROLE: A.ROLE_STATEMENT})
    del start[A.RESULT_OPEN]  # a result that arrived whole: the statement completes here
    recorder = SpanRecorder(runtime, "SELECT", start, start_ns=T0)
    assert recorder.span is INVALID_SPAN
    recorder.set(A.DB_RESPONSE_RETURNED_ROWS, 7)
    recorder.end(T0 + 3_000_000)
    recorder.set(A.ROWS_MODIFIED, 99)  # after end(): not recorded
    recorder.end(T0 + 9_000_000)  # a second end() changes nothing
    assert processor.force_flush(5000)
    (record,) = sink.statement_records
    assert record.statement_id == "d-1"
    assert record.returned_rows == 7
    assert record.rows_modified is None
    assert record.execute_latency_ms == 3
    assert processor.stats().spans_late == 0
