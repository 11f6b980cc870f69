"""Builders of aggregation records with every field set, for the export tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from opentelemetry_instrumentation_dbsql.aggregation.records import (
    ChunkDetails,
    ConnectionRecord,
    ErrorRecord,
    StatementRecord,
)


def statement_record(
    session_id: str | None, host: str, port: int | None, **changes: Any
) -> StatementRecord:
    """A complete statement record; ``changes`` override fields."""
    record = StatementRecord(
        session_id=session_id,
        statement_id=str(uuid.uuid4()),
        host=host,
        port=port,
        operation_type="EXECUTE_STATEMENT",
        statement_type="QUERY",
        start_time_ns=time.time_ns(),
        execute_latency_ms=42,
        consumption_latency_ms=17,
        poll_count=3,
        poll_latency_ms=9,
        retry_count=2,
        result_format="EXTERNAL_LINKS",
        compressed=True,
        returned_rows=1000,
        rows_modified=None,
        result_bytes=123456,
        fetch_round_trips=4,
        chunks=ChunkDetails(
            initial_chunk_latency_ms=5,
            slowest_chunk_latency_ms=11,
            total_chunks_present=6,
            total_chunks_iterated=4,
            sum_chunks_download_time_ms=30,
        ),
        is_async=False,
        batch_size=None,
        cancelled=False,
        error=None,
        complete=True,
        completion_reason="closed",
    )
    return replace(record, **changes)


def connection_record(
    session_id: str | None, host: str, port: int | None, **changes: Any
) -> ConnectionRecord:
    """A CREATE_SESSION record; ``changes`` override fields."""
    record = ConnectionRecord(
        operation_type="CREATE_SESSION",
        session_id=session_id,
        host=host,
        port=port,
        http_path="/sql/1.0/warehouses/abc123",
        backend="thrift",
        auth_mechanism="PAT",
        start_time_ns=time.time_ns(),
        latency_ms=55,
        error=None,
    )
    return replace(record, **changes)


def error_record(category: str = "syntax_error") -> ErrorRecord:
    """A terminal error of the given category."""
    return ErrorRecord(
        error_type="databricks.sql.exc.ServerOperationError",
        category=category,
        terminal=True,
        sqlstate="42601",
    )
