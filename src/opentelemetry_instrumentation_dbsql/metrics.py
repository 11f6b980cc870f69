"""The metric instruments: stable database client metrics plus Databricks counters.

Only low-cardinality attributes are used: never a statement id, session id or query text.
The Databricks counters are observable: statements add to plain in-process totals (a dict
update under a lock), and the SDK reads the totals when it collects. The two histogram records
of each statement are deferred the same way: the statement appends them to a bounded buffer,
and the observable counters' callbacks record them into the histograms at the start of every
collection (before the SDK reads the histograms), so the application thread pays for an append
instead of the SDK's attribute validation, hashing and aggregation.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.version import __version__

AttributeSet = tuple[tuple[str, str | bool | int | float], ...]


class CounterTotals:
    """Monotonic totals per attribute set, read by an observable counter's callback."""

    __slots__ = ("_attributes", "_lock", "_totals")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[AttributeSet, int] = {}
        self._attributes: dict[AttributeSet, dict[str, str | bool | int | float]] = {}

    def add(self, amount: int, key: AttributeSet, attributes: Mapping[str, object]) -> None:
        """Add ``amount`` to the total of ``key`` (``attributes`` is its dict form)."""
        with self._lock:
            total = self._totals.get(key)
            if total is None:
                self._attributes[key] = dict(attributes)  # type: ignore[arg-type]
                total = 0
            self._totals[key] = total + amount

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        """The callback: one observation per attribute set."""
        with self._lock:
            items = list(self._totals.items())
        return [Observation(total, self._attributes[key]) for key, total in items]


DEFERRED_LIMIT = 4096  # buffered records; the caller that fills the buffer records them all


class DeferredRecords:
    """Histogram records buffered until the SDK collects (thread-safe, bounded)."""

    __slots__ = ("_buffer", "_limit")

    def __init__(self, limit: int = DEFERRED_LIMIT) -> None:
        self._buffer: deque[tuple[Histogram, float, Mapping[str, object], Context]] = deque()
        self._limit = limit

    def record(
        self,
        histogram: Histogram,
        amount: float,
        attributes: Mapping[str, object],
        context: Context,
    ) -> None:
        """Buffer one record; ``attributes`` must not change afterwards. A full buffer (no
        reader collecting) is recorded at once, so memory stays bounded and nothing is lost."""
        buffer = self._buffer
        buffer.append((histogram, amount, attributes, context))
        if len(buffer) >= self._limit:
            self.drain()

    def drain(self) -> None:
        """Record everything buffered into its histogram."""
        pop = self._buffer.popleft
        while True:
            try:
                histogram, amount, attributes, context = pop()
            except IndexError:
                return
            try:
                histogram.record(amount, attributes, context)  # type: ignore[arg-type]
            except Exception as exc:
                log_failure_once("metric-record", exc)


OVERFLOW_VALUE = "_OTHER"
SUMMARY_VALUES_LIMIT = 1000
COLLECTION_VALUES_LIMIT = 1000


class ValueLimit:
    """The first ``limit`` distinct values of one metric attribute; later ones read ``_OTHER``.

    Statement text can name tables without limit, and every distinct value is a time series of
    each statement metric, held for the life of the process.
    """

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def admit(self, value: str) -> str:
        """``value`` if it is one of the first ``limit`` seen, else ``_OTHER``."""
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen or len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OVERFLOW_VALUE


OPERATION_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
RETURNED_ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class Instruments:
    """All instruments of one meter."""

    __slots__ = (
        "chunks",
        "collections",
        "connection_count",
        "connection_create_time",
        "deferred",
        "operation_duration",
        "polls",
        "result_bytes",
        "retries",
        "returned_rows",
        "server_duration",
        "summaries",
    )

    chunks: CounterTotals
    result_bytes: CounterTotals
    polls: CounterTotals
    retries: CounterTotals

    def __init__(self, meter: Meter) -> None:
        self.operation_duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        self.returned_rows = meter.create_histogram(
            "db.client.response.returned_rows",
            unit="{row}",
            description="The actual number of records returned by the database.",
            explicit_bucket_boundaries_advisory=list(RETURNED_ROWS_BUCKETS),
        )
        self.server_duration = meter.create_histogram(
            "databricks.server.operation.duration",
            unit="s",
            description="The server's own time for database operations, as its status reports.",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        self.connection_create_time = meter.create_histogram(
            "db.client.connection.create_time",
            unit="s",
            description="The time it took to create a new connection.",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        self.connection_count = meter.create_up_down_counter(
            "db.client.connection.count",
            unit="{connection}",
            description="The number of connections that are currently open.",
        )
        self.deferred = DeferredRecords()
        self.summaries = ValueLimit(SUMMARY_VALUES_LIMIT)
        self.collections = ValueLimit(COLLECTION_VALUES_LIMIT)
        self.chunks = CounterTotals()
        self.result_bytes = CounterTotals()
        self.polls = CounterTotals()
        self.retries = CounterTotals()
        meter.create_observable_counter(
            "databricks.client.result.chunks",
            callbacks=[self._after_drain(self.chunks.observe)],
            unit="{chunk}",
            description="Result chunks downloaded (CloudFetch files; inline pages are not chunks).",
        )
        meter.create_observable_counter(
            "databricks.client.result.bytes",
            callbacks=[self._after_drain(self.result_bytes.observe)],
            unit="By",
            description="Result bytes received on the wire.",
        )
        meter.create_observable_counter(
            "databricks.client.operation.status_polls",
            callbacks=[self._after_drain(self.polls.observe)],
            unit="{poll}",
            description="GetOperationStatus polls made while waiting for statements.",
        )
        meter.create_observable_counter(
            "databricks.client.retries",
            callbacks=[self._after_drain(self.retries.observe)],
            unit="{retry}",
            description="HTTP request retries made by the driver.",
        )

    def _after_drain(
        self, observe: Callable[[CallbackOptions], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        # Every collection runs the observable callbacks before it reads the histograms: the
        # deferred records land in the collection that follows them.
        deferred = self.deferred

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            deferred.drain()
            return observe(options)

        return callback


class _GlobalProvider:
    """Registry key of the API's global meter provider, whatever it resolves to over time."""


_GLOBAL = _GlobalProvider()
_registry_lock = threading.Lock()
_registry: weakref.WeakKeyDictionary[object, Instruments] = weakref.WeakKeyDictionary()


def instruments_for(meter_provider: MeterProvider | None) -> Instruments:
    """The one set of instruments on ``meter_provider`` (``None``: the global one).

    The SDK hands out one cached meter per provider and scope, keeps the first instrument of
    each name and ignores the callbacks of a second observable instrument: a second set of
    instruments on the same meter would count into totals nobody reads and buffer records
    nobody drains. So every runtime on the same provider shares one set. The global provider
    is one key: meters taken from the API's proxy before the SDK provider was set are bound to
    that provider's meter once it is.
    """
    provider: object | None = meter_provider
    if provider is None or provider is metrics.get_meter_provider():
        provider = _GLOBAL
    with _registry_lock:
        found = _registry.get(provider)
        if found is None:
            meter = metrics.get_meter(
                attr.INSTRUMENTATION_SCOPE, __version__, meter_provider, schema_url=attr.SCHEMA_URL
            )
            found = Instruments(meter)
            # A provider that takes no weak reference gets a set of its own each time.
            with contextlib.suppress(TypeError):
                _registry[provider] = found
        return found
