"""The frontend-log JSON: keys of the connector's model classes, values of the record."""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import sys
import time
import uuid
from typing import Any

import pytest
from databricks.sql.telemetry.models import endpoint_models, event, frontend_logs

from opentelemetry_instrumentation_dbsql.aggregation.records import ChunkDetails
from opentelemetry_instrumentation_dbsql.export import wire_format
from opentelemetry_instrumentation_dbsql.export.wire_format import (
    ConnectionContext,
    DriverConnectionParams,
    HostInfo,
    encode_proto_log,
    frontend_log,
)
from tests.export.helpers import connection_record, error_record, statement_record


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# Which model class describes the object found under each key.
NESTED: dict[type, dict[str, type]] = {
    frontend_logs.TelemetryFrontendLog: {
        "context": frontend_logs.FrontendLogContext,
        "entry": frontend_logs.FrontendLogEntry,
    },
    frontend_logs.FrontendLogContext: {"client_context": frontend_logs.TelemetryClientContext},
    frontend_logs.FrontendLogEntry: {"sql_driver_log": event.TelemetryEvent},
    event.TelemetryEvent: {
        "system_configuration": event.DriverSystemConfiguration,
        "driver_connection_params": event.DriverConnectionParameters,
        "sql_operation": event.SqlExecutionEvent,
        "error_info": event.DriverErrorInfo,
        "vol_operation": event.DriverVolumeOperation,
    },
    event.DriverConnectionParameters: {
        "host_info": event.HostDetails,
        "proxy_host_info": event.HostDetails,
        "cf_proxy_host_info": event.HostDetails,
    },
    event.SqlExecutionEvent: {
        "chunk_details": event.ChunkDetails,
        "result_latency": event.ResultLatency,
        "operation_detail": event.OperationDetail,
    },
}


