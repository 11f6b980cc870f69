"""Builds the aggregation processor and the Databricks exporter behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

from opentelemetry_instrumentation_dbsql.aggregation.processor import (
    StatementAggregationProcessor,
)
from opentelemetry_instrumentation_dbsql.attributes import INSTRUMENTATION_SCOPE
from opentelemetry_instrumentation_dbsql.connection_export import ConnectionExport
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.version import __version__


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The processor that folds spans into per-statement records, and the Databricks exporter
    it hands them to (None when the user's own record sink takes them)."""

    processor: StatementAggregationProcessor
    exporter: ConnectionExport | None


def build_pipeline(
    options: InstrumentationOptions, record_sink: Any, meter_provider: Any = None
) -> Pipeline:
    """The processor feeds ``record_sink`` if one is given, else the Databricks exporter.
    Per-connection ``connect()`` arguments can still turn export on, so the exporter exists
    unless the user's sink replaces it."""
    exporter: ConnectionExport | None = None
    sink = record_sink
    if sink is None:
        # Imported here: the exporter (and urllib3 behind it) loads only when it is used.
        from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink

        meter = metrics.get_meter(INSTRUMENTATION_SCOPE, __version__, meter_provider)
        sink = exporter = DatabricksTelemetrySink(meter=meter)
    # The options already resolved the environment (one warning per bad variable), so every
    # value is passed explicitly and the processor does not read the environment again.
    processor = StatementAggregationProcessor(
        sink,
        max_batch_size=options.aggregation_batch_size,
        flush_interval_s=options.aggregation_flush_interval,
        max_live_statements=options.aggregation_max_statements,
        statement_idle_timeout_s=options.aggregation_idle_timeout,
    )
    return Pipeline(processor, exporter)
