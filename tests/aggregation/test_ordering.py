"""Spans arriving in any order, from many threads."""

from __future__ import annotations

import random
import threading

from opentelemetry.sdk.trace import Tracer

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import (
    CollectingSink,
    StatementAggregationProcessor,
    StatementRecord,
)

from .helpers import direct_span, end_span, result_attrs, statement_attrs


def test_result_before_statement_is_merged(
    tracer: Tracer, processor: StatementAggregationProcessor, sink: CollectingSink
) -> None:
    end_span(tracer, A.ROLE_RESULT, result_attrs("o-1"), duration_ms=30)
    assert processor.stats().live_statements == 1  # partial: waits for its STATEMENT span
    assert processor.force_flush(5000)
    assert sink.records == []
    end_span(tracer, A.ROLE_STATEMENT, statement_attrs("o-1"), duration_ms=20)
    assert processor.force_flush(5000)
    (record,) = sink.records
    assert isinstance(record, StatementRecord)
    assert record.execute_latency_ms == 20
    assert record.consumption_latency_ms == 30
    assert record.poll_count == 2
    assert record.returned_rows == 500
    assert record.retry_count == 3
    assert record.complete
    assert processor.stats().live_statements == 0


def test_many_threads_random_order_every_statement_exactly_once(
    make_processor, sink: CollectingSink
) -> None:
    processor = make_processor(sink, flush_interval_s=0.05, max_queue_size=100_000)
    threads = 8
    per_thread = 500
    # Each statement's two spans are fed by two different threads, in random order.
    work: list[list[tuple[str, str]]] = [[] for _ in range(threads)]
    rng = random.Random(7)
    for t in range(threads):
        for i in range(per_thread):
            sid = f"t{t}-{i}"
            a, b = rng.sample(range(threads), 2)
            work[a].append((A.ROLE_STATEMENT, sid))
            work[b].append((A.ROLE_RESULT, sid))
    for items in work:
        rng.shuffle(items)
    barrier = threading.Barrier(threads)

    def run(items: list[tuple[str, str]]) -> None:
        barrier.wait()
        for role, sid in items:
            attrs = statement_attrs(sid) if role == A.ROLE_STATEMENT else result_attrs(sid)
            processor.on_end(direct_span(role, attrs))

    pool = [threading.Thread(target=run, args=(items,)) for items in work]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert processor.force_flush(10_000)
    ids = [r.statement_id for r in sink.statement_records]
    assert len(ids) == threads * per_thread
    assert len(set(ids)) == threads * per_thread
    assert all(r.complete and r.returned_rows == 500 for r in sink.statement_records)
    stats = processor.stats()
    assert stats.live_statements == 0
    assert stats.records_dropped == 0
    assert stats.on_end_errors == 0