def assert_matches_model(obj: dict[str, Any], cls: type, path: str = "") -> int:
    """Every key is a field of ``cls`` and every required field is present; returns objects seen."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(obj) - set(fields)
    assert not unknown, f"{path or cls.__name__}: keys not in {cls.__name__}: {unknown}"
    required = {
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    # The connector omits None values even for required fields; we require our required
    # ones except those the connector itself may leave out.
    optional_in_practice = {"workspace_id", "retry_count", "chunk_id", "is_compressed"}
    optional_in_practice |= {"statement_type", "execution_result"}
    missing = required - set(obj) - optional_in_practice
    assert not missing, f"{path or cls.__name__}: required fields missing: {missing}"
    seen = 1
    for key, value in obj.items():
        nested = NESTED.get(cls, {}).get(key)
        if nested is not None:
            assert isinstance(value, dict), f"{path}.{key} is not an object"
            seen += assert_matches_model(value, nested, f"{path}.{key}")
        else:
            assert not isinstance(value, dict), f"{path}.{key}: unexpected object"
    return seen


def context() -> ConnectionContext:
    return ConnectionContext(
        driver_version="4.9.0",
        user_agent="PyDatabricksSqlConnector/4.9.0",
        params=DriverConnectionParams(
            http_path="/sql/1.0/warehouses/abc123",
            mode="THRIFT",
            host_info=HostInfo("example.cloud.databricks.com", 443),
            auth_mech="PAT",
            socket_timeout=900,
            use_proxy=False,
            enable_arrow=True,
            enable_direct_results=True,
            rows_fetched_per_block=100000,
            async_poll_interval_millis=2000,
        ),
    )


def decode(proto_log: str) -> dict[str, Any]:
    obj = json.loads(proto_log)
    assert isinstance(obj, dict)
    return obj


def test_statement_event_keys_match_model_classes() -> None:
    rec = statement_record("01f0-session", "example.cloud.databricks.com", 443)
    log = decode(wire_format.encode_proto_log(rec, context()))
    seen = assert_matches_model(log, frontend_logs.TelemetryFrontendLog)
    # log, context, client_context, entry, event, system config, conn params, host_info,
    # sql_operation, chunk_details, result_latency, operation_detail
    assert seen == 12


def test_statement_event_values_come_from_the_record() -> None:
    rec = statement_record(
        "01f0-session", "example.cloud.databricks.com", 443, error=error_record("syntax_error")
    )
    log = decode(wire_format.encode_proto_log(rec, context()))
    assert log["context"]["client_context"] == {
        "timestamp_millis": rec.start_time_ns // 1_000_000,
        "user_agent": "PyDatabricksSqlConnector/4.9.0",
    }
    ev = log["entry"]["sql_driver_log"]
    assert ev["session_id"] == rec.session_id
    assert ev["sql_statement_id"] == rec.statement_id
    assert ev["operation_latency_ms"] == rec.execute_latency_ms
    op = ev["sql_operation"]
    assert op["statement_type"] == rec.statement_type
    assert op["is_compressed"] is True
    assert op["execution_result"] == rec.result_format
    assert op["retry_count"] == rec.retry_count == 2
    assert "chunk_id" not in op
    assert op["chunk_details"] == {
        "initial_chunk_latency_millis": rec.chunks.initial_chunk_latency_ms,
        "slowest_chunk_latency_millis": rec.chunks.slowest_chunk_latency_ms,
        "total_chunks_present": rec.chunks.total_chunks_present,
        "total_chunks_iterated": rec.chunks.total_chunks_iterated,
        "sum_chunks_download_time_millis": rec.chunks.sum_chunks_download_time_ms,
    }
    assert op["result_latency"] == {
        "result_set_ready_latency_millis": rec.execute_latency_ms,
        "result_set_consumption_latency_millis": rec.consumption_latency_ms,
    }
    assert op["operation_detail"] == {
        "n_operation_status_calls": rec.poll_count,
        "operation_status_latency_millis": rec.poll_latency_ms,
        "operation_type": rec.operation_type,
        "is_internal_call": False,
    }
    assert ev["error_info"] == {"error_name": "syntax_error", "stack_trace": ""}
    sysconf = ev["system_configuration"]
    assert sysconf["driver_name"] == "Databricks SQL Python Connector"
    assert sysconf["driver_version"] == "4.9.0"
    assert "client_app_name" not in sysconf  # the application gave no name
    assert sysconf["runtime_version"] == platform.python_version()
    assert sysconf["runtime_vendor"] == platform.python_implementation()
    assert sysconf["os_name"] == platform.system()
    assert sysconf["os_arch"] == platform.machine()
    assert sysconf["char_set_encoding"] == sys.getdefaultencoding()
    params = ev["driver_connection_params"]
    assert params["http_path"] == "/sql/1.0/warehouses/abc123"
    assert params["mode"] == "THRIFT"
    assert params["host_info"] == {"host_url": "example.cloud.databricks.com", "port": 443}
    assert params["auth_mech"] == "PAT"
    assert "auth_flow" not in params  # None values are omitted


def test_missing_values_are_omitted_but_operation_latency_kept() -> None:
    rec = statement_record(
        None,
        "h",
        None,
        consumption_latency_ms=None,
        result_format=None,
        compressed=None,
        chunks=dataclasses.replace(
            statement_record(None, "h", None).chunks,
            **dict.fromkeys(
                [
                    "initial_chunk_latency_ms",
                    "slowest_chunk_latency_ms",
                    "total_chunks_present",
                    "total_chunks_iterated",
                    "sum_chunks_download_time_ms",
                ]
            ),
        ),
    )
    ev = decode(wire_format.encode_proto_log(rec, context()))["entry"]["sql_driver_log"]
    assert "session_id" not in ev
    assert "error_info" not in ev
    op = ev["sql_operation"]
    assert "chunk_details" not in op
    assert "execution_result" not in op
    assert "is_compressed" not in op
    assert op["result_latency"] == {"result_set_ready_latency_millis": 42}
    assert "operation_latency_ms" in ev
    assert_matches_model(ev, event.TelemetryEvent)


def test_error_name_falls_back_to_class_name_and_cancel_is_reported() -> None:
    err = dataclasses.replace(error_record(), category="")
    rec = statement_record("s", "h", 443, error=err)
    ev = wire_format.statement_event(rec, context())
    assert ev["error_info"] == {"error_name": "ServerOperationError", "stack_trace": ""}
    cancelled = wire_format.statement_event(
        statement_record("s", "h", 443, cancelled=True), context()
    )
    assert cancelled["error_info"] == {"error_name": "cancelled", "stack_trace": ""}


@pytest.mark.parametrize("operation", ["CREATE_SESSION", "DELETE_SESSION"])
def test_connection_event(operation: str) -> None:
    rec = connection_record(
        "sess", "example.cloud.databricks.com", 443, operation_type=operation, backend="sea"
    )
    log = decode(wire_format.encode_proto_log(rec, context()))
    assert_matches_model(log, frontend_logs.TelemetryFrontendLog)
    ev = log["entry"]["sql_driver_log"]
    assert ev["session_id"] == "sess"
    assert "sql_statement_id" not in ev
    assert ev["operation_latency_ms"] == rec.latency_ms
    assert ev["sql_operation"] == {
        "operation_detail": {"operation_type": operation, "is_internal_call": False}
    }
    assert ev["driver_connection_params"]["mode"] == "SEA"
    assert ev["driver_connection_params"]["http_path"] == rec.http_path


def test_request_envelope_matches_telemetry_request() -> None:
    rec = statement_record("s", "h", 443)
    logs = [wire_format.encode_proto_log(rec, context()) for _ in range(3)]
    body = json.loads(wire_format.encode_request(logs, upload_time_ms=1234))
    assert set(body) == field_names(endpoint_models.TelemetryRequest)
    assert body["uploadTime"] == 1234
    assert body["items"] == []
    assert body["protoLogs"] == logs
    assert all(isinstance(item, str) for item in body["protoLogs"])
    ids = {decode(item)["frontend_log_event_id"] for item in body["protoLogs"]}
    assert len(ids) == 3


@pytest.mark.parametrize(
    "record",
    [
        statement_record("s-1", "h.example.com", 443),
        statement_record(None, "h.example.com", 443, error=error_record(), cancelled=True),
        connection_record("s-2", "h.example.com", 443),
    ],
    ids=["statement", "failed-statement", "connection"],
)
def test_encoded_log_is_the_frontend_log(record: Any) -> None:
    # Statements are encoded with the per-connection members spliced in as cached JSON.
    encoded = decode(encode_proto_log(record, context()))
    expected = json.loads(json.dumps(frontend_log(record, context())))
    for log in (encoded, expected):
        event_id = log.pop("frontend_log_event_id")
        assert str(uuid.UUID(event_id)) == event_id
        assert uuid.UUID(event_id).version == 4
    assert encoded == expected


def _without_event_id(log: dict[str, Any]) -> dict[str, Any]:
    event_id = log.pop("frontend_log_event_id")
    assert str(uuid.UUID(event_id)) == event_id
    assert uuid.UUID(event_id).version == 4
    return log


def _varied_records() -> list[Any]:
    """Statement records with every optional value absent or present, errors, cancels."""
    rng = random.Random(7)
    records: list[Any] = []
    chunk_fields = [f.name for f in dataclasses.fields(ChunkDetails)]
    for index in range(300):
        session_id = rng.choice([None, "01f0-a1b2", str(uuid.uuid4()), "bad id!"])
        changes: dict[str, Any] = {
            "statement_id": rng.choice([str(uuid.uuid4()), "span-00ab12cd34ef5678", "x y"]),
            "statement_type": rng.choice(["QUERY", "METADATA", "UPDATE", "SQL", "bogus"]),
            "operation_type": rng.choice(["EXECUTE_STATEMENT", "LIST_TABLES", "no good"]),
            "result_format": rng.choice([None, "INLINE_ARROW", "EXTERNAL_LINKS", "JSON_X"]),
            "compressed": rng.choice([None, True, False]),
            "execute_latency_ms": rng.choice([0, 7, 123_456_789]),
            "consumption_latency_ms": rng.choice([None, 0, 55]),
            "poll_count": rng.randrange(0, 5),
            "poll_latency_ms": rng.randrange(0, 900),
            "retry_count": rng.randrange(0, 4),
            "cancelled": rng.random() < 0.2,
            "error": rng.choice(
                [None, error_record(), error_record("syntax_error"), error_record("Bad Category")]
            ),
            "chunks": ChunkDetails(
                **{name: rng.choice([None, 0, rng.randrange(1, 10_000)]) for name in chunk_fields}
            ),
            "start_time_ns": rng.choice([0, time.time_ns()]),
        }
        records.append(statement_record(session_id, "h.example.com", 443, **changes))
        if index % 50 == 0:
            records.append(connection_record("s-2", "h.example.com", 443))
    return records


def _hostile_context() -> ConnectionContext:
    """Strings JSON must escape, in every per-connection member the event carries."""
    return ConnectionContext(
        driver_version='4.9.0 "beta" \\ ü',
        user_agent='Agent/1.0 "quoted" \\ back\tslash \u00e9\u2603\x7f\n',
        params=DriverConnectionParams(
            http_path="/sql/1.0/warehouses/abc",
            mode="THRIFT",
            host_info=HostInfo('h"ost\\é', 443),
            auth_flow="flow\x01\u2028",
        ),
        auth_type='pat "x"',
    )


def test_fast_statement_encoding_is_the_frontend_log_for_varied_records() -> None:
    for ctx in (context(), _hostile_context()):
        for record in _varied_records():
            encoded = _without_event_id(decode(encode_proto_log(record, ctx)))
            expected = _without_event_id(json.loads(json.dumps(frontend_log(record, ctx))))
            if (
                expected["context"]["client_context"]["timestamp_millis"]
                != (encoded["context"]["client_context"]["timestamp_millis"])
            ):  # a record without a valid start time is stamped with the current time
                assert record.start_time_ns == 0
                expected["context"]["client_context"] = encoded["context"]["client_context"]
            assert encoded == expected


def test_proto_log_literal_is_the_escaped_proto_log() -> None:
    for ctx in (context(), _hostile_context()):
        encoded_ctx = wire_format.encode_context(ctx)
        for record in _varied_records():
            literal = wire_format.proto_log_literal(record, encoded_ctx)
            assert literal.isascii()
            text = json.loads(literal)
            assert isinstance(text, str)
            fields = _without_event_id(decode(text))
            expected = _without_event_id(decode(encode_proto_log(record, ctx)))
            if record.start_time_ns == 0:
                expected["context"] = fields["context"]
            assert fields == expected


def test_body_from_literals_is_the_body_from_proto_logs() -> None:
    ctx = _hostile_context()
    encoded_ctx = wire_format.encode_context(ctx)
    records = _varied_records()[:20]
    literals = [wire_format.proto_log_literal(r, encoded_ctx) for r in records]
    body = wire_format.encode_literals(literals, upload_time_ms=99)
    plain = [json.loads(literal) for literal in literals]
    assert body == wire_format.encode_request(plain, upload_time_ms=99)
    assert json.loads(body) == {"uploadTime": 99, "items": [], "protoLogs": plain}


def test_connection_params_fields_are_model_fields() -> None:
    ours = {f.name for f in dataclasses.fields(DriverConnectionParams)}
    assert ours <= field_names(event.DriverConnectionParameters)
    assert {"allowed_volume_ingestion_paths", "query_tags"}.isdisjoint(ours)


def test_strings_that_do_not_look_right_never_reach_the_wire() -> None:
    """A producer bug must not put SQL text, messages or paths into the payload."""
    hostile = "SELECT secret FROM t WHERE x = 'leak'"
    rec = statement_record(
        "/home/user/leak",
        "h",
        443,
        statement_id=hostile,
        operation_type=hostile,
        statement_type=hostile,
        result_format=hostile,
        error=dataclasses.replace(
            error_record(), category="Table 'leak' not found", error_type="x.Bad Name leak"
        ),
    )
    conn = connection_record(
        "s",
        "h",
        443,
        http_path="/sql?token=leak secret",
        backend=hostile,
        auth_mechanism=hostile,
        operation_type=hostile,
    )
    text = "".join(wire_format.encode_proto_log(r, context()) for r in (rec, conn))
    assert "leak" not in text
    assert "SELECT" not in text
    ev = wire_format.statement_event(rec, context())
    assert ev["error_info"] == {"error_name": "unknown", "stack_trace": ""}
    assert "session_id" not in ev and "sql_statement_id" not in ev
    assert "operation_type" not in ev["sql_operation"]["operation_detail"]
    conn_ev = wire_format.connection_event(conn, context())
    assert conn_ev["driver_connection_params"]["http_path"] == "/sql/1.0/warehouses/abc123"
    assert conn_ev["driver_connection_params"]["mode"] == "THRIFT"
