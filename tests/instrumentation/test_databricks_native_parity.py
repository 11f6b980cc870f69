"""The Databricks payload says what the connector says.

One workload against the local warehouse, twice: once with the connector's own telemetry
(forced, nothing instrumented) and once with this package's export (which turns the native one
off). Both payloads are captured by the warehouse and compared field by field.
"""

from __future__ import annotations

import json
import locale
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import databricks.sql
import pytest

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor, driver_facts
from opentelemetry_instrumentation_dbsql.export import wire_format
from opentelemetry_instrumentation_dbsql.export.connection_params import connection_params
from opentelemetry_instrumentation_dbsql.export.wire_format import USER_AGENT_PRODUCT
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.export.helpers import wait_for

APP = "parity-app/1.0"
WORKLOAD = {
    "force_enable_telemetry": True,
    "user_agent_entry": APP,
    "_socket_timeout": 30,
    "_retry_stop_after_attempts_count": 1,
}
STATEMENTS = 2
# The connector sends one event when the session opens and one per statement.
NATIVE_EVENTS = 1 + STATEMENTS
OUR_EVENTS = 2 + STATEMENTS  # CREATE_SESSION, statements, DELETE_SESSION


def _run(warehouse: LocalWarehouse, **workload: Any) -> str:
    with databricks.sql.connect(**warehouse.connect_kwargs(**(workload or WORKLOAD))) as conn:
        with conn.cursor() as cursor:
            for i in range(STATEMENTS):
                cursor.execute(f"SELECT {i} AS n")
                cursor.fetchall()
        return str(conn.get_session_id_hex())


