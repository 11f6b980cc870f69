"""Records to the Databricks frontend-log JSON that ``/telemetry-ext`` accepts.

The event keys are those of the connector's own model classes
(``databricks.sql.telemetry.models.event``), and the connection facts are those the connector
reports. Only identifiers, enumerations, numbers and the connection's own settings are
written: never SQL text, parameters, table names, error messages, tokens, or a URL other than
the workspace address the application connected to.
"""

from __future__ import annotations

import functools
import json
import locale
import os
import platform
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry_instrumentation_dbsql.aggregation.records import (
    ConnectionRecord,
    ErrorRecord,
    StatementRecord,
    TelemetryRecord,
)
from opentelemetry_instrumentation_dbsql.ids import uuid_text
from opentelemetry_instrumentation_dbsql.version import __version__

DRIVER_NAME = "Databricks SQL Python Connector"
# What this package adds to the connector's User-Agent. It is not ``client_app_name``: that
# names the application.
USER_AGENT_PRODUCT = f"opentelemetry-instrumentation-dbsql/{__version__}"

# ``DatabricksClientType``. The kernel backend talks the Statement Execution API: its own
# telemetry says SEA (connector 4.9 reports THRIFT for it, but sends nothing on that path).
_MODES = {"thrift": "THRIFT", "sea": "SEA", "kernel": "SEA"}

_getrandbits = random.getrandbits
# The version (4) and variant (RFC 4122) bits of a UUID, as a 128-bit integer.
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)

# Defence in depth: strings that come from records must look like what they are, so that a
# producer bug can never put SQL text, a message or a path on the wire.
_STATEMENT_TYPES = frozenset({"NONE", "QUERY", "SQL", "UPDATE", "METADATA"})
_RESULT_FORMATS = frozenset(
    {"FORMAT_UNSPECIFIED", "INLINE_ARROW", "EXTERNAL_LINKS", "COLUMNAR_INLINE"}
)
_AUTH_MECHS = frozenset({"TYPE_UNSPECIFIED", "OTHER", "PAT", "OAUTH"})
_VOLUME_OPERATION_TYPES = frozenset({"TYPE_UNSPECIFIED", "PUT", "GET", "DELETE", "LIST", "QUERY"})
_ENUM_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_HTTP_PATH = re.compile(r"/[A-Za-z0-9/_.=&?-]{0,511}")


def _match(pattern: re.Pattern[str], value: str | None) -> str | None:
    return value if value is not None and pattern.fullmatch(value) else None


def _member(allowed: frozenset[str], value: str | None) -> str | None:
    return value if value in allowed else None


# Bounds a timestamp must fall in to be taken as epoch nanoseconds (2001..2286).
_MIN_EPOCH_NS = 1_000_000_000 * 1_000_000_000
_MAX_EPOCH_NS = 10_000_000_000 * 1_000_000_000


