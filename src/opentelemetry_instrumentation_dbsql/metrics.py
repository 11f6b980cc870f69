"""The metric instruments: stable database client metrics plus Databricks counters.

Only low-cardinality attributes are used: never a statement id, session id or query text.
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

OPERATION_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
RETURNED_ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class Instruments:
    """All instruments of one meter."""

    __slots__ = (
        "chunks",
        "connection_count",
        "connection_create_time",
        "operation_duration",
        "polls",
        "result_bytes",
        "retries",
        "returned_rows",
    )

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
        self.chunks = meter.create_counter(
            "databricks.client.result.chunks",
            unit="{chunk}",
            description="Result chunks received (CloudFetch files and inline result pages).",
        )
        self.result_bytes = meter.create_counter(
            "databricks.client.result.bytes",
            unit="By",
            description="Result bytes received on the wire.",
        )
        self.polls = meter.create_counter(
            "databricks.client.operation.status_polls",
            unit="{poll}",
            description="GetOperationStatus polls made while waiting for statements.",
        )
        self.retries = meter.create_counter(
            "databricks.client.retries",
            unit="{retry}",
            description="HTTP request retries made by the driver.",
        )
