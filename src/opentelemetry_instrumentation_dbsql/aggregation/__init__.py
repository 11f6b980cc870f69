"""Per-statement aggregation: spans in, one immutable record per statement out.

``StatementAggregationProcessor`` is an SDK ``SpanProcessor``; it hands batches of
``StatementRecord`` / ``ConnectionRecord`` to a ``RecordSink`` on its own worker thread.
"""

from opentelemetry_instrumentation_dbsql.aggregation.config import (
    ENV_BATCH_SIZE,
    ENV_FLUSH_INTERVAL,
    ENV_IDLE_TIMEOUT,
    ENV_MAX_STATEMENTS,
    AggregationConfig,
)
from opentelemetry_instrumentation_dbsql.aggregation.direct import make_readable_span
from opentelemetry_instrumentation_dbsql.aggregation.processor import (
    StatementAggregationProcessor,
)
from opentelemetry_instrumentation_dbsql.aggregation.records import (
    ChunkDetails,
    ConnectionRecord,
    ErrorRecord,
    RecordSink,
    StatementRecord,
    TelemetryRecord,
)
from opentelemetry_instrumentation_dbsql.aggregation.sinks import CollectingSink, LoggingSink
from opentelemetry_instrumentation_dbsql.aggregation.stats import AggregationStats

__all__ = [
    "ENV_BATCH_SIZE",
    "ENV_FLUSH_INTERVAL",
    "ENV_IDLE_TIMEOUT",
    "ENV_MAX_STATEMENTS",
    "AggregationConfig",
    "AggregationStats",
    "ChunkDetails",
    "CollectingSink",
    "ConnectionRecord",
    "ErrorRecord",
    "LoggingSink",
    "RecordSink",
    "StatementAggregationProcessor",
    "StatementRecord",
    "TelemetryRecord",
    "make_readable_span",
]
