"""Ready-made ``RecordSink`` implementations: in memory (tests, inspection) and to a logger."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from time import monotonic

from opentelemetry_instrumentation_dbsql import process_events
from opentelemetry_instrumentation_dbsql.aggregation.records import (
    ConnectionRecord,
    StatementRecord,
    TelemetryRecord,
)


class CollectingSink:
    """Keeps every record it receives, in order; thread-safe and fork-safe."""

    def __init__(self) -> None:
        self._init_runtime()
        # A forked child starts empty, with a lock nobody holds.
        process_events.after_fork(self._init_runtime)

    def _init_runtime(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._records: list[TelemetryRecord] = []
        self._batch_sizes: list[int] = []
        self._shutdown = False

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        """Append one batch."""
        with self._cond:
            self._records.extend(records)
            self._batch_sizes.append(len(records))
            self._cond.notify_all()

    def shutdown(self, timeout_s: float) -> None:
        """Mark the sink shut down (records stay readable)."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    @property
    def records(self) -> list[TelemetryRecord]:
        """A copy of every record received so far."""
        with self._cond:
            return list(self._records)

    @property
    def statement_records(self) -> list[StatementRecord]:
        """The statement records received so far."""
        with self._cond:
            return [r for r in self._records if isinstance(r, StatementRecord)]

    @property
    def connection_records(self) -> list[ConnectionRecord]:
        """The connection records received so far."""
        with self._cond:
            return [r for r in self._records if isinstance(r, ConnectionRecord)]

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batch received, in order."""
        with self._cond:
            return list(self._batch_sizes)

    @property
    def is_shutdown(self) -> bool:
        """True once ``shutdown`` was called."""
        with self._cond:
            return self._shutdown

    def clear(self) -> None:
        """Forget what was received."""
        with self._cond:
            self._records.clear()
            self._batch_sizes.clear()

    def wait_for(
        self, predicate: Callable[[Sequence[TelemetryRecord]], bool], timeout: float
    ) -> bool:
        """Wait until ``predicate(records)`` is true; False if ``timeout`` seconds pass first."""
        deadline = monotonic() + timeout
        with self._cond:
            while not predicate(self._records):
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


class LoggingSink:
    """Logs each record (its ``repr``) on a logger; for debugging."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self._logger = logger or logging.getLogger(
            "opentelemetry_instrumentation_dbsql.aggregation.records"
        )
        self._level = level

    def export(self, records: Sequence[TelemetryRecord]) -> None:
        """Log every record of the batch."""
        if not self._logger.isEnabledFor(self._level):
            return
        for record in records:
            self._logger.log(self._level, "%r", record)

    def shutdown(self, timeout_s: float) -> None:
        """Nothing to release."""
