"""Names of the span attributes and span roles this instrumentation emits.

The spans are the single source of truth: the aggregation processor reads exactly these names,
so every producer and consumer imports them from here.

Span roles (attribute ``databricks.span.role``):

``CREATE_SESSION``
    ``Connection.__init__``: opening the session. Ends when ``connect()`` returns or raises.
``DELETE_SESSION``
    ``Connection.close()``. Every statement of the session completes at the latest here.
``STATEMENT``
    One statement execution: ``execute``, ``executemany`` (one span for the whole batch),
    ``execute_async`` through ``get_async_execution_result``, the metadata calls, ``commit``
    and ``rollback``. Ends when results are ready (or on failure). Carries the statement id,
    and either ``db.response.returned_rows`` (the result arrived whole with the response: the
    statement is complete) or ``databricks.result.open`` (True: a ``RESULT`` span follows, for
    a result fetched in further round trips). For ``executemany``
    it carries ``db.operation.batch.size``, the batch's total ``databricks.rows.modified`` and
    one ``databricks.batch.statement`` event per inner execution that succeeded (its statement
    id, latency and modified rows); the last member's statement id is the span's own, and a
    failing member's error is the span's error.
``RESULT``
    The consumption of a result that needs further round trips (more pages or CloudFetch
    files): starts when the result is ready, ends when
    the statement completes (result closed, cursor closed or re-executed, connection closed).
    Its end is the completion signal of the statement. Child of the ``STATEMENT`` span.
``CHUNK_DOWNLOAD``
    One CloudFetch file download, child of the span that was current for the statement when
    the download was scheduled.
``VOLUME_TRANSFER``
    The HTTP transfer of a staging (volume) statement (``PUT``, ``GET``, ``REMOVE``) to the
    pre-signed URL the server answered with, made by the driver inside ``execute()``: child of
    the ``STATEMENT`` span, which carries ``databricks.volume.operation``. Spans only.
``CANCEL``
    ``Cursor.cancel()``.
``TRANSACTION``
    ``Connection.commit()`` / ``rollback()``: spans and metrics only, no statement record.
"""

from __future__ import annotations

from typing import Final

# Instrumentation scope name of every span this package creates; the aggregation processor
# reads only spans of this scope.
INSTRUMENTATION_SCOPE: Final = "opentelemetry.instrumentation.dbsql"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.33.0"

# --- stable semantic conventions -------------------------------------------------------------
DB_SYSTEM_NAME: Final = "db.system.name"
DB_NAMESPACE: Final = "db.namespace"
DB_QUERY_TEXT: Final = "db.query.text"
DB_QUERY_SUMMARY: Final = "db.query.summary"
DB_OPERATION_NAME: Final = "db.operation.name"
DB_COLLECTION_NAME: Final = "db.collection.name"
DB_OPERATION_BATCH_SIZE: Final = "db.operation.batch.size"
DB_RESPONSE_STATUS_CODE: Final = "db.response.status_code"
DB_RESPONSE_RETURNED_ROWS: Final = "db.response.returned_rows"
DB_QUERY_PARAMETER_PREFIX: Final = "db.query.parameter."
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

DB_SYSTEM_VALUE: Final = "databricks"

# OTEL_SEMCONV_STABILITY_OPT_IN=database/dup: the names before the stable conventions (what
# the contrib dbapi instrumentation writes), set beside the stable ones on statement spans.
OLD_NAMES: Final = {
    DB_SYSTEM_NAME: "db.system",
    DB_QUERY_TEXT: "db.statement",
    DB_OPERATION_NAME: "db.operation",
    DB_NAMESPACE: "db.name",
    DB_COLLECTION_NAME: "db.sql.table",
    SERVER_ADDRESS: "net.peer.name",
    SERVER_PORT: "net.peer.port",
}


def add_old_names(attributes: dict[str, str | bool | int | float]) -> None:
    """Copy each stable attribute that has an older name under that name too."""
    for stable, old in OLD_NAMES.items():
        value = attributes.get(stable)
        if value is not None:
            attributes[old] = value


# --- vendor attributes -----------------------------------------------------------------------
SPAN_ROLE: Final = "databricks.span.role"
SESSION_ID: Final = "databricks.session.id"
STATEMENT_ID: Final = "databricks.statement.id"
HTTP_PATH: Final = "databricks.http_path"
WAREHOUSE_ID: Final = "databricks.warehouse.id"
CATALOG: Final = "databricks.catalog"
SCHEMA: Final = "databricks.schema"
BACKEND: Final = "databricks.backend"  # "thrift" | "sea" | "kernel"
AUTH_MECH: Final = "databricks.auth.mechanism"  # "PAT" | "OAUTH" | "OTHER"

