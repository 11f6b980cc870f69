"""Many threads through the real SDK, as the driver end-to-end test will do."""

from __future__ import annotations

import threading
import time

from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import CollectingSink

from .helpers import end_span, result_attrs, session_attrs, statement_attrs

THREADS = 16
STATEMENTS = 1000


def run_connections(tracer, io_s: float) -> None:
    """16 connections on 16 threads; ``io_s`` of sleep per statement stands in for the
    network round trip (which releases the GIL, as the driver's socket reads do)."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def connection(t: int) -> None:
        try:
            session = f"session-{t}"
            barrier.wait()
            end_span(tracer, A.ROLE_CREATE_SESSION, session_attrs(session))
            for i in range(STATEMENTS):
                sid = f"{t}-{i}"
                if io_s:
                    time.sleep(io_s)
                if i % 10 == 9:  # DML: no result set
                    attrs = statement_attrs(sid, session=session, **{A.RESULT_OPEN: False})
                    end_span(tracer, A.ROLE_STATEMENT, attrs)
                else:
                    end_span(tracer, A.ROLE_STATEMENT, statement_attrs(sid, session=session))
                    end_span(tracer, A.ROLE_RESULT, result_attrs(sid))
            end_span(tracer, A.ROLE_DELETE_SESSION, session_attrs(session))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connection, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def sdk_tracer(processor):
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider.get_tracer(A.INSTRUMENTATION_SCOPE)


def test_16_threads_1000_statements_each_with_default_options(make_processor) -> None:
    sink = CollectingSink()
    processor = make_processor(sink)  # defaults: batches of 100, queue of 2048
    run_connections(sdk_tracer(processor), io_s=0.0002)
    assert processor.force_flush(30_000)
    statements = sink.statement_records
    assert len(statements) == THREADS * STATEMENTS
    assert len({r.statement_id for r in statements}) == THREADS * STATEMENTS
    assert all(r.complete and r.completion_reason == "closed" for r in statements)
    assert sum(1 for r in statements if r.returned_rows == 500) == THREADS * STATEMENTS * 9 // 10
    operations = [r.operation_type for r in sink.connection_records]
    assert operations.count("CREATE_SESSION") == THREADS
    assert operations.count("DELETE_SESSION") == THREADS
    stats = processor.stats()
    assert stats.records_dropped == 0
    assert stats.live_statements == 0
    assert stats.on_end_errors == 0
    assert stats.records_exported == THREADS * STATEMENTS + 2 * THREADS


def test_cpu_bound_burst_never_loses_a_record_silently(make_processor) -> None:
    """Without any I/O, 16 threads can starve the worker of the GIL: the bounded queue may
    then drop its oldest records, but every one is accounted for."""
    sink = CollectingSink()
    processor = make_processor(sink)
    run_connections(sdk_tracer(processor), io_s=0.0)
    assert processor.force_flush(30_000)
    stats = processor.stats()
    assert stats.statement_records == THREADS * STATEMENTS
    assert stats.connection_records == 2 * THREADS
    assert stats.records_exported == len(sink.records)
    assert stats.records_exported + stats.dropped_queue_full == stats.records_emitted
    assert stats.live_statements == 0
    assert stats.on_end_errors == 0
