"""A local Databricks SQL warehouse for tests and demos: the real driver talks to it.

One HTTP server on 127.0.0.1 answers the Thrift TCLIService RPCs (backed by an embedded
DuckDB database, Databricks SQL translated by sqlglot), the feature-flag and telemetry
endpoints and CloudFetch downloads, with per-statement scripts and fault injection.
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
    "StatementScript",
    "TelemetryEndpoint",
]
