"""OpenTelemetry instrumentation for the Databricks SQL Python driver (databricks-sql-connector).

Usage::

    from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

    DbsqlInstrumentor().instrument()
"""

from opentelemetry_instrumentation_dbsql.instrumentor import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.statement_info import StatementHook, StatementInfo
from opentelemetry_instrumentation_dbsql.tags import statement_tags
from opentelemetry_instrumentation_dbsql.version import __version__

__all__ = ["DbsqlInstrumentor", "StatementHook", "StatementInfo", "__version__", "statement_tags"]