OPERATION_TYPE: Final = "databricks.operation.type"  # EXECUTE_STATEMENT, LIST_TABLES, ...
STATEMENT_TYPE: Final = "databricks.statement.type"  # QUERY | SQL | UPDATE | METADATA
IS_ASYNC: Final = "databricks.statement.async"
RESULT_FORMAT: Final = "databricks.result.format"  # INLINE_ARROW|EXTERNAL_LINKS|COLUMNAR_INLINE
RESULT_COMPRESSED: Final = "databricks.result.compressed"
RESULT_CHUNKS_PRESENT: Final = "databricks.result.chunks.present"
RESULT_CHUNKS_ITERATED: Final = "databricks.result.chunks.iterated"
RESULT_CHUNKS_DOWNLOAD_MS: Final = "databricks.result.chunks.download_time_ms"
RESULT_CHUNKS_INITIAL_MS: Final = "databricks.result.chunks.initial_latency_ms"
RESULT_CHUNKS_SLOWEST_MS: Final = "databricks.result.chunks.slowest_latency_ms"
RESULT_BYTES: Final = "databricks.result.bytes"  # wire bytes received for result data
RESULT_FETCH_CALLS: Final = "databricks.result.fetch_calls"
RESULT_FETCH_ROUND_TRIPS: Final = "databricks.result.fetch_round_trips"  # FetchResults RPCs
RESULT_FETCH_TIME_MS: Final = "databricks.result.fetch_time_ms"  # time inside fetch calls
RESULT_CLOSE_REASON: Final = "databricks.result.close_reason"
# On a STATEMENT span: True when a RESULT span for the same statement id follows and completes
# the statement; False or absent when the statement is complete when its STATEMENT span ends.
RESULT_OPEN: Final = "databricks.result.open"
ROWS_MODIFIED: Final = "databricks.rows.modified"
# The server's own time for the statement (operationCompleted - operationStarted of its status)
# and the rest of the STATEMENT span's duration: client and network.
SERVER_DURATION_MS: Final = "databricks.server.duration_ms"
CLIENT_NETWORK_DURATION_MS: Final = "databricks.client_and_network.duration_ms"
POLL_COUNT: Final = "databricks.status_polls.count"
POLL_LATENCY_MS: Final = "databricks.status_polls.latency_ms"
RETRY_COUNT: Final = "databricks.retries.count"
CANCELLED: Final = "databricks.statement.cancelled"
ERROR_CATEGORY: Final = "databricks.error.category"
ERROR_TERMINAL: Final = "databricks.error.terminal"
TAG_PREFIX: Final = "databricks.tag."

CHUNK_INDEX: Final = "databricks.chunk.index"
CHUNK_WIRE_BYTES: Final = "databricks.chunk.wire_bytes"
CHUNK_BYTES: Final = "databricks.chunk.bytes"  # decompressed
CHUNK_ROWS: Final = "databricks.chunk.rows"

# Staging (volume) operations. The operation is the statement's: PUT | GET | REMOVE.
VOLUME_OPERATION: Final = "databricks.volume.operation"
VOLUME_DIRECTION: Final = "databricks.volume.direction"  # VOLUME_UPLOAD | _DOWNLOAD | _DELETE
VOLUME_BYTES: Final = "databricks.volume.bytes"  # file bytes sent (upload) or received
VOLUME_STREAM: Final = "databricks.volume.stream"  # True: a PUT from execute(input_stream=)
VOLUME_UPLOAD: Final = "upload"
VOLUME_DOWNLOAD: Final = "download"
VOLUME_DELETE: Final = "delete"

# --- span roles ------------------------------------------------------------------------------
ROLE_CREATE_SESSION: Final = "CREATE_SESSION"
ROLE_DELETE_SESSION: Final = "DELETE_SESSION"
ROLE_STATEMENT: Final = "STATEMENT"
ROLE_RESULT: Final = "RESULT"
ROLE_CHUNK_DOWNLOAD: Final = "CHUNK_DOWNLOAD"
ROLE_CANCEL: Final = "CANCEL"
ROLE_VOLUME_TRANSFER: Final = "VOLUME_TRANSFER"
ROLE_TRANSACTION: Final = "TRANSACTION"  # commit / rollback: spans only, no record

# --- result close reasons --------------------------------------------------------------------
CLOSE_RESULT_CLOSED: Final = "closed"  # cursor closed, re-executed or result closed
CLOSE_CONNECTION_CLOSED: Final = "connection_closed"
CLOSE_FAILED: Final = "failed"
CLOSE_UNINSTRUMENTED: Final = "uninstrumented"

# --- events ----------------------------------------------------------------------------------
EVENT_CANCELLED: Final = "databricks.statement.cancelled"
EVENT_RETRY: Final = "databricks.retry"
EVENT_BATCH_STATEMENT: Final = "databricks.batch.statement"
# Attribute of an EVENT_BATCH_STATEMENT event: latency of that inner execution.
BATCH_LATENCY_MS: Final = "databricks.batch.latency_ms"
