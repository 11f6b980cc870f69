"""OpenTelemetry instrumentation for the Databricks SQL Python driver."""

from opentelemetry_instrumentation_dbsql.version import __version__

__all__ = ["__version__"]
