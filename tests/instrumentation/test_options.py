"""Options are parsed in one place: one parser per kind of value, one warning per bad variable."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql import options
from opentelemetry_instrumentation_dbsql.options import (
    InvalidValue,
    parse_bool,
    parse_float,
    parse_int,
    parse_tristate,
    resolve_options,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

SUBPROCESS_TIMEOUT_S = 60.0
OUR_AGENT = "opentelemetry-instrumentation-dbsql/"

# Instrumented without a record_sink, so the Databricks exporter (and its opt-in) runs too.
APPLICATION = """
import json
import logging
import os

import databricks.sql
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

warnings = []


class Capture(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())


logging.getLogger().addHandler(Capture())
DbsqlInstrumentor().instrument(tracer_provider=TracerProvider())
sessions = []
for _ in range(2):
    with databricks.sql.connect(**json.loads(os.environ["APP_CONNECT_KWARGS"])) as conn:
        sessions.append(conn.get_session_id_hex())
        with conn.cursor() as cursor:
            for sql in ("SELECT 1 AS one", "SELECT 2 AS two"):
                cursor.execute(sql)
                cursor.fetchall()
DbsqlInstrumentor().uninstrument()
print(json.dumps({"sessions": sessions, "warnings": warnings}))
"""


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY", "maybe"),
        ("OTEL_PYTHON_DBSQL_FORCE_ENABLE_TELEMETRY", "maybe"),
        ("OTEL_PYTHON_DBSQL_KEEP_NATIVE_TELEMETRY", "maybe"),
        ("OTEL_PYTHON_DBSQL_AGGREGATION_BATCH_SIZE", "lots"),
    ],
)
def test_an_invalid_variable_is_warned_about_once_per_process_and_treated_as_unset(
    warehouse: LocalWarehouse, variable: str, raw: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PYTHON_DBSQL_")}
    env[variable] = raw
    env["APP_CONNECT_KWARGS"] = json.dumps(warehouse.connect_kwargs())
    done = subprocess.run(
        [sys.executable, "-c", APPLICATION],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    naming = [w for w in report["warnings"] if variable in w]
    assert len(naming) == 1, report["warnings"]
    # As if unset: the server flag decided (asked once, by this package), it was on, both
    # sessions were exported, and the connector's own telemetry was kept off.
    ours = [
        r for r in warehouse.feature_flags.requests if OUR_AGENT in r.headers.get("user-agent", "")
    ]
    assert len(ours) == 1
    events = [e for e in warehouse.telemetry.events() if e.get("session_id") in report["sessions"]]
    assert {e["session_id"] for e in events} == set(report["sessions"])
    assert all("operation_detail" in (e.get("sql_operation") or {}) for e in events)


@pytest.fixture
def fresh_warnings() -> None:
    options._reset_warnings()


@pytest.mark.usefixtures("fresh_warnings")
def test_one_warning_per_variable_whoever_reads_it(caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry_instrumentation_dbsql.aggregation.config import resolve_config

    environ = {"OTEL_PYTHON_DBSQL_AGGREGATION_IDLE_TIMEOUT": "forever"}
    with caplog.at_level(logging.WARNING):
        resolved = resolve_options({}, environ)
        config = resolve_config(environ=environ)
        resolve_options({}, environ)
    assert resolved.aggregation_idle_timeout == config.statement_idle_timeout_s == 1800.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "OTEL_PYTHON_DBSQL_AGGREGATION_IDLE_TIMEOUT" in warnings[0]


def test_the_options_remember_which_came_from_the_environment() -> None:
    environ = {
        "OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY": "false",
        "OTEL_PYTHON_DBSQL_FORCE_ENABLE_TELEMETRY": "true",
        "OTEL_PYTHON_DBSQL_CAPTURE_PARAMETERS": "",  # empty: unset
    }
    resolved = resolve_options({"enable_telemetry": True}, environ)
    assert resolved.enable_telemetry is True
    assert resolved.force_enable_telemetry is True
    assert resolved.from_environment == {"force_enable_telemetry"}
    # Provenance is not part of the value: options compare and print as before.
    assert resolved == options.InstrumentationOptions(
        enable_telemetry=True, force_enable_telemetry=True
    )
    assert "from_environment" not in repr(resolved)


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), (" YES ", True), ("on", True), ("1", True), ("false", False), ("Off", False)],
)
def test_boolean_text(text: str, value: bool) -> None:
    assert parse_bool(text) is value
    assert parse_tristate(text) is value


@pytest.mark.parametrize("text", [None, "", "  ", "unset", "None"])
def test_tristate_unset(text: Any) -> None:
    assert parse_tristate(text) is None


@pytest.mark.parametrize("bad", ["maybe", 1, 0, 1.0, [], None])
def test_not_a_boolean(bad: Any) -> None:
    with pytest.raises(InvalidValue):
        parse_bool(bad)


def test_numbers() -> None:
    assert parse_int(" 300 ", 1, 1000) == 300
    assert parse_int(7, 1, 1000, strings=False) == 7
    assert parse_float("2.5", 0.001, 10.0) == 2.5
    assert parse_float(3, 0.001, 10.0, strings=False) == 3.0
    invalid_ints: list[tuple[Any, bool]] = [
        ("lots", True),
        ("1.5", True),
        ("0", True),
        (True, True),
        (1.0, True),
        ("7", False),
    ]
    for value, strings in invalid_ints:
        with pytest.raises(InvalidValue):
            parse_int(value, 1, 1000, strings=strings)
    invalid_floats: list[tuple[Any, bool]] = [
        ("forever", True),
        ("nan", True),
        ("inf", True),
        (float("nan"), False),
        (10**400, False),
        (False, False),
        ("2.5", False),
        ("-1", True),
    ]
    for value, strings in invalid_floats:
        with pytest.raises(InvalidValue):
            parse_float(value, 0.001, 10.0, strings=strings)


def test_an_invalid_value_is_a_value_error() -> None:
    """Callers that only know ``ValueError`` (the connector's kwargs) still catch it."""
    assert issubclass(InvalidValue, ValueError)
    with pytest.raises(ValueError, match="aggregation_flush_interval"):
        resolve_options({"aggregation_flush_interval": 10**400}, {})
