"""Bounds: capacity eviction, idle eviction, shutdown of open statements. Never silent."""

from __future__ import annotations

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import CollectingSink

from .helpers import ManualClock, direct_span, result_attrs, statement_attrs


def test_capacity_evicts_the_oldest_as_incomplete(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, max_live_statements=3, flush_interval_s=60.0)
    for i in range(5):
        processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs(f"cap-{i}")))
    assert processor.force_flush(5000)
    evicted = sink.statement_records
    assert [r.statement_id for r in evicted] == ["cap-0", "cap-1"]
    assert all(not r.complete and r.completion_reason == "evicted_capacity" for r in evicted)
    assert evicted[0].poll_count == 2  # what was known is kept
    stats = processor.stats()
    assert stats.evicted_capacity == 2
    assert stats.live_statements == 3
    # the survivors still complete normally
    processor.on_end(direct_span(A.ROLE_RESULT, result_attrs("cap-4")))
    assert processor.force_flush(5000)
    assert sink.statement_records[-1].statement_id == "cap-4"
    assert sink.statement_records[-1].complete
    # a late RESULT for an evicted statement is not recorded twice
    processor.on_end(direct_span(A.ROLE_RESULT, result_attrs("cap-0")))
    assert processor.stats().spans_late == 1


def test_recently_used_statements_are_evicted_last(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, max_live_statements=2, flush_interval_s=60.0)
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("lru-0")))
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("lru-1")))
    processor.on_end(direct_span(A.ROLE_CANCEL, {A.STATEMENT_ID: "lru-0"}))  # activity
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("lru-2")))
    assert processor.force_flush(5000)
    assert [r.statement_id for r in sink.statement_records] == ["lru-1"]


def test_idle_statements_are_evicted_by_the_sweep(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, statement_idle_timeout_s=0.05, flush_interval_s=0.02)
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("idle-1")))
    processor.on_end(direct_span(A.ROLE_RESULT, result_attrs("idle-2")))  # never gets its STATEMENT
    assert sink.wait_for(lambda records: len(records) == 2, 5.0)
    records = {r.statement_id: r for r in sink.statement_records}
    assert set(records) == {"idle-1", "idle-2"}
    for record in records.values():
        assert not record.complete
        assert record.completion_reason == "evicted_idle"
    assert records["idle-2"].returned_rows == 500
    stats = processor.stats()
    assert stats.evicted_idle == 2
    assert stats.live_statements == 0


def test_active_statements_are_not_evicted_for_idleness(
    make_processor, sink: CollectingSink
) -> None:
    clock = ManualClock()
    processor = make_processor(
        sink,
        statement_idle_timeout_s=60.0,
        flush_interval_s=10.0,
        clock=clock,
        wait=clock.wait,
    )
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("stale")))
    clock.advance(40)
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("busy")))
    clock.advance(30)  # idle for 70 s and 30 s: the next sweep evicts "stale" only
    assert sink.wait_for(lambda records: len(records) == 1, 10.0)
    assert sink.statement_records[0].statement_id == "stale"
    assert sink.statement_records[0].completion_reason == "evicted_idle"
    processor.on_end(direct_span(A.ROLE_RESULT, result_attrs("busy")))
    assert processor.force_flush(5000)
    busy = sink.statement_records[-1]
    assert (busy.statement_id, busy.complete) == ("busy", True)
    assert processor.stats().evicted_idle == 1


def test_shutdown_emits_open_statements_as_incomplete(make_processor, sink: CollectingSink) -> None:
    processor = make_processor(sink, flush_interval_s=60.0)
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("open-1")))
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("open-2")))
    assert processor.shutdown_with_timeout(5.0)
    records = sink.statement_records
    assert [r.statement_id for r in records] == ["open-1", "open-2"]
    assert all(not r.complete and r.completion_reason == "shutdown" for r in records)
    assert sink.is_shutdown
    # after shutdown spans are counted, not recorded
    processor.on_end(
        direct_span(A.ROLE_STATEMENT, statement_attrs("late", **{A.RESULT_OPEN: False}))
    )
    assert processor.stats().spans_after_shutdown == 1
    assert len(sink.records) == 2