def _prune(value: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys without a value (None, or an object left empty), recursively."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        # Only the plain dicts built here are nested (a type test: isinstance on the Mapping
        # ABC costs more than the rest of the loop).
        kept = (_prune(item) or None) if type(item) is dict else item
        if kept is not None:
            out[key] = kept
    return out


def _locale_name() -> str | None:
    """The language the connector reports: ``locale.getlocale()[0]``, or else that of the
    environment (what its ``locale.getdefaultlocale()[0]`` fallback reads, without that
    deprecated call)."""
    try:
        name = locale.getlocale()[0]
    except ValueError:
        name = None
    if name:
        return name
    for variable in ("LC_ALL", "LC_CTYPE", "LANG", "LANGUAGE"):
        value = os.environ.get(variable)
        if value:
            if variable == "LANGUAGE":
                value = value.split(":")[0]
            code, _, modifier = locale.normalize(value).partition("@")
            if "." in code:
                return code.split(".")[0] or None
            return code if modifier == "euro" else None
    return None


@functools.lru_cache(maxsize=8)
def _system_configuration(driver_version: str) -> tuple[tuple[str, str], ...]:
    locale_name = _locale_name()
    config = {
        "driver_name": DRIVER_NAME,
        "driver_version": driver_version,
        "os_name": platform.system(),
        "os_version": platform.release(),
        "os_arch": platform.machine(),
        "runtime_name": f"Python {platform.python_version()}",
        "runtime_version": platform.python_version(),
        "runtime_vendor": platform.python_implementation(),
        "char_set_encoding": sys.getdefaultencoding(),
        "locale_name": locale_name,
    }
    return tuple((k, v) for k, v in config.items() if v)


def system_configuration(driver_version: str, client_app_name: str | None = None) -> dict[str, str]:
    """``DriverSystemConfiguration``: connector version, Python, OS, and the application's name
    when it gave one."""
    config = dict(_system_configuration(driver_version))
    if client_app_name:
        config["client_app_name"] = client_app_name
    return config


@dataclass(frozen=True, slots=True)
class HostInfo:
    """``HostDetails``: the workspace address as the connection was given it (a host name,
    or a scheme, host and port) and a port."""

    host_url: str
    port: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {"host_url": self.host_url, "port": self.port}


@dataclass(frozen=True, slots=True)
class DriverConnectionParams:
    """``DriverConnectionParameters`` of one connection; None fields are omitted on the wire.

    Deliberately absent: ``allowed_volume_ingestion_paths`` (local file paths) and
    ``query_tags`` (free text chosen by the application).
    """

    http_path: str
    mode: str  # THRIFT | SEA
    host_info: HostInfo
    auth_mech: str | None = None  # PAT | OAUTH | OTHER
    auth_flow: str | None = None
    socket_timeout: int | None = None
    azure_workspace_resource_id: str | None = None
    azure_tenant_id: str | None = None
    use_proxy: bool | None = None
    use_system_proxy: bool | None = None
    proxy_host_info: HostInfo | None = None
    use_cf_proxy: bool | None = None
    allow_self_signed_support: bool | None = None
    use_system_trust_store: bool | None = None
    enable_arrow: bool | None = None
    enable_direct_results: bool | None = None
    enable_sea_hybrid_results: bool | None = None
    http_connection_pool_size: int | None = None
    rows_fetched_per_block: int | None = None
    async_poll_interval_millis: int | None = None
    support_many_parameters: bool | None = None
    enable_complex_datatype_support: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, None fields omitted."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, HostInfo):
                value = value.to_dict()
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class ConnectionContext:
    """What every event of one connection repeats: client identity and connection parameters."""

    driver_version: str
    user_agent: str
    params: DriverConnectionParams
    auth_type: str | None = None
    client_app_name: str | None = None  # the application's own name (``user_agent_entry``)


def mode_for_backend(backend: str | None) -> str | None:
    """``thrift``/``sea``/``kernel`` to the ``DatabricksClientType`` value (None for anything
    else)."""
    if backend is None:
        return None
    return _MODES.get(backend.lower())


def _error_info(error: ErrorRecord | None, cancelled: bool) -> dict[str, str] | None:
    # stack_trace stays empty: a trace or message may carry SQL text, literals or paths.
    if error is not None:
        name = _match(_CATEGORY, error.category) or _match(
            _CLASS_NAME, error.error_type.rsplit(".", 1)[-1]
        )
        return {"error_name": name or "unknown", "stack_trace": ""}
    if cancelled:
        return {"error_name": "cancelled", "stack_trace": ""}
    return None


def _chunk_details(record: StatementRecord) -> dict[str, int] | None:
    c = record.chunks
    details = _prune(
        {
            "initial_chunk_latency_millis": c.initial_chunk_latency_ms,
            "slowest_chunk_latency_millis": c.slowest_chunk_latency_ms,
            "total_chunks_present": c.total_chunks_present,
            "total_chunks_iterated": c.total_chunks_iterated,
            "sum_chunks_download_time_millis": c.sum_chunks_download_time_ms,
        }
    )
    return details or None


def _vol_operation(record: StatementRecord) -> dict[str, str] | None:
    # ``DriverVolumeOperation`` without ``volume_path``: the connector declares the field but
    # never fills it, and the path names the catalog, schema, volume and file.
    volume_type = _member(_VOLUME_OPERATION_TYPES, record.volume_operation_type)
    return None if volume_type is None else {"volume_operation_type": volume_type}


def statement_event(record: StatementRecord, ctx: ConnectionContext) -> dict[str, Any]:
    """The ``TelemetryEvent`` of one statement."""
    sql_operation = {
        "statement_type": _member(_STATEMENT_TYPES, record.statement_type),
        "is_compressed": record.compressed,
        "execution_result": _member(_RESULT_FORMATS, record.result_format),
        "retry_count": record.retry_count,
        "chunk_details": _chunk_details(record),
        "result_latency": {
            "result_set_ready_latency_millis": record.execute_latency_ms,
            "result_set_consumption_latency_millis": record.consumption_latency_ms,
        },
        "operation_detail": {
            "n_operation_status_calls": record.poll_count,
            "operation_status_latency_millis": record.poll_latency_ms,
            "operation_type": _match(_ENUM_NAME, record.operation_type),
            "is_internal_call": False,
        },
    }
    event = _prune(
        {
            "session_id": _match(_IDENTIFIER, record.session_id),
            "sql_statement_id": _match(_IDENTIFIER, record.statement_id),
            "system_configuration": system_configuration(ctx.driver_version, ctx.client_app_name),
            "driver_connection_params": ctx.params.to_dict(),
            "auth_type": ctx.auth_type,
            "vol_operation": _vol_operation(record),
            "sql_operation": sql_operation,
            "error_info": _error_info(record.error, record.cancelled),
        }
    )
    # Kept even when null, like the connector: it is the one field readers always expect.
    event["operation_latency_ms"] = record.execute_latency_ms
    return event


def connection_event(record: ConnectionRecord, ctx: ConnectionContext) -> dict[str, Any]:
    """The ``TelemetryEvent`` of a session opening or closing."""
    params = ctx.params.to_dict()
    http_path = _match(_HTTP_PATH, record.http_path)
    if http_path:
        params["http_path"] = http_path
    mode = mode_for_backend(record.backend)
    if mode:
        params["mode"] = mode
    auth_mech = _member(_AUTH_MECHS, record.auth_mechanism)
    if auth_mech:
        params["auth_mech"] = auth_mech
    event = _prune(
        {
            "session_id": _match(_IDENTIFIER, record.session_id),
            "system_configuration": system_configuration(ctx.driver_version, ctx.client_app_name),
            "driver_connection_params": params,
            "auth_type": ctx.auth_type,
            "sql_operation": {
                "operation_detail": {
                    "operation_type": _match(_ENUM_NAME, record.operation_type),
                    "is_internal_call": False,
                }
            },
            "error_info": _error_info(record.error, False),
        }
    )
    event["operation_latency_ms"] = record.latency_ms
    return event


def telemetry_event(record: TelemetryRecord, ctx: ConnectionContext) -> dict[str, Any]:
    """The ``TelemetryEvent`` of any record."""
    if isinstance(record, StatementRecord):
        return statement_event(record, ctx)
    return connection_event(record, ctx)


def _event_id() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` gives, at a fifth of its cost.

    An event id has to be unique, not secret: the interpreter's generator (reseeded in forked
    children) serves, without a system call per event.
    """
    return uuid_text("%032x" % (_getrandbits(128) & _UUID4_CLEAR | _UUID4_SET))


def _timestamp_ms(start_time_ns: int) -> int:
    if _MIN_EPOCH_NS <= start_time_ns <= _MAX_EPOCH_NS:
        return start_time_ns // 1_000_000
    return int(time.time() * 1000)


def frontend_log(record: TelemetryRecord, ctx: ConnectionContext) -> dict[str, Any]:
    """The ``TelemetryFrontendLog`` wrapping one record's event."""
    return {
        "frontend_log_event_id": _event_id(),
        "context": {
            "client_context": {
                "timestamp_millis": _timestamp_ms(record.start_time_ns),
                "user_agent": ctx.user_agent,
            }
        },
        "entry": {"sql_driver_log": telemetry_event(record, ctx)},
    }


_dumps = json.JSONEncoder(separators=(",", ":")).encode
# A JSON string literal with everything outside printable ASCII escaped, as json.dumps writes it.
_literal = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, slots=True)
class EncodedContext:
    """The JSON that every statement event of one connection repeats, encoded once: as it
    appears in a frontend log, and escaped as it appears inside ``protoLogs``."""

    context: ConnectionContext
    members: str  # "system_configuration", "driver_connection_params", "auth_type", then ","
    user_agent: str  # a JSON string
    members_escaped: str
    user_agent_escaped: str


def encode_context(ctx: ConnectionContext) -> EncodedContext:
    """Encode what every statement event of ``ctx`` repeats (once per connection)."""
    members = _dumps(
        _prune(
            {
                "system_configuration": system_configuration(
                    ctx.driver_version, ctx.client_app_name
                ),
                "driver_connection_params": ctx.params.to_dict(),
                "auth_type": ctx.auth_type,
            }
        )
    )[1:-1]
    members = members + "," if members else ""
    user_agent = _dumps(ctx.user_agent)
    return EncodedContext(
        ctx, members, user_agent, _literal(members)[1:-1], _literal(user_agent)[1:-1]
    )


_encode_context_cached = functools.lru_cache(maxsize=256)(encode_context)


def _number(value: int | None) -> str | None:
    if type(value) is int:
        return str(value)
    return None if value is None else _dumps(value)


def _numbers(pairs: tuple[tuple[str, int | None], ...]) -> list[str]:
    return [f'"{key}":{text}' for key, value in pairs if (text := _number(value)) is not None]


def _statement_members(record: StatementRecord) -> str:
    """The members of ``statement_event(record, ctx)`` that come from the record, as JSON
    text without braces.

    Written directly rather than through ``json``: every string in it is an identifier or an
    enumeration that passed its pattern, so it holds no character that JSON escapes other than
    its own quotes (``proto_log_literal`` relies on that).
    """
    members: list[str] = []
    session_id = _match(_IDENTIFIER, record.session_id)
    if session_id is not None:
        members.append(f'"session_id":"{session_id}"')
    statement_id = _match(_IDENTIFIER, record.statement_id)
    if statement_id is not None:
        members.append(f'"sql_statement_id":"{statement_id}"')
    volume_type = _member(_VOLUME_OPERATION_TYPES, record.volume_operation_type)
    if volume_type is not None:
        members.append(f'"vol_operation":{{"volume_operation_type":"{volume_type}"}}')
    operation: list[str] = []
    statement_type = _member(_STATEMENT_TYPES, record.statement_type)
    if statement_type is not None:
        operation.append(f'"statement_type":"{statement_type}"')
    if type(record.compressed) is bool:
        operation.append('"is_compressed":true' if record.compressed else '"is_compressed":false')
    result_format = _member(_RESULT_FORMATS, record.result_format)
    if result_format is not None:
        operation.append(f'"execution_result":"{result_format}"')
    retries = _number(record.retry_count)
    if retries is not None:
        operation.append(f'"retry_count":{retries}')
    c = record.chunks
    chunks = _numbers(
        (
            ("initial_chunk_latency_millis", c.initial_chunk_latency_ms),
            ("slowest_chunk_latency_millis", c.slowest_chunk_latency_ms),
            ("total_chunks_present", c.total_chunks_present),
            ("total_chunks_iterated", c.total_chunks_iterated),
            ("sum_chunks_download_time_millis", c.sum_chunks_download_time_ms),
        )
    )
    if chunks:
        operation.append(f'"chunk_details":{{{",".join(chunks)}}}')
    latency = _numbers(
        (
            ("result_set_ready_latency_millis", record.execute_latency_ms),
            ("result_set_consumption_latency_millis", record.consumption_latency_ms),
        )
    )
    if latency:
        operation.append(f'"result_latency":{{{",".join(latency)}}}')
    detail = _numbers(
        (
            ("n_operation_status_calls", record.poll_count),
            ("operation_status_latency_millis", record.poll_latency_ms),
        )
    )
    operation_type = _match(_ENUM_NAME, record.operation_type)
    if operation_type is not None:
        detail.append(f'"operation_type":"{operation_type}"')
    detail.append('"is_internal_call":false')
    operation.append(f'"operation_detail":{{{",".join(detail)}}}')
    members.append(f'"sql_operation":{{{",".join(operation)}}}')
    error = _error_info(record.error, record.cancelled)
    if error is not None:
        members.append(f'"error_info":{{"error_name":"{error["error_name"]}","stack_trace":""}}')
    latency_ms = _number(record.execute_latency_ms)
    members.append(f'"operation_latency_ms":{"null" if latency_ms is None else latency_ms}')
    return ",".join(members)


def _statement_head(record: StatementRecord) -> str:
    return (
        f'{{"frontend_log_event_id":"{_event_id()}","context":{{"client_context":'
        f'{{"timestamp_millis":{_timestamp_ms(record.start_time_ns)},"user_agent":'
    )


_ENTRY = '}},"entry":{"sql_driver_log":{'
_ENTRY_ESCAPED = _ENTRY.replace('"', '\\"')
_CLOSE = "}}}"


def encode_proto_log(record: TelemetryRecord, ctx: ConnectionContext) -> str:
    """One element of ``protoLogs``: the frontend log as a JSON string.

    The same JSON as ``json.dumps(frontend_log(record, ctx))`` up to member order and the event
    id. For statements, the members every event of a connection repeats are encoded once per
    connection (they are most of the text).
    """
    if not isinstance(record, StatementRecord):
        return _dumps(frontend_log(record, ctx))
    encoded = _encode_context_cached(ctx)
    return (
        f"{_statement_head(record)}{encoded.user_agent}{_ENTRY}{encoded.members}"
        f"{_statement_members(record)}{_CLOSE}"
    )


def proto_log_literal(record: TelemetryRecord, encoded: EncodedContext) -> str:
    """``encode_proto_log(record, encoded.context)`` as the JSON string literal that
    ``encode_literals`` puts in ``protoLogs``: quoted, escaped, ASCII only.

    Escaping a whole event costs about as much as writing it. Here the per-connection text
    comes escaped from ``encoded``, and the per-statement text, which holds no backslash,
    control or non-ASCII character (see ``_statement_members``), needs its quotes escaped only.
    """
    if not isinstance(record, StatementRecord):
        return _literal(_dumps(frontend_log(record, encoded.context)))
    head = _statement_head(record).replace('"', '\\"')
    tail = _statement_members(record).replace('"', '\\"')
    return (
        f'"{head}{encoded.user_agent_escaped}{_ENTRY_ESCAPED}{encoded.members_escaped}'
        f'{tail}{_CLOSE}"'
    )


def encode_request(proto_logs: Sequence[str], upload_time_ms: int | None = None) -> bytes:
    """The POST body: ``{"uploadTime", "items": [], "protoLogs": [...]}`` as UTF-8 JSON."""
    return encode_literals([_literal(log) for log in proto_logs], upload_time_ms)


def encode_literals(literals: Sequence[str], upload_time_ms: int | None = None) -> bytes:
    """The POST body from ``protoLogs`` elements already written as JSON string literals
    (``proto_log_literal``)."""
    upload_time = int(time.time() * 1000) if upload_time_ms is None else upload_time_ms
    body = f'{{"uploadTime":{upload_time},"items":[],"protoLogs":[{",".join(literals)}]}}'
    return body.encode("ascii")