def _logs(warehouse: LocalWarehouse, session_id: str) -> list[tuple[dict[str, Any], str]]:
    """The accepted frontend logs of one session, each with its POST's User-Agent."""
    out = []
    for payload in warehouse.telemetry.payloads:
        if not 200 <= payload.get("status", 0) < 300:
            continue
        for text in payload.get("protoLogs") or []:
            log = json.loads(text)
            if log["entry"]["sql_driver_log"].get("session_id") == session_id:
                out.append((log, payload["headers"].get("user-agent", "")))
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _paths(value: Any, prefix: str, into: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _paths(item, f"{prefix}.{key}" if prefix else key, into)
    else:
        into.setdefault(prefix, set()).add(_json_type(value))


def _field_types(logs: list[dict[str, Any]]) -> dict[str, set[str]]:
    types: dict[str, set[str]] = {}
    for log in logs:
        _paths(log, "", types)
    return types


def _one(values: list[Any]) -> Any:
    """The value every event repeats."""
    distinct = {json.dumps(v, sort_keys=True) for v in values}
    assert len(distinct) == 1, distinct
    return values[0]


@pytest.fixture
def instrumentor() -> Iterator[DbsqlInstrumentor]:
    instrumentor = DbsqlInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # a singleton: start uninstrumented
        instrumentor.uninstrument()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


# On Thrift: over SEA the connector's own telemetry goes to the origin without the warehouse's
# port (not here); with the kernel the kernel sends its own (compared below for the mode).
def test_export_reports_what_native_telemetry_reports(
    warehouse: LocalWarehouse, instrumentor: DbsqlInstrumentor
) -> None:
    warehouse.feature_flags.configure(enabled=False)  # forced either way: the flag is not read
    native_session = _run(warehouse)
    assert wait_for(lambda: len(_logs(warehouse, native_session)) >= NATIVE_EVENTS)
    instrumentor.instrument()
    ours_session = _run(warehouse)
    instrumentor.uninstrument()  # flushes
    assert wait_for(lambda: len(_logs(warehouse, ours_session)) >= OUR_EVENTS)

    native_logs = _logs(warehouse, native_session)
    ours_logs = _logs(warehouse, ours_session)
    assert not any(USER_AGENT_PRODUCT in agent for _, agent in native_logs)
    # With the export on, the connector's own telemetry stays off: every POST is ours.
    assert all(USER_AGENT_PRODUCT in agent for _, agent in ours_logs)
    native = [log for log, _ in native_logs]
    ours = [log for log, _ in ours_logs]

    # Every field the connector sends, this package sends too, with the same JSON type.
    native_types, our_types = _field_types(native), _field_types(ours)
    missing = sorted(set(native_types) - set(our_types))
    assert not missing, missing
    retyped = {p: (t, our_types[p]) for p, t in native_types.items() if our_types[p] != t}
    assert not retyped, retyped

    native_events = [log["entry"]["sql_driver_log"] for log in native]
    our_events = [log["entry"]["sql_driver_log"] for log in ours]

    # The connection facts are the connector's.
    native_config = _one([e["system_configuration"] for e in native_events])
    our_config = _one([e["system_configuration"] for e in our_events])
    assert "client_app_name" not in native_config  # the connector leaves it empty
    assert our_config.pop("client_app_name") == APP  # the application's own name
    assert our_config == native_config

    native_params = _one([e["driver_connection_params"] for e in native_events])
    our_params = _one(
        [e["driver_connection_params"] for e in our_events if "sql_statement_id" in e]
    )
    assert native_params["host_info"] == {"host_url": warehouse.base_url, "port": warehouse.port}
    assert native_params["socket_timeout"] == WORKLOAD["_socket_timeout"]
    assert {k: our_params.get(k) for k in native_params} == native_params
    for event in our_events:  # session events repeat the same facts
        params = event["driver_connection_params"]
        assert {k: params.get(k) for k in native_params} == native_params

    # The client context: the connector's User-Agent, with this package after it.
    native_agent = _one([log["context"]["client_context"]["user_agent"] for log in native])
    assert f"({APP})" in native_agent
    for log in ours:
        assert log["context"]["client_context"]["user_agent"] == (
            f"{native_agent} {USER_AGENT_PRODUCT}"
        )

    # Per statement: what the connector reports, in the same order.
    def operations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = ("statement_type", "is_compressed", "execution_result", "retry_count")
        return [
            {k: e["sql_operation"].get(k) for k in keys}
            for e in events
            if e.get("sql_statement_id")
        ]

    assert len(operations(native_events)) == STATEMENTS
    assert operations(our_events) == operations(native_events)


@pytest.mark.backends("kernel")
def test_kernel_mode_is_what_the_kernel_reports(
    warehouse: LocalWarehouse, instrumentor: DbsqlInstrumentor
) -> None:
    """With ``use_kernel`` the kernel sends the driver's telemetry itself (the connector's
    Python side sends none): the wire says which backend served the statements as it does."""
    # The kernel sends when asked to (force_enable_telemetry does not reach it).
    native_session = _run(warehouse, enable_telemetry=True, telemetry_batch_size=1)
    assert wait_for(lambda: len(_logs(warehouse, native_session)) >= NATIVE_EVENTS)
    instrumentor.instrument()
    ours_session = _run(warehouse)
    instrumentor.uninstrument()  # flushes
    assert wait_for(lambda: len(_logs(warehouse, ours_session)) >= OUR_EVENTS)
    ours_logs = _logs(warehouse, ours_session)
    # The kernel's own telemetry is off while this package exports: every POST is ours.
    assert all(USER_AGENT_PRODUCT in agent for _, agent in ours_logs)

    def params(session_id: str) -> list[dict[str, Any]]:
        return [
            log["entry"]["sql_driver_log"]["driver_connection_params"]
            for log, _ in _logs(warehouse, session_id)
        ]

    native = params(native_session)
    assert {p["mode"] for p in native} == {"SEA"}
    assert {p["mode"] for p in params(ours_session)} == {"SEA"}
    assert {p["http_path"] for p in params(ours_session)} == {p["http_path"] for p in native}
    assert {p["auth_mech"] for p in params(ours_session)} == {p["auth_mech"] for p in native}


# -- the same rules for settings the local warehouse cannot show --------------------------------


@pytest.mark.parametrize(
    ("server_hostname", "port", "expected"),
    [
        ("adb-1.2.azuredatabricks.net", None, ("adb-1.2.azuredatabricks.net", 443)),
        ("https://adb-1.2.azuredatabricks.net", None, ("https://adb-1.2.azuredatabricks.net", 443)),
        ("HTTPS://Adb-1.Cloud.Databricks.com/", None, ("HTTPS://Adb-1.Cloud.Databricks.com/", 443)),
        ("adb-1.cloud.databricks.com", 8443, ("adb-1.cloud.databricks.com", 8443)),
        ("adb-1.cloud.databricks.com", "8443", ("adb-1.cloud.databricks.com", 8443)),
        ("http://127.0.0.1:8080", 8080, ("http://127.0.0.1:8080", 8080)),
        ("https://[::1]:8443", 8443, ("https://[::1]:8443", 8443)),
        # More than an address (credentials, a path, a query): the host name alone.
        (
            "https://user:secret@adb-1.cloud.databricks.com",
            None,
            ("adb-1.cloud.databricks.com", 443),
        ),
        ("https://adb-1.cloud.databricks.com/?o=123#x", None, ("adb-1.cloud.databricks.com", 443)),
        ("https://adb-1.cloud.databricks.com/sql/1.0", None, ("adb-1.cloud.databricks.com", 443)),
    ],
)
def test_host_info_is_the_connectors(
    server_hostname: str, port: int | str | None, expected: tuple[str, int]
) -> None:
    kwargs: dict[str, Any] = {"server_hostname": server_hostname}
    if port is not None:
        kwargs["_port"] = port
    # As databricks.sql.session.Session sets them; the connector reports
    # HostDetails(host_url=server_hostname, port=session.port).
    session = SimpleNamespace(host=server_hostname, port=kwargs.get("_port", 443))
    facts = driver_facts.read_facts(SimpleNamespace(session=session), kwargs)
    host_info = connection_params(facts).host_info
    assert (host_info.host_url, host_info.port) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(30, 30), (900, 900), (30.0, 30), (0.5, None), (True, None), ("30", None), (None, None)],
)
def test_socket_timeout_is_the_kwarg_in_whole_seconds(value: Any, expected: int | None) -> None:
    assert driver_facts._whole_seconds(value) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),
        ({"user_agent_entry": "my-app/2.0"}, "my-app/2.0"),
        ({"_user_agent_entry": "old-app"}, "old-app"),  # deprecated, still read by the connector
        ({"user_agent_entry": "new", "_user_agent_entry": "old"}, "new"),
        ({"user_agent_entry": "", "_user_agent_entry": "old"}, None),  # as the connector: none
        ({"user_agent_entry": "line\nbreak"}, None),
        ({"user_agent_entry": "x" * 257}, None),
        ({"user_agent_entry": 42}, None),
    ],
)
def test_client_app_name_is_the_applications_user_agent_entry(
    kwargs: dict[str, Any], expected: str | None
) -> None:
    assert driver_facts._app_name(kwargs) == expected
    config = wire_format.system_configuration("4.9.0", driver_facts._app_name(kwargs))
    assert config.get("client_app_name") == expected


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"LANG": "fr_FR.UTF-8"},
        {"LC_ALL": "de_DE@euro"},
        {"LANGUAGE": "pt_BR:en"},
        {"LANG": "C"},
        {"LC_CTYPE": "ja_JP.eucJP", "LANG": "en_GB.UTF-8"},
    ],
)
def test_locale_name_falls_back_to_the_environment_as_the_connector_does(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locale, "getlocale", lambda *_: (None, None))  # a "C" process locale
    for variable in ("LC_ALL", "LC_CTYPE", "LANG", "LANGUAGE"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        connector = locale.getlocale()[0] or locale.getdefaultlocale()[0]
    assert wire_format._locale_name() == connector
