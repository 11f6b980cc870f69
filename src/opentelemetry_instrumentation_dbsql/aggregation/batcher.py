"""Bounded queue of pending records, the one background worker, and the deadlines.

The worker (a daemon thread started on first use) is the only caller of ``sink.export``. It
exports a batch when ``max_batch_size`` items are pending, every ``flush_interval_s``, and at
once after an urgent item (connection records, terminal errors) or a flush request. Between
exports it runs the ``tick`` callback (the idle sweep of the statement table).

Items are normally turned into records on the worker. The worker competes for the GIL with
every application thread, so under a CPU-bound burst it can fall behind; once the queue holds
more than a fraction of its capacity, ``put`` builds the record on the calling thread instead,
leaving the worker only the export. The queue is bounded: when it is full the oldest item is
dropped and counted (``dropped_queue_full``).

Shutdown order: refuse new items, stop the timer and the sweep, flush what is pending and
drain the queue, wait for the in-flight export up to the deadline, stop the worker, then call
``sink.shutdown`` with the time left (on a helper thread joined with that timeout).

Deadlines: nothing joins the worker without a timeout. ``force_flush`` and ``shutdown`` wait
on a condition with their deadline. An export running longer than ``export_timeout_s`` (seen
by the next ``put`` that wakes the worker, by a flush, or by shutdown) is abandoned: its
records are counted as dropped (``export_timeout``), the stuck thread is retired (when its
sink call returns it exits without touching anything) and a fresh worker takes over. At most
``MAX_ABANDONED_WORKERS`` retired threads may be stuck at once; beyond that the queue fills
and drops its oldest items (counted) until the sink returns.

Fork: in the child the queue, counters, locks and the worker are replaced (no old lock is
ever acquired there); a worker starts there on first use.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import monotonic

from opentelemetry.instrumentation.utils import (
    suppress_http_instrumentation,
    suppress_instrumentation,
)

from opentelemetry_instrumentation_dbsql import process_events
from opentelemetry_instrumentation_dbsql.aggregation.config import AggregationConfig
from opentelemetry_instrumentation_dbsql.aggregation.pending import (
    KIND_CONNECTION,
    KIND_STATEMENT,
    BuiltItem,
    PendingItem,
)
from opentelemetry_instrumentation_dbsql.aggregation.records import RecordSink, TelemetryRecord

_logger = logging.getLogger(__name__)

MAX_ABANDONED_WORKERS = 2
_MIN_WAIT_S = 0.001


@dataclass(frozen=True, slots=True)
class BatcherCounters:
    """Counters of the batcher since it was built (or since fork, in a child)."""

    statement_records: int
    connection_records: int
    batches_exported: int
    records_exported: int
    dropped_queue_full: int
    dropped_sink_error: int
    dropped_shutdown: int
    dropped_export_timeout: int
    dropped_invalid: int
    exports_abandoned: int
    queued: int


def _prebuilt(item: PendingItem) -> PendingItem:
    try:
        return BuiltItem(item.build())
    except Exception:
        return item  # the worker will fail on it again and count it


class RecordBatcher:
    """Queue + worker + deadlines. ``put`` is safe from any thread and never blocks on the sink.

    ``clock`` (default ``time.monotonic``) is the time of every deadline and timer; ``wait``
    (default ``threading.Event.wait``) is the worker's timed wait for its next timer or a
    wake-up. A test passes both to move time itself.
    """

    def __init__(
        self,
        sink: RecordSink,
        config: AggregationConfig,
        *,
        tick: Callable[[], None] | None = None,
        tick_interval_s: float = 1.0,
        name: str = "OtelDbsqlAggregation",
        clock: Callable[[], float] = monotonic,
        wait: Callable[[threading.Event, float], object] = threading.Event.wait,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._wait = wait  # the worker's sleep until its next timer or a wake-up
        # A batch larger than the queue could never fill up: it would wait for the timer.
        self._batch_size = min(config.max_batch_size, config.max_queue_size)
        # Past this many pending items the worker is falling behind (it competes for the GIL
        # with every application thread): producers then build their records themselves, so
        # the worker's share of the work shrinks to exporting and the queue does not overflow.
        self._prebuild_at = max(
            1,
            min(config.max_queue_size // 2, max(2 * self._batch_size, config.max_queue_size // 8)),
        )
        self._flush_interval = config.flush_interval_s
        self._max_queue = config.max_queue_size
        self._export_timeout = config.export_timeout_s
        self._tick = tick
        self._tick_interval = tick_interval_s
        self._name = name
        self._generation = 0
        self._closed = False
        self._init_runtime()
        process_events.after_fork(self._after_fork_in_child)

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._pending: deque[PendingItem] = deque()
        self._enqueued = 0  # items ever put (including dropped ones)
        self._done = 0  # items exported, failed or dropped; <= _enqueued
        self._urgent = False
        self._stopping = False
        self._waiters = 0
        self._worker: threading.Thread | None = None
        self._workers_started = 0
        self._generation += 1
        self._inflight_since: float | None = None
        self._inflight_count = 0
        self._abandoned_alive = 0
        self._warned: set[str] = set()
        self._emitted = [0, 0]
        self._batches_exported = 0
        self._records_exported = 0
        self._dropped_queue_full = 0
        self._dropped_sink_error = 0
        self._dropped_shutdown = 0
        self._dropped_export_timeout = 0
        self._dropped_invalid = 0
        self._exports_abandoned = 0

    def _after_fork_in_child(self) -> None:
        self._init_runtime()  # keeps _closed: a closed processor stays closed in the child

    # --- producers ---------------------------------------------------------------------------

    def put(self, item: PendingItem, urgent: bool = False) -> None:
        """Queue one item; drop the oldest pending item (counted) when the queue is full."""
        if len(self._pending) >= self._prebuild_at:  # unlocked read: a stale length is harmless
            item = _prebuilt(item)
        with self._lock:
            if self._closed:
                self._emitted[item.KIND] += 1
                self._dropped_shutdown += 1
                return
            self._append_locked(item)
            if urgent:
                self._urgent = True
            elif len(self._pending) < self._batch_size:
                if self._worker is None:
                    self._start_worker_locked()
                return
            self._wake_locked()

    def put_many(self, items: Iterable[PendingItem], urgent: bool = False) -> None:
        """Queue several items under one lock hold."""
        if len(self._pending) >= self._prebuild_at:
            items = [_prebuilt(item) for item in items]
        with self._lock:
            if self._closed:
                for item in items:
                    self._emitted[item.KIND] += 1
                    self._dropped_shutdown += 1
                return
            for item in items:
                self._append_locked(item)
            if urgent:
                self._urgent = True
            elif len(self._pending) < self._batch_size:
                if self._worker is None and self._pending:
                    self._start_worker_locked()
                return
            self._wake_locked()

    def start(self) -> None:
        """Start the worker if it is not running (the tick must run before any record)."""
        with self._lock:
            if self._worker is None and not self._closed:
                self._start_worker_locked()

    def _append_locked(self, item: PendingItem) -> None:
        self._emitted[item.KIND] += 1
        pending = self._pending
        if len(pending) >= self._max_queue:
            self._drop_oldest_locked()
        pending.append(item)
        self._enqueued += 1

    def _drop_oldest_locked(self) -> None:
        self._pending.popleft()
        self._dropped_queue_full += 1
        self._done += 1
        if self._waiters:
            self._progress.notify_all()
        self._warn_once_locked("queue_full", "aggregation queue full; dropping oldest records")

    def _wake_locked(self) -> None:
        if self._inflight_since is not None:
            self._abandon_if_hung_locked(self._clock())
        if self._worker is None:
            self._start_worker_locked()
        if not self._wake.is_set():
            self._wake.set()

    # --- flush and shutdown ------------------------------------------------------------------

    def force_flush(self, timeout_s: float) -> bool:
        """Export everything queued before the call; False on deadline or abandoned export."""
        deadline = self._clock() + max(0.0, timeout_s)
        if threading.current_thread() is self._worker:
            return False  # called from inside sink.export: waiting on ourselves cannot succeed
        with self._lock:
            if self._closed:
                return False
            target = self._enqueued
            if self._done >= target:
                return True
            abandoned_before = self._exports_abandoned
            self._urgent = True
            self._wake_locked()
            self._waiters += 1
            try:
                while self._done < target:
                    now = self._clock()
                    if self._inflight_since is not None:
                        self._abandon_if_hung_locked(now)
                    if self._worker is None:
                        self._start_worker_locked()
                        self._wake.set()
                    remaining = deadline - now
                    if remaining <= 0:
                        break
                    self._progress.wait(self._wait_slice_locked(remaining, now))
                return self._done >= target and self._exports_abandoned == abandoned_before
            finally:
                self._waiters -= 1

    def shutdown(self, deadline: float) -> bool:
        """Stop the timer, flush and drain, wait for the in-flight export, stop the worker,
        then shut the sink down with the time left. Returns within ``deadline`` (monotonic).

        Returns False when something was dropped for lack of time. Call once.
        """
        with self._lock:
            if self._stopping:
                return False  # a second call: the first one owns the shutdown
            abandoned_before = self._exports_abandoned
            drained = True
            self._closed = True
            self._stopping = True
            self._urgent = True
            if self._pending and self._worker is None:
                self._start_worker_locked()
            self._wake.set()
            self._waiters += 1
            try:
                while self._worker is not None:
                    now = self._clock()
                    if self._inflight_since is not None:
                        self._abandon_if_hung_locked(now)
                        if self._worker is None and self._pending:
                            self._start_worker_locked()
                            self._wake.set()
                            continue
                    remaining = deadline - now
                    if remaining <= 0:
                        break
                    self._progress.wait(self._wait_slice_locked(remaining, now))
            finally:
                self._waiters -= 1
            if self._worker is not None or self._pending:
                drained = False
                self._abandon_if_hung_locked(self._clock(), force=True)
                left = len(self._pending)
                self._pending = deque()
                self._dropped_shutdown += left
                self._done += left
                self._generation += 1  # an idle worker exits at its next look
                self._worker = None
                self._wake.set()
            drained = drained and self._exports_abandoned == abandoned_before
        return self._shutdown_sink(deadline) and drained

    def _shutdown_sink(self, deadline: float) -> bool:
        remaining = max(0.0, deadline - self._clock())

        def run() -> None:
            try:
                self._sink.shutdown(remaining)
            except Exception:
                _logger.warning("aggregation sink shutdown failed", exc_info=True)

        try:
            thread = threading.Thread(target=run, name=f"{self._name}SinkShutdown", daemon=True)
            thread.start()
        except RuntimeError:  # no new threads during interpreter finalization
            run()
            return True
        thread.join(remaining)
        return not thread.is_alive()

    def _wait_slice_locked(self, remaining: float, now: float) -> float:
        # Wake up when the in-flight export reaches its timeout, to abandon it on time.
        if self._inflight_since is None:
            return remaining
        due = self._inflight_since + self._export_timeout - now
        return max(_MIN_WAIT_S, min(remaining, due))

    def _abandon_if_hung_locked(self, now: float, force: bool = False) -> None:
        since = self._inflight_since
        if since is None:
            return
        if not force and (
            now - since < self._export_timeout or self._abandoned_alive >= MAX_ABANDONED_WORKERS
        ):
            return
        count = self._inflight_count
        self._inflight_since = None
        self._dropped_export_timeout += count
        self._done += count
        self._exports_abandoned += 1
        self._abandoned_alive += 1
        self._generation += 1
        self._worker = None
        self._progress.notify_all()
        self._warn_once_locked(
            "export_timeout",
            "aggregation sink export exceeded its timeout; batch abandoned",
        )

    # --- worker ------------------------------------------------------------------------------

    def _start_worker_locked(self) -> None:
        self._workers_started += 1
        suffix = "" if self._workers_started == 1 else f"-{self._workers_started}"
        thread = threading.Thread(
            target=self._run,
            args=(self._generation,),
            name=f"{self._name}Worker{suffix}",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:  # interpreter finalization: records stay queued, counted later
            self._warn_once_locked("no_thread", "cannot start the aggregation worker")
            return
        self._worker = thread

    def _run(self, generation: int) -> None:
        try:
            # Records must not turn into spans: the sink's HTTP calls stay uninstrumented.
            with suppress_instrumentation(), suppress_http_instrumentation():
                self._loop(generation)
        except BaseException:
            _logger.exception("aggregation worker failed")
            with self._lock:
                if generation == self._generation:
                    self._worker = None
                    self._progress.notify_all()

    def _loop(self, generation: int) -> None:
        lock = self._lock
        now = self._clock()
        next_flush = now + self._flush_interval
        next_tick = now + self._tick_interval
        while True:
            with lock:
                if generation != self._generation:
                    return
                busy = self._urgent or self._stopping or len(self._pending) >= self._batch_size
            if not busy:
                due = min(next_flush, next_tick) if self._tick is not None else next_flush
                delay = due - self._clock()
                if delay > 0:
                    self._wait(self._wake, delay)
            self._wake.clear()
            now = self._clock()
            with lock:
                if generation != self._generation:
                    return
                stopping = self._stopping
            if not stopping and self._tick is not None and now >= next_tick:
                next_tick = now + self._tick_interval
                try:
                    self._tick()
                except Exception:
                    _logger.warning("aggregation sweep failed", exc_info=True)
            with lock:
                flush_all = self._urgent or stopping or now >= next_flush
                self._urgent = False
                limit = self._enqueued
            if flush_all:
                next_flush = now + self._flush_interval
            if not self._drain(generation, flush_all, limit):
                return
            if stopping:
                with lock:
                    if generation != self._generation:
                        return
                    if not self._pending:
                        self._worker = None
                        self._progress.notify_all()
                        return

    def _drain(self, generation: int, flush_all: bool, limit: int) -> bool:
        """Export pending batches; False when this worker was retired meanwhile."""
        lock = self._lock
        batch_size = self._batch_size
        while True:
            with lock:
                if generation != self._generation:
                    return False
                pending = self._pending
                n = len(pending)
                if n == 0:
                    return True
                if n < batch_size and not (self._stopping or (flush_all and self._done < limit)):
                    return True
                take = min(n, batch_size)
                items = [pending.popleft() for _ in range(take)]
                self._inflight_since = self._clock()
                self._inflight_count = take
            records: list[TelemetryRecord] = []
            for item in items:
                try:
                    records.append(item.build())
                except Exception:
                    _logger.debug("could not build a record", exc_info=True)
            failed = False
            if records:
                try:
                    self._sink.export(records)
                except Exception:
                    failed = True
                    _logger.debug("aggregation sink export failed", exc_info=True)
            with lock:
                if generation != self._generation:
                    self._abandoned_alive -= 1  # retired while exporting; already counted
                    return False
                self._inflight_since = None
                self._done += take
                self._dropped_invalid += take - len(records)
                if failed:
                    self._dropped_sink_error += len(records)
                    self._warn_once_locked("sink_error", "aggregation sink export failed")
                elif records:
                    self._batches_exported += 1
                    self._records_exported += len(records)
                if self._waiters:
                    self._progress.notify_all()

    # --- introspection -----------------------------------------------------------------------

    def counters(self) -> BatcherCounters:
        """A consistent snapshot of the counters."""
        with self._lock:
            return BatcherCounters(
                statement_records=self._emitted[KIND_STATEMENT],
                connection_records=self._emitted[KIND_CONNECTION],
                batches_exported=self._batches_exported,
                records_exported=self._records_exported,
                dropped_queue_full=self._dropped_queue_full,
                dropped_sink_error=self._dropped_sink_error,
                dropped_shutdown=self._dropped_shutdown,
                dropped_export_timeout=self._dropped_export_timeout,
                dropped_invalid=self._dropped_invalid,
                exports_abandoned=self._exports_abandoned,
                queued=len(self._pending),
            )

    def _warn_once_locked(self, kind: str, message: str) -> None:
        if kind in self._warned:
            _logger.debug(message)
            return
        self._warned.add(kind)
        _logger.warning("%s (further occurrences are counted in stats())", message)
