"""Record content: counters, errors, batches, connections, cancellation, late spans."""

from __future__ import annotations

from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.trace import set_span_in_context

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import (
    ChunkDetails,
    CollectingSink,
    ConnectionRecord,
    ErrorRecord,
    StatementAggregationProcessor,
    StatementRecord,
)
from opentelemetry_instrumentation_dbsql.aggregation.records import LOCAL_STATEMENT_ID_PREFIX

from .helpers import end_span, result_attrs, session_attrs, statement_attrs

T0 = 1_700_000_000_000_000_000


def flushed(processor: StatementAggregationProcessor, sink: CollectingSink) -> list:
    assert processor.force_flush(5000)
    return sink.records


def test_statement_and_result_make_one_record_with_all_counters(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("q-1"), duration_ms=120, start_ns=T0)
    assert processor.stats().live_statements == 1
    assert processor.force_flush(5000)
    assert sink.records == []  # not complete before its RESULT span
    end_span(
        tracer,
        A.ROLE_RESULT,
        result_attrs("q-1"),
        duration_ms=300,
        start_ns=T0 + 120_000_000,
    )
    (record,) = flushed(processor, sink)
    assert record == StatementRecord(
        session_id="sess-1",
        statement_id="q-1",
        host="example.cloud.databricks.com",
        port=443,
        operation_type="EXECUTE_STATEMENT",
        statement_type="QUERY",
        start_time_ns=T0,
        execute_latency_ms=120,
        consumption_latency_ms=300,
        poll_count=2,
        poll_latency_ms=40,
        retry_count=3,  # 1 while executing + 2 while fetching
        result_format="INLINE_ARROW",
        compressed=True,
        returned_rows=500,
        rows_modified=None,
        result_bytes=4000,  # execute response + fetches
        fetch_round_trips=2,
        chunks=ChunkDetails(
            initial_chunk_latency_ms=7,
            slowest_chunk_latency_ms=11,
            total_chunks_present=3,
            total_chunks_iterated=3,
            sum_chunks_download_time_ms=24,
        ),
        is_async=False,
        batch_size=None,
        cancelled=False,
        error=None,
        complete=True,
        completion_reason="closed",
        fetch_calls=3,
        fetch_time_ms=25,
    )
    stats = processor.stats()
    assert stats.statement_records == 1
    assert stats.records_exported == 1
    assert stats.live_statements == 0
    assert stats.records_dropped == 0


