"""The opt-in priority end to end: real connections, the server flag in every state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.export.opt_in import ENV_ENABLE, ENV_FORCE, Decision
from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink
from opentelemetry_instrumentation_dbsql.options import resolve_options
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.export.conftest import SinkFactory
from tests.export.helpers import (
    FAST,
    open_connection,
    session_events,
    statement_record,
    wait_for,
)


@dataclass(frozen=True)
class Case:
    name: str
    decision: Decision
    connect: dict[str, Any] = field(default_factory=dict)
    keywords: dict[str, Any] = field(default_factory=dict)  # of instrument()
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("nothing set", Decision.FLAG_DECIDES),
    Case("connect enable", Decision.FLAG_DECIDES, {"enable_telemetry": True}),
    Case("connect disable", Decision.OFF, {"enable_telemetry": False}),
    Case("connect 'false' string", Decision.OFF, {"enable_telemetry": "false"}),
    Case("connect 'true' string", Decision.FLAG_DECIDES, {"enable_telemetry": "true"}),
    Case("connect force", Decision.FORCE_ON, {"force_enable_telemetry": True}),
    Case(
        "connect force beats disable",
        Decision.FORCE_ON,
        {"force_enable_telemetry": "true", "enable_telemetry": False},
    ),
    Case("options disable", Decision.OFF, keywords={"enable_telemetry": False}),
    Case("options force", Decision.FORCE_ON, keywords={"force_enable_telemetry": True}),
    Case(
        "connect disable beats options enable",
        Decision.OFF,
        {"enable_telemetry": False},
        {"enable_telemetry": True},
    ),
    Case(
        "connect enable beats options force",
        Decision.FLAG_DECIDES,
        {"enable_telemetry": True},
        {"force_enable_telemetry": True},
    ),
    Case("env disable", Decision.OFF, env={ENV_ENABLE: "false"}),
    Case("env force", Decision.FORCE_ON, env={ENV_FORCE: "true"}),
    Case(
        "connect force=False blocks env force",
        Decision.FLAG_DECIDES,
        {"force_enable_telemetry": False},
        env={ENV_FORCE: "true"},
    ),
    Case("invalid env is unset", Decision.FLAG_DECIDES, env={ENV_ENABLE: "perhaps"}),
    Case(
        "options disable beats env force",
        Decision.OFF,
        keywords={"enable_telemetry": False},
        env={ENV_FORCE: "true"},
    ),
    Case(
        "options force=False hides env force",
        Decision.FLAG_DECIDES,
        keywords={"force_enable_telemetry": False},
        env={ENV_FORCE: "true"},
    ),
]

# server state -> (flag endpoint settings, whether the flag counts as on)
SERVER_STATES: dict[str, tuple[dict[str, Any], bool]] = {
    "on": ({"enabled": True}, True),
    "off": ({"enabled": False}, False),
    "error-500": ({"status": 500}, False),
    "malformed": ({"malformed": True}, False),
    "slow": ({"enabled": True, "delay": 0.4}, True),
    "slower-than-fetch-timeout": ({"enabled": True, "delay": 1.2}, False),
}


@pytest.mark.parametrize("state", list(SERVER_STATES))
def test_matrix(state: str, wh: LocalWarehouse, make_sink: SinkFactory) -> None:
    flag_settings, flag_on = SERVER_STATES[state]
    config = replace(FAST, flag_fetch_timeout_s=0.8)
    wh.feature_flags.configure(**flag_settings)
    connections: list[Any] = []
    sinks: dict[str, DatabricksTelemetrySink] = {}
    try:
        check(
            wh,
            config=config,
            flag_on=flag_on,
            flag_slow="delay" in flag_settings,
            connections=connections,
            sinks=sinks,
            make_sink=make_sink,
        )
    finally:
        for conn in connections:
            conn.close()


def disabled_once(sink: DatabricksTelemetrySink) -> Callable[[], bool]:
    """Whether ``sink`` has dropped exactly one record as disabled."""
    return lambda: sink.stats.snapshot().dropped["disabled"] == 1


def check(
    wh: LocalWarehouse,
    *,
    config: Any,
    flag_on: bool,
    flag_slow: bool,
    connections: list[Any],
    sinks: dict[str, DatabricksTelemetrySink],
    make_sink: SinkFactory,
) -> None:
    """Open one connection per case, export one record each, check what arrived."""
    expected_sent: dict[str, str] = {}
    expected_dropped: list[tuple[str, DatabricksTelemetrySink]] = []
    handles: list[str] = []
    for case in CASES:
        sink = make_sink(config)
        options = resolve_options(case.keywords, case.env)
        conn, handle = open_connection(wh, sink, options, **case.connect)
        connections.append(conn)
        sinks[case.name] = sink
        assert handle is not None
        assert handle.decision.decision is case.decision, case.name
        record = statement_record(handle.session_id, "127.0.0.1", wh.port)
        sink.export([record])
        if flag_slow and case.decision is Decision.FLAG_DECIDES:
            # export did not wait for the slow flag endpoint: the record waits for the answer.
            assert sink.stats.snapshot().flag_pending == 1, case.name
        sent = case.decision is Decision.FORCE_ON or (
            case.decision is Decision.FLAG_DECIDES and flag_on
        )
        if sent:
            expected_sent[record.statement_id] = case.name
        else:
            expected_dropped.append((case.name, sink))

    def sent_ids() -> set[str]:
        return {str(e.get("sql_statement_id")) for e in wh.telemetry.events()} & set(expected_sent)

    assert wait_for(lambda: sent_ids() == set(expected_sent), timeout_s=5), [
        (expected_sent[i], sinks[expected_sent[i]].stats.snapshot())
        for i in set(expected_sent) - sent_ids()
    ]
    for name, sink in expected_dropped:
        assert wait_for(disabled_once(sink)), name
        assert sink.stats.snapshot().exported == 0, name
    # Only "the flag decides" asks the server: one fetch per fresh sink, none otherwise. (Where
    # this exporter is ruled out, the driver's own telemetry is left as configured and may ask
    # too, with its own User-Agent.)
    asking = sum(case.decision is Decision.FLAG_DECIDES for case in CASES)
    ours = [
        r
        for r in wh.feature_flags.requests
        if "opentelemetry-instrumentation-dbsql/" in r.headers.get("user-agent", "")
    ]
    assert len(ours) == asking
    # The driver's own telemetry stayed off: every payload is ours.
    for event in session_events(wh, *handles, include_rejected=True):
        assert "operation_detail" in event.get("sql_operation", {})  # never in the connector's
