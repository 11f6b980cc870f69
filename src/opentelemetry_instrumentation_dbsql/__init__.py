"""OpenTelemetry instrumentation for the Databricks SQL Python driver (databricks-sql-connector).

Usage::

    from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

    DbsqlInstrumentor().instrument()
"""

from opentelemetry_instrumentation_dbsql.instrumentor import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.tags import statement_tags
from opentelemetry_instrumentation_dbsql.version import __version__

__all__ = ["DbsqlInstrumentor", "__version__", "statement_tags"]
