"""Benchmark of the aggregation processor alone (no driver, no network).

    .venv/bin/python benchmarks/bench_aggregation.py [--pairs N] [--memory 100000,1000000]

1. Cost of ``on_end`` on the application thread, per span, for STATEMENT + RESULT pairs of real
   SDK spans (each carrying the ~20 attributes the instrumentation sets). Each call is timed
   with ``perf_counter_ns`` (timer overhead shown separately); the worker runs meanwhile, as in
   production, so GIL hand-overs show up in the mean and p99.
2. Sustained throughput: spans/s through ``on_end`` *and* the worker (record building and a
   no-op export), from the first span until ``force_flush`` returns, on one core (GIL).
3. Memory: RSS after 100k and 1M completed statements (spans built on the fly; a
   ``force_flush`` every 2,000 statements stands in for the application's own pace).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import (
    StatementAggregationProcessor,
    TelemetryRecord,
)

T0 = 1_700_000_000_000_000_000
SCOPE = InstrumentationScope(A.INSTRUMENTATION_SCOPE, "bench")
EMPTY = Resource.get_empty()


class NoOpSink:
    """Counts what it receives, nothing else."""

    def __init__(self) -> None:
        self.records = 0

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        self.records += len(records)

    def shutdown(self, timeout_s: float) -> None:
        pass


class Capture(SpanProcessor):
    """Keeps the ReadableSpans the SDK hands to processors."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def statement_attrs(sid: str) -> dict[str, object]:
    return {
        A.SPAN_ROLE: A.ROLE_STATEMENT,
        A.DB_SYSTEM_NAME: "databricks",
        A.DB_NAMESPACE: "main|default",
        A.DB_QUERY_SUMMARY: "SELECT orders",
        A.DB_QUERY_TEXT: "SELECT id, amount FROM orders WHERE id > ?",
        A.DB_OPERATION_NAME: "SELECT",
        A.SERVER_ADDRESS: "example.cloud.databricks.com",
        A.SERVER_PORT: 443,
        A.SESSION_ID: "01ef0000-0000-0000-0000-000000000001",
        A.STATEMENT_ID: sid,
        A.OPERATION_TYPE: "EXECUTE_STATEMENT",
        A.STATEMENT_TYPE: "QUERY",
        A.POLL_COUNT: 1,
        A.POLL_LATENCY_MS: 12,
        A.RETRY_COUNT: 0,
        A.RESULT_FORMAT: "INLINE_ARROW",
        A.RESULT_COMPRESSED: True,
        A.RESULT_BYTES: 2048,
        A.IS_ASYNC: False,
        A.RESULT_OPEN: True,
    }


def result_attrs(sid: str) -> dict[str, object]:
    return {
        A.SPAN_ROLE: A.ROLE_RESULT,
        A.STATEMENT_ID: sid,
        A.DB_RESPONSE_RETURNED_ROWS: 100,
        A.RESULT_FETCH_CALLS: 1,
        A.RESULT_FETCH_ROUND_TRIPS: 1,
        A.RESULT_FETCH_TIME_MS: 3,
        A.RESULT_CHUNKS_PRESENT: 1,
        A.RESULT_CHUNKS_ITERATED: 1,
        A.RESULT_BYTES: 4096,
        A.RETRY_COUNT: 0,
        A.RESULT_CLOSE_REASON: "closed",
    }


def sdk_spans(pairs: int, prefix: str) -> list[tuple[ReadableSpan, ReadableSpan]]:
    """Real SDK ReadableSpans (BoundedAttributes, as processors receive them)."""
    capture = Capture()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(capture)
    tracer = provider.get_tracer(A.INSTRUMENTATION_SCOPE)
    for i in range(pairs):
        sid = f"{prefix}-{i:08d}"
        tracer.start_span("SELECT orders", attributes=statement_attrs(sid), start_time=T0).end(
            T0 + 5_000_000
        )
        tracer.start_span("fetch", attributes=result_attrs(sid), start_time=T0 + 5_000_000).end(
            T0 + 9_000_000
        )
    spans = capture.spans
    return [(spans[2 * i], spans[2 * i + 1]) for i in range(pairs)]


def readable(attrs: dict[str, object], start: int, end: int) -> ReadableSpan:
    return ReadableSpan(
        name="s",
        attributes=attrs,
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
        resource=EMPTY,
    )


def rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def prebuilt(pairs: int, prefix: str) -> list[tuple[ReadableSpan, ReadableSpan]]:
    """Real SDK spans built ahead (not timed), frozen out of the garbage collector's view so
    that the benchmark's own heap does not make every collection expensive."""
    spans = sdk_spans(pairs, prefix)
    gc.collect()
    gc.freeze()
    return spans


def worker_cpu_s() -> float:
    """CPU time of the processor's worker thread(s) so far (Linux)."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith("OtelDbsqlAggregation") and thread.ident is not None:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (AttributeError, OSError):
                return float("nan")
    return total


def bench_cost(pairs: int) -> dict[str, float]:
    spans = prebuilt(pairs, "cost")
    sink = NoOpSink()
    # A queue that never overflows: every record is built, so the worker's share is complete.
    processor = StatementAggregationProcessor(sink, max_queue_size=4 * pairs)
    on_end = processor.on_end
    clock = time.perf_counter_ns
    stmt_ns: list[int] = [0] * pairs
    result_ns: list[int] = [0] * pairs
    overhead: list[int] = [0] * pairs
    for stmt, result in sdk_spans(1000, "warm"):
        on_end(stmt)
        on_end(result)
    assert processor.force_flush(10_000)
    worker0 = worker_cpu_s()
    app0 = time.thread_time()
    for i, (stmt, result) in enumerate(spans):
        t0 = clock()
        on_end(stmt)
        t1 = clock()
        on_end(result)
        t2 = clock()
        t3 = clock()
        stmt_ns[i] = t1 - t0
        result_ns[i] = t2 - t1
        overhead[i] = t3 - t2
    app_cpu = time.thread_time() - app0
    assert processor.force_flush(30_000)
    worker = worker_cpu_s() - worker0
    stats = processor.stats()
    processor.shutdown_with_timeout(10.0)
    del spans
    gc.unfreeze()
    both = stmt_ns + result_ns
    return {
        "stmt_mean": statistics.fmean(stmt_ns) / 1000,
        "stmt_median": statistics.median(stmt_ns) / 1000,
        "stmt_p99": pct(stmt_ns, 0.99),
        "result_mean": statistics.fmean(result_ns) / 1000,
        "result_median": statistics.median(result_ns) / 1000,
        "result_p99": pct(result_ns, 0.99),
        "all_mean": statistics.fmean(both) / 1000,
        "all_median": statistics.median(both) / 1000,
        "timer": statistics.median(overhead) / 1000,
        "worker_us_per_statement": worker / pairs * 1e6,
        "app_cpu_us_per_span": app_cpu / (2 * pairs) * 1e6,
        "dropped": stats.records_dropped,
        "exported": sink.records,
    }


def bench_throughput(pairs: int, max_queue_size: int | None) -> dict[str, float]:
    spans = prebuilt(pairs, "tp")
    sink = NoOpSink()
    options = {} if max_queue_size is None else {"max_queue_size": max_queue_size}
    processor = StatementAggregationProcessor(sink, **options)  # type: ignore[arg-type]
    on_end = processor.on_end
    cpu0 = time.thread_time()
    start = time.perf_counter()
    for stmt, result in spans:
        on_end(stmt)
        on_end(result)
    fed = time.perf_counter() - start
    app_cpu = time.thread_time() - cpu0
    assert processor.force_flush(60_000)
    total = time.perf_counter() - start
    stats = processor.stats()
    processor.shutdown_with_timeout(10.0)
    del spans
    gc.unfreeze()
    return {
        "on_end_only_spans_s": 2 * pairs / fed,
        "sustained_spans_s": 2 * pairs / total,
        "app_cpu_us_per_span": app_cpu / (2 * pairs) * 1e6,
        "exported": sink.records,
        "dropped": stats.records_dropped,
    }


def bench_memory(checkpoints: list[int]) -> list[tuple[int, float, int, int]]:
    sink = NoOpSink()
    processor = StatementAggregationProcessor(sink)
    on_end = processor.on_end
    rows: list[tuple[int, float, int, int]] = []
    # warm-up: let the bounded structures (recent-ids memory, queue) reach their steady size
    done = 0
    target_iter = iter(sorted(checkpoints))
    target = next(target_iter)
    warm = 20_000
    base_rss = 0.0
    total = warm + max(checkpoints)
    while done < total:
        sid = f"mem-{done:09d}"
        on_end(readable(statement_attrs(sid), T0, T0 + 5_000_000))
        on_end(readable(result_attrs(sid), T0 + 5_000_000, T0 + 9_000_000))
        done += 1
        if done % 2000 == 0:
            processor.force_flush(30_000)
        if done == warm:
            processor.force_flush(30_000)
            gc.collect()
            base_rss = rss_mib()
            rows.append((0, base_rss, processor.stats().live_statements, sys.getallocatedblocks()))
        if done == warm + target:
            processor.force_flush(30_000)
            gc.collect()
            stats = processor.stats()
            rows.append((target, rss_mib(), stats.live_statements, sys.getallocatedblocks()))
            target = next(target_iter, -1)
    processor.shutdown_with_timeout(10.0)
    return rows


def bench_span_baseline(n: int) -> float:
    """Cost of creating and ending one SDK span with the STATEMENT attributes, no processor."""
    provider = TracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer(A.INSTRUMENTATION_SCOPE)
    attrs = statement_attrs("x")
    start = time.perf_counter()
    for _ in range(n):
        tracer.start_span("SELECT orders", attributes=attrs).end()
    return (time.perf_counter() - start) / n * 1e6


def print_memory(checkpoints: list[int]) -> None:
    rows = bench_memory(checkpoints)
    print("memory after N completed statements (after 20k warm-up statements), fresh process")
    print("| statements | RSS MiB | RSS delta MiB | allocated blocks delta | live statements |")
    print("| --- | --- | --- | --- | --- |")
    base_rss, base_blocks = rows[0][1], rows[0][3]
    for n, rss, live, blocks in rows:
        print(f"| {n:,} | {rss:.1f} | {rss - base_rss:+.1f} | {blocks - base_blocks:+,} | {live} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--memory", default="100000,1000000")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkpoints = [int(x) for x in args.memory.split(",") if x]
    if args.memory_only:
        print_memory(checkpoints)
        return 0

    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus;"
        f" {args.pairs:,} STATEMENT+RESULT pairs"
    )
    baseline = bench_span_baseline(20_000)
    cost = bench_cost(args.pairs)
    print()
    print("on_end wall time per span (us), worker running (its GIL slices land in the mean/p99)")
    print("| span | mean | median | p99 |")
    print("| --- | --- | --- | --- |")
    print(
        f"| STATEMENT (stays live) | {cost['stmt_mean']:.2f} | {cost['stmt_median']:.2f}"
        f" | {cost['stmt_p99']:.2f} |"
    )
    print(
        f"| RESULT (completes, queues) | {cost['result_mean']:.2f} | {cost['result_median']:.2f}"
        f" | {cost['result_p99']:.2f} |"
    )
    print(f"| both | {cost['all_mean']:.2f} | {cost['all_median']:.2f} | |")
    print(
        "app-thread CPU per on_end (excludes waiting for the GIL):"
        f" {cost['app_cpu_us_per_span']:.2f} us; worker CPU (record building + export):"
        f" {cost['worker_us_per_statement']:.1f} us per statement"
    )
    print(
        f"timer overhead per measurement {cost['timer']:.2f} us (included above);"
        f" SDK span create+end with these attributes, no processor: {baseline:.1f} us;"
        f" exported {cost['exported']:,}, dropped {cost['dropped']:,}"
    )

    print()
    print("sustained throughput, no-op sink (on_end + worker build/export, one GIL)")
    print(
        "| queue | on_end loop (spans/s) | end to end incl. worker (spans/s)"
        " | app-thread CPU per on_end (us) | dropped |"
    )
    print("| --- | --- | --- | --- | --- |")
    for queue in (None, 4 * args.pairs):
        tp = bench_throughput(args.pairs, queue)
        label = "default 2048" if queue is None else f"{queue:,}"
        print(
            f"| {label} | {tp['on_end_only_spans_s']:,.0f} | {tp['sustained_spans_s']:,.0f}"
            f" | {tp['app_cpu_us_per_span']:.2f} | {tp['dropped']:,} |"
        )

    print()
    sys.stdout.flush()
    # A fresh interpreter, so that the figures above leave no freed-but-kept memory behind.
    subprocess.run([sys.executable, __file__, "--memory-only", "--memory", args.memory], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
