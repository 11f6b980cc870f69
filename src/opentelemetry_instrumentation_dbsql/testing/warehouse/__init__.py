"""A local Databricks SQL warehouse for tests and demos: the real driver talks to it.

One HTTP server on 127.0.0.1 answers the Thrift TCLIService RPCs (backed by an embedded
DuckDB database, Databricks SQL translated by sqlglot), the feature-flag and telemetry
endpoints, CloudFetch downloads and staging (volume) operations with their pre-signed
transfers, with per-statement scripts and fault injection::

    with LocalWarehouse() as wh:
        wh.execute_sql("CREATE TABLE t AS SELECT * FROM range(10)")
        wh.script("SELECT * FROM t", running_polls=2, result_format="cloudfetch")
        with databricks.sql.connect(**wh.connect_kwargs()) as conn:
            ...
        wh.rpc_names(), wh.served, wh.telemetry.events()

Unscripted statements finish at ExecuteStatement and, when the client asks for direct
results, come back whole in that response (the operation closed server-side when every row
fit). Results use inline Arrow when the client reads Arrow (CloudFetch above
``cloudfetch_min_rows`` rows when it can download, column-based when it cannot read Arrow).
The Databricks catalog ``main`` is DuckDB's default database ``memory`` (see ``translate``).
"""

from opentelemetry_instrumentation_dbsql.testing.warehouse.endpoints import (
    TELEMETRY_FLAG,
    FeatureFlagEndpoint,
    TelemetryEndpoint,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import EngineError
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import (
    HttpRecord,
    RpcRecord,
    ServedFile,
    ServedStatement,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import FORMATS
from opentelemetry_instrumentation_dbsql.testing.warehouse.scripting import (
    ScriptHandle,
    StatementScript,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.staging import ServedTransfer
from opentelemetry_instrumentation_dbsql.testing.warehouse.warehouse import LocalWarehouse

__all__ = [
    "FORMATS",
    "TELEMETRY_FLAG",
    "EngineError",
    "FeatureFlagEndpoint",
    "HttpRecord",
    "LocalWarehouse",
    "RpcRecord",
    "ScriptHandle",
    "ServedFile",
    "ServedStatement",
    "ServedTransfer",
    "StatementScript",
    "TelemetryEndpoint",
]
