"""When records reach the sink: by size, by timer, at once for connections and terminal errors."""

from __future__ import annotations

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import CollectingSink

from .helpers import HangingSink, ManualClock, direct_span, session_attrs, statement_attrs


def done_statement(sid: str, **extra: object):
    return direct_span(A.ROLE_STATEMENT, statement_attrs(sid, **{A.RESULT_OPEN: False, **extra}))


def test_full_batches_go_out_without_waiting_for_the_timer(
    make_processor, sink: CollectingSink
) -> None:
    clock = ManualClock()
    processor = make_processor(
        sink, max_batch_size=10, flush_interval_s=3600.0, clock=clock, wait=clock.wait
    )
    for i in range(25):
        processor.on_end(done_statement(f"s-{i}"))
    assert sink.wait_for(lambda records: len(records) == 20, 5.0)
    clock.wait_for_sleeper()  # the worker is done until its timer
    assert sink.batch_sizes == [10, 10]  # the remaining 5 wait for the timer or a flush
    assert processor.force_flush(5000)
    assert sink.batch_sizes == [10, 10, 5]
    assert [r.statement_id for r in sink.records] == [f"s-{i}" for i in range(25)]
    assert processor.stats().batches_exported == 3


def test_timer_flushes_a_partial_batch(make_processor, sink: CollectingSink) -> None:
    clock = ManualClock()
    processor = make_processor(
        sink, max_batch_size=100, flush_interval_s=60.0, clock=clock, wait=clock.wait
    )
    for i in range(3):
        processor.on_end(done_statement(f"t-{i}"))
    clock.wait_for_sleeper()
    assert sink.records == []  # a partial batch waits for the timer
    clock.advance(60.0)
    assert sink.wait_for(lambda records: len(records) == 3, 10.0)
    assert sink.batch_sizes == [3]


def test_connection_records_flush_at_once(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, max_batch_size=100, flush_interval_s=3600.0)
    processor.on_end(done_statement("before"))
    processor.on_end(direct_span(A.ROLE_CREATE_SESSION, session_attrs()))
    assert sink.wait_for(lambda records: len(records) == 2, 5.0)  # pending ones go too
    processor.on_end(direct_span(A.ROLE_DELETE_SESSION, session_attrs()))
    assert sink.wait_for(lambda records: len(records) == 3, 5.0)


def test_terminal_error_flushes_at_once(make_processor, sink: CollectingSink) -> None:
    clock = ManualClock()
    processor = make_processor(
        sink, max_batch_size=100, flush_interval_s=3600.0, clock=clock, wait=clock.wait
    )
    processor.on_end(done_statement("ok"))
    processor.on_end(done_statement("retryable", **{A.ERROR_TYPE: "E", A.ERROR_TERMINAL: False}))
    clock.wait_for_sleeper()  # the worker went back to sleep: nothing urgent arrived
    assert sink.records == []
    processor.on_end(done_statement("fatal", **{A.ERROR_TYPE: "E", A.ERROR_TERMINAL: True}))
    assert sink.wait_for(lambda records: len(records) == 3, 5.0)


def test_full_queue_drops_the_oldest_and_counts(make_processor) -> None:
    sink = HangingSink(hang_calls=1)
    processor = make_processor(sink, max_batch_size=2, max_queue_size=5, flush_interval_s=3600.0)
    processor.on_end(done_statement("q-0"))
    processor.on_end(done_statement("q-1"))  # batch of 2 goes to the sink, which hangs
    assert sink.entered.wait(5.0)
    for i in range(2, 10):  # 8 more; the queue holds 5
        processor.on_end(done_statement(f"q-{i}"))
    stats = processor.stats()
    assert stats.dropped_queue_full == 3
    assert stats.queued_records == 5
    sink.release()
    assert processor.force_flush(5000)
    assert [r.statement_id for r in sink.exported] == ["q-0", "q-1"] + [
        f"q-{i}" for i in range(5, 10)
    ]
    stats = processor.stats()
    assert stats.records_exported == 7
    assert stats.records_emitted == 10
    assert stats.records_exported + stats.records_dropped == stats.records_emitted


def test_worker_thread_is_named_daemon_and_lazy(make_processor, sink: CollectingSink) -> None:
    import threading

    before = {t.name for t in threading.enumerate()}
    processor = make_processor(sink, flush_interval_s=3600.0)
    assert {t.name for t in threading.enumerate()} == before  # nothing started yet
    processor.on_end(done_statement("w"))
    workers = [t for t in threading.enumerate() if t.name.startswith("OtelDbsqlAggregation")]
    assert len(workers) == 1
    assert workers[0].daemon
