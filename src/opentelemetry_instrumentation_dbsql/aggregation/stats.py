"""Self-observability of the aggregation processor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AggregationStats:
    """Counters since the processor was built (in a forked child: since the fork).

    Every record emitted into the queue is, at any time, exported, dropped (one ``dropped_*``
    field), still queued, or in the export under way: ``records_emitted == records_exported +
    records_dropped + queued_records + (records in flight)``. Statements that left the table
    without completing are emitted as incomplete records and counted in ``evicted_*`` (or
    have ``completion_reason == "shutdown"``).
    """

    statement_records: int  # statement records emitted into the queue (complete or not)
    connection_records: int  # CREATE_SESSION / DELETE_SESSION records emitted
    batches_exported: int  # sink.export calls that returned
    records_exported: int  # records in those batches
    dropped_queue_full: int  # oldest pending records pushed out of the full queue
    dropped_sink_error: int  # records in batches whose export raised
    dropped_shutdown: int  # records that arrived after, or could not be exported before, shutdown
    dropped_export_timeout: int  # records in exports abandoned after the export timeout
    dropped_invalid: int  # records that could not be built (should stay 0)
    evicted_idle: int  # statements emitted incomplete after the idle timeout
    evicted_capacity: int  # statements emitted incomplete because max_live_statements was hit
    exports_abandoned: int  # sink.export calls abandoned (their thread was retired)
    spans_ignored: int  # spans of other scopes, without a role, or of a role with no data
    spans_late: int  # spans for a statement that had already completed (ignored)
    spans_after_shutdown: int  # spans of this scope that ended after shutdown (ignored)
    on_end_errors: int  # exceptions swallowed in on_end (should stay 0)
    live_statements: int  # gauge: statements waiting for completion
    queued_records: int  # gauge: records waiting for export

    @property
    def records_emitted(self) -> int:
        """All records emitted into the queue."""
        return self.statement_records + self.connection_records

    @property
    def records_dropped(self) -> int:
        """All records dropped, whatever the reason."""
        return (
            self.dropped_queue_full
            + self.dropped_sink_error
            + self.dropped_shutdown
            + self.dropped_export_timeout
            + self.dropped_invalid
        )
