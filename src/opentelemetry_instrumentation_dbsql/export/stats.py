"""Self-observability of the Databricks telemetry exporter: counts of exported and dropped records.

The counters are process-wide by default (``get_export_stats()``); a sink can be given its own
``ExportStats`` instance, which tests use to observe one sink in isolation.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from opentelemetry_instrumentation_dbsql import process_events

METRIC_PREFIX = "databricks.telemetry.export"


class DropReason(str, Enum):
    """Why records did not reach the telemetry endpoint."""

    BREAKER_OPEN = "breaker_open"
    QUEUE_FULL = "queue_full"
    TERMINAL_HTTP_ERROR = "terminal_http_error"
    DISABLED = "disabled"
    SHUTDOWN = "shutdown"
    FLAG_PENDING_OVERFLOW = "flag_pending_overflow"
    RETRIES_EXHAUSTED = "retries_exhausted"
    UNROUTABLE = "unroutable"
    ENCODE_ERROR = "encode_error"
    CREDENTIALS_ERROR = "credentials_error"


@dataclass(frozen=True)
class ExportStatsSnapshot:
    """A consistent copy of the counters at one instant."""

    exported: int
    dropped: Mapping[str, int]
    batches_sent: int
    batches_failed: int
    http_attempts: int
    retries: int
    flag_pending: int = 0
    queued: int = 0

    @property
    def dropped_total(self) -> int:
        """All dropped records, whatever the reason."""
        return sum(self.dropped.values())


@dataclass
class ExportStats:
    """Thread-safe counters; every method is cheap and never raises."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _exported: int = 0
    _dropped: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in DropReason})
    _batches_sent: int = 0
    _batches_failed: int = 0
    _http_attempts: int = 0
    _retries: int = 0
    # gauges maintained by the clients: records currently held
    _flag_pending: int = 0
    _queued: int = 0

    def record_exported(self, n: int) -> None:
        """Count ``n`` records accepted by the endpoint in one batch."""
        with self._lock:
            self._exported += n
            self._batches_sent += 1

    def record_dropped(self, reason: DropReason, n: int = 1, *, batch: bool = False) -> None:
        """Count ``n`` records dropped for ``reason``; ``batch`` marks a failed batch."""
        if n <= 0:
            return
        with self._lock:
            self._dropped[reason.value] = self._dropped.get(reason.value, 0) + n
            if batch:
                self._batches_failed += 1

    def record_attempt(self, *, retry: bool) -> None:
        """Count one HTTP attempt (``retry`` when it is not the batch's first)."""
        with self._lock:
            self._http_attempts += 1
            if retry:
                self._retries += 1

    def adjust_held(self, *, queued: int = 0, flag_pending: int = 0) -> None:
        """Move the gauges of records currently held in queues."""
        with self._lock:
            self._queued += queued
            self._flag_pending += flag_pending

    def __post_init__(self) -> None:
        process_events.after_fork(self.reset_lock)

    def reset_lock(self) -> None:
        """Replace the lock (in a forked child, where a parent thread may have held it)."""
        self._lock = threading.Lock()

    def snapshot(self) -> ExportStatsSnapshot:
        """Copy the counters."""
        with self._lock:
            return ExportStatsSnapshot(
                exported=self._exported,
                dropped=MappingProxyType(dict(self._dropped)),
                batches_sent=self._batches_sent,
                batches_failed=self._batches_failed,
                http_attempts=self._http_attempts,
                retries=self._retries,
                flag_pending=self._flag_pending,
                queued=self._queued,
            )


_GLOBAL_STATS = ExportStats()


def global_stats() -> ExportStats:
    """The process-wide counters that sinks use unless given their own."""
    return _GLOBAL_STATS


def get_export_stats() -> ExportStatsSnapshot:
    """Counts of records exported and dropped (by reason) since the process started."""
    return _GLOBAL_STATS.snapshot()


class _PublishedStats:
    """The counters one meter's export instruments read; the latest sink's on that meter."""

    __slots__ = ("source",)

    def __init__(self, source: ExportStats) -> None:
        self.source = source


_published_lock = threading.Lock()
_published: weakref.WeakKeyDictionary[Meter, _PublishedStats] = weakref.WeakKeyDictionary()


def register_export_metrics(meter: Meter, stats: ExportStats | None = None) -> None:
    """Publish ``stats`` (default: the process-wide counters) as observable instruments.

    The instruments are created once per meter: the SDK ignores the callbacks of a second
    instrument of the same name, so a later sink on the same meter re-points the first ones.
    """
    with _published_lock:
        published = _published.get(meter)
        if published is not None:
            published.source = stats if stats is not None else _GLOBAL_STATS
            return
        published = _PublishedStats(stats if stats is not None else _GLOBAL_STATS)
        with contextlib.suppress(TypeError):  # a meter without weak references: not shared
            _published[meter] = published

    def exported(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(published.source.snapshot().exported)]

    def dropped(_options: CallbackOptions) -> Iterable[Observation]:
        snap = published.source.snapshot()
        return [Observation(count, {"reason": reason}) for reason, count in snap.dropped.items()]

    def batches(_options: CallbackOptions) -> Iterable[Observation]:
        snap = published.source.snapshot()
        return [
            Observation(snap.batches_sent, {"outcome": "sent"}),
            Observation(snap.batches_failed, {"outcome": "failed"}),
        ]

    def attempts(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(published.source.snapshot().http_attempts)]

    def retries(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(published.source.snapshot().retries)]

    def held(_options: CallbackOptions) -> Iterable[Observation]:
        snap = published.source.snapshot()
        return [
            Observation(snap.queued, {"state": "queued"}),
            Observation(snap.flag_pending, {"state": "flag_pending"}),
        ]

    meter.create_observable_counter(
        f"{METRIC_PREFIX}.records",
        callbacks=[exported],
        unit="{record}",
        description="Telemetry records accepted by the Databricks telemetry endpoint.",
    )
    meter.create_observable_counter(
        f"{METRIC_PREFIX}.dropped",
        callbacks=[dropped],
        unit="{record}",
        description="Telemetry records dropped before reaching the endpoint, by reason.",
    )
    meter.create_observable_counter(
        f"{METRIC_PREFIX}.batches",
        callbacks=[batches],
        unit="{batch}",
        description="Telemetry batches, by outcome.",
    )
    meter.create_observable_counter(
        f"{METRIC_PREFIX}.http_attempts",
        callbacks=[attempts],
        unit="{request}",
        description="HTTP requests made to the telemetry endpoint, retries included.",
    )
    meter.create_observable_counter(
        f"{METRIC_PREFIX}.retries",
        callbacks=[retries],
        unit="{request}",
        description="HTTP requests that retried a batch.",
    )
    meter.create_observable_up_down_counter(
        f"{METRIC_PREFIX}.held",
        callbacks=[held],
        unit="{record}",
        description="Telemetry records currently held in queues.",
    )
