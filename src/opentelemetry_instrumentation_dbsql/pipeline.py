"""Builds the aggregation processor and the Databricks exporter behind it."""

from __future__ import annotations

from typing import Any

from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions


def build_pipeline(
    options: InstrumentationOptions, record_sink: Any, meter_provider: Any = None
) -> tuple[Any, Any]:
    """``(processor, exporter)``: the processor feeds ``record_sink`` if one is given, else the
    Databricks exporter. Per-connection ``connect()`` arguments can still turn export on, so
    the exporter exists unless no sink could ever be wanted."""
    from opentelemetry_instrumentation_dbsql.aggregation.processor import (
        StatementAggregationProcessor,
    )

    exporter: Any = None
    sink = record_sink
    if sink is None:
        from opentelemetry import metrics

        from opentelemetry_instrumentation_dbsql.attributes import INSTRUMENTATION_SCOPE
        from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink
        from opentelemetry_instrumentation_dbsql.version import __version__

        meter = metrics.get_meter(INSTRUMENTATION_SCOPE, __version__, meter_provider)
        exporter = DatabricksTelemetrySink(meter=meter)
        sink = exporter
    # The options already resolved the environment (one warning per bad variable), so every
    # value is passed explicitly and the processor does not read the environment again.
    processor = StatementAggregationProcessor(
        sink,
        max_batch_size=options.aggregation_batch_size,
        flush_interval_s=options.aggregation_flush_interval,
        max_live_statements=options.aggregation_max_statements,
        statement_idle_timeout_s=options.aggregation_idle_timeout,
    )
    return processor, exporter
