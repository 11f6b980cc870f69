"""Export of aggregated records to the Databricks driver-telemetry endpoint.

``sink.DatabricksTelemetrySink`` is the entry point; ``stats.get_export_stats`` reports what it
exported and dropped. Nothing here imports the driver.
"""

from opentelemetry_instrumentation_dbsql.export.stats import get_export_stats

__all__ = ["get_export_stats"]