def test_statement_without_result_completes_at_once(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    attrs = statement_attrs("q-dml", **{A.RESULT_OPEN: False, A.ROWS_MODIFIED: 7})
    attrs[A.STATEMENT_TYPE] = "UPDATE"
    end_span(tracer, A.ROLE_STATEMENT, attrs)
    (record,) = flushed(processor, sink)
    assert record.statement_id == "q-dml"
    assert record.rows_modified == 7
    assert record.consumption_latency_ms is None
    assert record.returned_rows is None
    assert record.complete and record.completion_reason == "closed"
    assert processor.stats().live_statements == 0


def test_absent_result_open_means_complete(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    attrs = statement_attrs("q-meta", **{A.OPERATION_TYPE: "LIST_TABLES"})
    del attrs[A.RESULT_OPEN]
    end_span(tracer, A.ROLE_STATEMENT, attrs)
    (record,) = flushed(processor, sink)
    assert record.operation_type == "LIST_TABLES"
    assert record.complete


def test_failed_statement_carries_its_error(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    attrs = statement_attrs(
        "q-bad",
        **{
            A.RESULT_OPEN: False,
            A.ERROR_TYPE: "databricks.sql.exc.ServerOperationError",
            A.ERROR_CATEGORY: "syntax_error",
            A.ERROR_TERMINAL: False,
            A.DB_RESPONSE_STATUS_CODE: "42601",
        },
    )
    end_span(tracer, A.ROLE_STATEMENT, attrs)
    (record,) = flushed(processor, sink)
    assert record.error == ErrorRecord(
        "databricks.sql.exc.ServerOperationError", "syntax_error", False, "42601"
    )
    assert record.completion_reason == "failed"
    assert record.complete


def test_first_error_wins(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    stmt = statement_attrs("q-e", **{A.ERROR_TYPE: "first.Error", A.ERROR_CATEGORY: "timeout"})
    res = result_attrs(
        "q-e",
        **{A.ERROR_TYPE: "second.Error", A.ERROR_CATEGORY: "chunk_download_error"},
    )
    res[A.RESULT_CLOSE_REASON] = "failed"
    # Arrival order must not matter: the execute-phase error is the first one.
    end_span(tracer, A.ROLE_RESULT, res)
    end_span(tracer, A.ROLE_STATEMENT, stmt)
    (record,) = flushed(processor, sink)
    assert record.error is not None
    assert record.error.error_type == "first.Error"
    assert record.completion_reason == "failed"


def test_fetch_error_is_recorded_when_execution_succeeded(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("q-f"))
    res = result_attrs("q-f", **{A.ERROR_TYPE: "urllib3.exceptions.MaxRetryError"})
    del res[A.RESULT_CLOSE_REASON]
    end_span(tracer, A.ROLE_RESULT, res)
    (record,) = flushed(processor, sink)
    assert record.error is not None
    assert record.error.error_type == "urllib3.exceptions.MaxRetryError"
    assert record.error.category == "unknown"
    assert record.completion_reason == "failed"


def test_statement_without_id_is_keyed_by_span_id(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    attrs = statement_attrs(None, **{A.RESULT_OPEN: False, A.ERROR_TYPE: "OSError"})
    span = end_span(tracer, A.ROLE_STATEMENT, attrs)
    (record,) = flushed(processor, sink)
    span_id = span.get_span_context().span_id
    assert record.statement_id == f"{LOCAL_STATEMENT_ID_PREFIX}{span_id:016x}"
    assert record.error is not None


def test_result_without_id_matches_its_parent_statement(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    stmt_span = end_span(tracer, A.ROLE_STATEMENT, statement_attrs(None))
    end_span(
        tracer,
        A.ROLE_RESULT,
        result_attrs(None),
        parent=set_span_in_context(stmt_span),
    )
    (record,) = flushed(processor, sink)
    assert record.statement_id.startswith(LOCAL_STATEMENT_ID_PREFIX)
    assert record.returned_rows == 500
    assert record.complete


def test_executemany_yields_one_record_per_execution(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    events = [
        (A.EVENT_BATCH_STATEMENT, {A.STATEMENT_ID: "b-1", A.BATCH_LATENCY_MS: 5}, T0 + 5_000_000),
        (
            A.EVENT_BATCH_STATEMENT,
            {
                A.STATEMENT_ID: "b-2",
                A.BATCH_LATENCY_MS: 6,
                A.ERROR_TYPE: "x.Err",
                A.ERROR_CATEGORY: "invalid_request",
                A.ERROR_TERMINAL: False,
            },
            T0 + 11_000_000,
        ),
        ("exception", {"exception.type": "x"}, T0 + 12_000_000),  # not a batch event
        (A.EVENT_BATCH_STATEMENT, {A.BATCH_LATENCY_MS: 4}, T0 + 15_000_000),  # no id
    ]
    attrs = statement_attrs("b-last", **{A.RESULT_OPEN: False, A.DB_OPERATION_BATCH_SIZE: 4})
    attrs[A.STATEMENT_TYPE] = "UPDATE"
    span = end_span(tracer, A.ROLE_STATEMENT, attrs, events=events, duration_ms=20, start_ns=T0)
    records = flushed(processor, sink)
    assert len(records) == 4
    by_id = {r.statement_id: r for r in records}
    assert by_id["b-1"].execute_latency_ms == 5
    assert by_id["b-1"].start_time_ns == T0
    assert by_id["b-1"].batch_size == 4
    assert by_id["b-1"].operation_type == "EXECUTE_STATEMENT"
    assert by_id["b-1"].statement_type == "UPDATE"
    assert by_id["b-1"].session_id == "sess-1"
    assert by_id["b-1"].error is None and by_id["b-1"].complete
    assert by_id["b-2"].error == ErrorRecord("x.Err", "invalid_request", False, None)
    assert by_id["b-2"].completion_reason == "failed"
    span_id = span.get_span_context().span_id
    assert f"{LOCAL_STATEMENT_ID_PREFIX}{span_id:016x}-3" in by_id
    assert by_id["b-last"].batch_size == 4
    assert by_id["b-last"].execute_latency_ms == 20
    assert processor.stats().statement_records == 4


def test_create_session_record_is_flushed_at_once(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, flush_interval_s=3600.0, max_batch_size=1000)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(A.INSTRUMENTATION_SCOPE)
    end_span(tracer, A.ROLE_CREATE_SESSION, session_attrs(), duration_ms=250, start_ns=T0)
    assert sink.wait_for(lambda records: len(records) == 1, 5.0)
    assert sink.records[0] == ConnectionRecord(
        operation_type="CREATE_SESSION",
        session_id="sess-1",
        host="example.cloud.databricks.com",
        port=443,
        http_path="/sql/1.0/warehouses/abc",
        backend="thrift",
        auth_mechanism="PAT",
        start_time_ns=T0,
        latency_ms=250,
        error=None,
    )


def test_failed_create_session_has_error_and_no_session(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    attrs = session_attrs(
        None,
        **{
            A.ERROR_TYPE: "databricks.sql.exc.RequestError",
            A.ERROR_CATEGORY: "auth_error",
            A.ERROR_TERMINAL: True,
        },
    )
    end_span(tracer, A.ROLE_CREATE_SESSION, attrs)
    assert sink.wait_for(lambda records: len(records) == 1, 5.0)
    record = sink.records[0]
    assert isinstance(record, ConnectionRecord)
    assert record.session_id is None
    assert record.error == ErrorRecord("databricks.sql.exc.RequestError", "auth_error", True)


def test_delete_session_completes_open_statements_of_that_session(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("a-1", session="A"))
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("a-2", session="A"))
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("b-1", session="B"))
    end_span(tracer, A.ROLE_DELETE_SESSION, session_attrs("A"))
    assert sink.wait_for(lambda records: len(records) == 3, 5.0)
    records = sink.records
    assert [r.statement_id for r in records[:2]] == ["a-1", "a-2"]
    for record in records[:2]:
        assert isinstance(record, StatementRecord)
        assert record.completion_reason == "connection_closed"
        assert record.complete
        assert record.consumption_latency_ms is None
    assert isinstance(records[2], ConnectionRecord)
    assert records[2].operation_type == "DELETE_SESSION"
    assert processor.stats().live_statements == 1  # b-1 belongs to another session


def test_cancel_marks_the_live_statement(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("c-1"))
    end_span(tracer, A.ROLE_CANCEL, {A.STATEMENT_ID: "c-1"})
    assert processor.stats().live_statements == 1  # cancel does not complete it
    end_span(tracer, A.ROLE_RESULT, result_attrs("c-1"))
    (record,) = flushed(processor, sink)
    assert record.cancelled


def test_cancel_before_the_statement_span_ends(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    # cancel() from another thread ends its span while execute() is still running
    end_span(tracer, A.ROLE_CANCEL, {A.STATEMENT_ID: "c-2"})
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("c-2", **{A.RESULT_OPEN: False}))
    (record,) = flushed(processor, sink)
    assert record.cancelled
    assert processor.stats().live_statements == 0


def test_cancel_after_completion_creates_nothing(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("c-3", **{A.RESULT_OPEN: False}))
    end_span(tracer, A.ROLE_CANCEL, {A.STATEMENT_ID: "c-3"})
    (record,) = flushed(processor, sink)
    assert not record.cancelled
    assert processor.stats().live_statements == 0


def test_cancelled_attribute_on_statement(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    attrs = statement_attrs("c-4", **{A.RESULT_OPEN: False, A.CANCELLED: True})
    end_span(tracer, A.ROLE_STATEMENT, attrs)
    (record,) = flushed(processor, sink)
    assert record.cancelled


def test_close_reason_from_the_result_span(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("r-1"))
    end_span(
        tracer, A.ROLE_RESULT, result_attrs("r-1", **{A.RESULT_CLOSE_REASON: "uninstrumented"})
    )
    (record,) = flushed(processor, sink)
    assert record.completion_reason == "uninstrumented"


def test_late_and_duplicate_spans_are_counted_not_recorded(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("d-1"))
    end_span(tracer, A.ROLE_RESULT, result_attrs("d-1"))
    end_span(tracer, A.ROLE_RESULT, result_attrs("d-1"))  # straggler
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("d-1"))  # fed twice
    records = flushed(processor, sink)
    assert len(records) == 1
    stats = processor.stats()
    assert stats.spans_late == 2
    assert stats.live_statements == 0


def test_foreign_and_roleless_spans_are_ignored(
    provider: TracerProvider, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    other = provider.get_tracer("some.other.library")
    other.start_span("GET", attributes={A.SPAN_ROLE: A.ROLE_STATEMENT}).end()
    ours = provider.get_tracer(A.INSTRUMENTATION_SCOPE)
    ours.start_span("no role").end()
    ours.start_span("chunk", attributes={A.SPAN_ROLE: A.ROLE_CHUNK_DOWNLOAD}).end()
    ours.start_span("what", attributes={A.SPAN_ROLE: "SOMETHING_ELSE"}).end()
    assert flushed(processor, sink) == []
    stats = processor.stats()
    assert stats.spans_ignored == 4
    assert stats.records_emitted == 0


def test_records_are_immutable(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("i-1", **{A.RESULT_OPEN: False}))
    (record,) = flushed(processor, sink)
    try:
        record.retry_count = 5  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("record is mutable")
    assert not hasattr(record, "__dict__")
