"""force_flush and shutdown hold their deadlines whatever the sink does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import CollectingSink

from .helpers import HangingSink, ManualClock, RaisingSink, direct_span, statement_attrs

# Scheduling slack for a loaded 2-core machine; the bound under test is the deadline itself.
MARGIN_S = 0.5


@pytest.fixture
def hanging() -> Iterator[HangingSink]:
    sink = HangingSink()
    yield sink
    sink.release()  # let the stuck daemon thread finish


def done_statement(sid: str):
    return direct_span(A.ROLE_STATEMENT, statement_attrs(sid, **{A.RESULT_OPEN: False}))


def test_force_flush_returns_at_its_deadline_with_a_hung_sink(
    make_processor, hanging: HangingSink
) -> None:
    processor = make_processor(hanging, flush_interval_s=3600.0)
    processor.on_end(done_statement("h-1"))
    start = time.monotonic()
    assert processor.force_flush(200) is False
    elapsed = time.monotonic() - start
    assert elapsed < 0.2 + MARGIN_S
    assert hanging.entered.is_set()


def test_shutdown_returns_at_its_deadline_with_a_hung_sink(
    make_processor, hanging: HangingSink
) -> None:
    processor = make_processor(hanging, flush_interval_s=3600.0)
    for i in range(5):
        processor.on_end(done_statement(f"h-{i}"))
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("open")))
    start = time.monotonic()
    assert processor.shutdown_with_timeout(0.3) is False
    elapsed = time.monotonic() - start
    assert elapsed < 0.3 + MARGIN_S
    stats = processor.stats()
    assert stats.exports_abandoned == 1
    assert stats.dropped_export_timeout + stats.dropped_shutdown == 6
    assert stats.records_emitted == 6  # five done + the open one emitted at shutdown
    # idempotent and immediate once done
    start = time.monotonic()
    assert processor.shutdown_with_timeout(5.0) is False
    assert time.monotonic() - start < MARGIN_S
    processor.shutdown()


def test_concurrent_shutdowns_all_return_in_time(make_processor, hanging: HangingSink) -> None:
    processor = make_processor(hanging, flush_interval_s=3600.0)
    processor.on_end(done_statement("c"))
    results: list[float] = []

    def stop() -> None:
        start = time.monotonic()
        processor.shutdown_with_timeout(0.3)
        results.append(time.monotonic() - start)

    threads = [threading.Thread(target=stop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5.0)
    assert len(results) == 4
    assert max(results) < 0.3 + MARGIN_S


def test_shutdown_holds_its_deadline_when_sink_shutdown_hangs(make_processor) -> None:
    release = threading.Event()

    class StuckShutdown(CollectingSink):
        def shutdown(self, timeout_s: float) -> None:
            release.wait()

    sink = StuckShutdown()
    processor = make_processor(sink, flush_interval_s=3600.0)
    processor.on_end(done_statement("x"))
    start = time.monotonic()
    assert processor.shutdown_with_timeout(0.3) is False
    assert time.monotonic() - start < 0.3 + MARGIN_S
    assert len(sink.records) == 1  # the records themselves were delivered
    release.set()


def test_hung_export_is_abandoned_after_export_timeout_and_work_goes_on(
    make_processor,
) -> None:
    sink = HangingSink(hang_calls=1)  # only the first export hangs
    clock = ManualClock()
    processor = make_processor(
        sink, max_batch_size=1, export_timeout_s=60.0, flush_interval_s=3600.0, clock=clock
    )
    processor.on_end(done_statement("stuck"))
    assert sink.entered.wait(5.0)
    clock.advance(61.0)  # the export is now past its timeout
    processor.on_end(done_statement("next"))  # sees the overdue export, retires that worker
    assert processor.force_flush(5000)
    assert [r.statement_id for r in sink.exported] == ["next"]
    stats = processor.stats()
    assert stats.exports_abandoned == 1
    assert stats.dropped_export_timeout == 1
    workers = [t for t in threading.enumerate() if t.name.startswith("OtelDbsqlAggregation")]
    assert len(workers) == 2  # the stuck one and its replacement
    sink.release()


def test_force_flush_abandons_an_export_past_its_timeout(make_processor) -> None:
    sink = HangingSink(hang_calls=1)
    processor = make_processor(sink, export_timeout_s=0.2, flush_interval_s=3600.0)
    processor.on_end(done_statement("a"))
    processor.force_flush(50)
    assert sink.entered.wait(5.0)
    processor.on_end(done_statement("b"))
    start = time.monotonic()
    assert processor.force_flush(3000) is False  # "a" was abandoned
    assert time.monotonic() - start < 0.2 + MARGIN_S
    assert processor.force_flush(3000) is True
    assert [r.statement_id for r in sink.exported] == ["b"]
    sink.release()


def test_raising_sink_is_counted_and_processing_continues(make_processor) -> None:
    sink = RaisingSink(fail_calls=2)
    processor = make_processor(sink, max_batch_size=3, flush_interval_s=3600.0)
    for i in range(9):
        processor.on_end(done_statement(f"r-{i}"))
    assert processor.force_flush(5000)
    stats = processor.stats()
    assert stats.dropped_sink_error == 6
    assert stats.records_exported == 3
    assert [r.statement_id for r in sink.exported] == ["r-6", "r-7", "r-8"]
    processor.on_end(done_statement("after"))
    assert processor.force_flush(5000)
    assert sink.exported[-1].statement_id == "after"


def test_force_flush_after_shutdown_is_true_and_immediate(
    make_processor, sink: CollectingSink
) -> None:
    # The SDK provider keeps a shut-down processor (it cannot remove one): nothing is pending,
    # and the provider's own force_flush must not report failure because of it.
    processor = make_processor(sink)
    assert processor.shutdown_with_timeout(1.0)
    assert processor.force_flush(0) is True  # no time allowed, none needed


def test_force_flush_with_nothing_pending_is_immediate(
    make_processor, sink: CollectingSink
) -> None:
    processor = make_processor(sink)
    assert processor.force_flush(0)  # no time allowed, none needed
