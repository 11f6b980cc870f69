"""The sink with real driver connections: registration, sharing, native telemetry, privacy."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from typing import Any

import databricks.sql
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.export import get_export_stats
from opentelemetry_instrumentation_dbsql.export.opt_in import Decision
from opentelemetry_instrumentation_dbsql.export.sink import (
    DatabricksTelemetrySink,
    native_telemetry_kwargs,
)
from opentelemetry_instrumentation_dbsql.export.stats import ExportStats
from opentelemetry_instrumentation_dbsql.export.telemetry_client import (
    ClientState,
    HostTelemetryClient,
)
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from opentelemetry_instrumentation_dbsql.version import __version__
from tests.aggregation.helpers import ManualClock
from tests.export.conftest import SinkFactory
from tests.export.helpers import (
    FAST,
    FAST_CLIENT,
    connection_record,
    open_connection,
    session_events,
    session_payloads,
    statement_record,
    wait_for,
)

FORCED = InstrumentationOptions(force_enable_telemetry=True)


def client_state(client: HostTelemetryClient) -> ClientState:
    """The client's state, read afresh."""
    return client.state


def is_ours(event: dict[str, Any]) -> bool:
    # The connector's own events never carry an operation_detail; every one of ours does.
    return "operation_detail" in (event.get("sql_operation") or {})


def test_register_extracts_the_connection(
    wh: LocalWarehouse, sink: DatabricksTelemetrySink, closing: list[Any]
) -> None:
    conn, handle = open_connection(wh, sink, FORCED, user_agent_entry="my-app")
    closing.append(conn)
    assert handle is not None
    assert handle.session_id == conn.get_session_id_hex()
    assert handle.host_key == f"127.0.0.1:{wh.port}"
    assert handle.decision.decision is Decision.FORCE_ON
    assert handle.may_export
    ctx = handle.context
    assert ctx.user_agent == (
        f"{conn.session.useragent_header} opentelemetry-instrumentation-dbsql/{__version__}"
    )
    assert "my-app" in ctx.user_agent
    assert ctx.client_app_name == "my-app"
    assert ctx.driver_version == databricks.sql.__version__
    params = ctx.params.to_dict()
    assert params["http_path"] == wh.http_path
    assert params["mode"] == "THRIFT"
    assert params["host_info"] == {"host_url": wh.base_url, "port": wh.port}
    assert params["auth_mech"] == "PAT"
    assert params["socket_timeout"] == 10
    assert params["use_proxy"] is False
    assert params["allow_self_signed_support"] is False
    assert params["enable_arrow"] is True
    client = sink.client_for(handle.host_key)
    assert client is not None
    assert client.transport.endpoint.base_url == wh.base_url


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("verify", ["ca_file", "no_verify"])
def test_tls_settings_follow_the_connection(
    verify: str, tls_wh: LocalWarehouse, make_sink: SinkFactory
) -> None:
    wh = tls_wh
    sink = make_sink()
    extra: dict[str, Any] = {}
    if verify == "no_verify":
        extra = {"_tls_no_verify": True, "_tls_trusted_ca_file": None}
    conn, handle = open_connection(wh, sink, FORCED, **extra)
    try:
        assert handle is not None
        sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
        assert sink.flush(5)
        assert sink.stats.snapshot().exported == 1
        assert len(session_events(wh, handle.session_id)) == 1
        params = handle.context.params.to_dict()
        assert params["allow_self_signed_support"] is (verify == "no_verify")
    finally:
        conn.close()


def test_tls_without_trust_fails_and_is_counted(
    tls_wh: LocalWarehouse, make_sink: SinkFactory
) -> None:
    """The exporter does not quietly skip verification the connection did not skip."""
    wh = tls_wh
    sink = make_sink()
    conn, handle = open_connection(wh, sink, FORCED)
    try:
        assert handle is not None
        client = sink.client_for(handle.host_key)
        assert client is not None
        client.transport.tls = replace(client.transport.tls, ca_file=None)
        sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
        assert sink.flush(5)
        assert session_payloads(wh, handle.session_id) == []
        assert sink.stats.snapshot().dropped["retries_exhausted"] == 1
    finally:
        conn.close()


def test_register_does_not_wait_for_the_flag(
    wh: LocalWarehouse, make_sink: SinkFactory, closing: list[Any]
) -> None:
    sink = make_sink(replace(FAST, flag_fetch_timeout_s=3.0))
    wh.feature_flags.configure(enabled=True, delay=1.0)
    kwargs = wh.connect_kwargs()
    conn = databricks.sql.connect(**{**kwargs, **native_telemetry_kwargs(kwargs)})
    closing.append(conn)
    handle = sink.register_connection(conn, kwargs, None)
    sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
    assert handle.decision.decision is Decision.FLAG_DECIDES
    # Held until the answer, which takes 1 s: registering did not wait for it.
    assert sink.stats.snapshot().flag_pending == 1
    assert wait_for(lambda: len(session_events(wh, handle.session_id)) == 1, timeout_s=4)
    assert sink.stats.snapshot().flag_pending == 0


def test_pending_records_are_bounded(
    wh: LocalWarehouse, make_sink: SinkFactory, closing: list[Any]
) -> None:
    sink = make_sink(replace(FAST, client=replace(FAST_CLIENT, max_flag_pending=5)))
    wh.feature_flags.configure(enabled=False, delay=0.3)
    conn, handle = open_connection(wh, sink)
    closing.append(conn)
    assert handle is not None and handle.may_export
    sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port) for _ in range(8)])
    snap = sink.stats.snapshot()
    assert (snap.flag_pending, snap.dropped["flag_pending_overflow"]) == (5, 3)
    # The answer is "off": the held records are discarded and counted.
    assert wait_for(lambda: sink.stats.snapshot().dropped["disabled"] == 5)
    assert not handle.may_export
    assert session_payloads(wh, handle.session_id) == []


def test_many_threads_and_connections_share_one_client(
    wh: LocalWarehouse, sink: DatabricksTelemetrySink
) -> None:
    threads_n, per_thread = 6, 4
    barrier = threading.Barrier(threads_n)
    opened: list[tuple[Any, Any]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                conn, handle = open_connection(wh, sink, FORCED)
                assert handle is not None
                with lock:
                    opened.append((conn, handle))
                sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    total = threads_n * per_thread
    key = f"127.0.0.1:{wh.port}"
    client = sink.client_for(key)
    assert client is not None
    assert client.refcount == total
    assert {id(sink.client_for(h.host_key)) for _, h in opened} == {id(client)}
    assert len(sink.breakers.hosts()) == 1

    # Close from many threads at once; the client survives until the last release.
    half = opened[: total // 2]
    rest = opened[total // 2 :]

    def close_all(items: list[tuple[Any, Any]]) -> None:
        for conn, handle in items:
            conn.close()
            sink.unregister_connection(handle)
            sink.unregister_connection(handle)  # twice: no effect

    workers = [threading.Thread(target=close_all, args=(half[i::3],)) for i in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    assert client.refcount == total - len(half)
    assert client.state is ClientState.ACTIVE
    for conn, handle in rest:
        conn.close()
        sink.unregister_connection(handle)
    assert client.refcount == 0
    # The last release flushes and stops the client within 5 s.
    assert wait_for(lambda: client.state is ClientState.CLOSED, timeout_s=5)
    assert sink.client_for(key) is None
    ids = {e["session_id"] for e in session_events(wh, *(h.session_id for _, h in opened))}
    assert ids == {h.session_id for _, h in opened}
    assert sink.stats.snapshot().exported == total


def test_records_arriving_after_close_are_still_sent(
    wh: LocalWarehouse, make_sink: SinkFactory
) -> None:
    """The aggregation worker emits DELETE_SESSION after the connection closed."""
    sink = make_sink(replace(FAST, client=replace(FAST_CLIENT, close_linger_s=0.5)))
    conn, handle = open_connection(wh, sink, FORCED)
    assert handle is not None
    conn.close()
    sink.unregister_connection(handle)
    assert not handle.may_export
    client = sink.client_for(handle.host_key)
    assert client is not None and client_state(client) is ClientState.LINGERING
    sink.export(
        [
            connection_record(
                handle.session_id, "127.0.0.1", wh.port, operation_type="DELETE_SESSION"
            )
        ]
    )
    assert wait_for(lambda: len(session_events(wh, handle.session_id)) == 1)
    (event,) = session_events(wh, handle.session_id)
    assert event["sql_operation"]["operation_detail"]["operation_type"] == ("DELETE_SESSION")
    # Much later, with the client gone, such records are counted as unroutable.
    assert wait_for(lambda: sink.client_for(handle.host_key) is None, timeout_s=3)
    sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
    assert sink.stats.snapshot().dropped["unroutable"] == 1


def test_a_new_connection_revives_a_lingering_client(
    wh: LocalWarehouse, make_sink: SinkFactory, closing: list[Any]
) -> None:
    clock = ManualClock()
    sink = make_sink(replace(FAST, client=replace(FAST_CLIENT, close_linger_s=60.0)), clock=clock)
    conn, handle = open_connection(wh, sink, FORCED)
    assert handle is not None
    client = sink.client_for(handle.host_key)
    conn.close()
    sink.unregister_connection(handle)
    assert client is not None
    assert client_state(client) is ClientState.LINGERING
    conn2, handle2 = open_connection(wh, sink, FORCED)
    closing.append(conn2)
    assert handle2 is not None
    assert sink.client_for(handle2.host_key) is client
    assert client_state(client) is ClientState.ACTIVE
    clock.advance(61.0)  # past the linger of the first connection
    assert client.retire_if_idle() is False
    assert client_state(client) is ClientState.ACTIVE


def test_unknown_and_disabled_records_are_counted(
    wh: LocalWarehouse, sink: DatabricksTelemetrySink, closing: list[Any]
) -> None:
    conn, handle = open_connection(wh, sink, None, enable_telemetry=False)
    closing.append(conn)
    assert handle is not None and not handle.may_export
    sink.export(
        [
            statement_record(handle.session_id, "127.0.0.1", wh.port),
            statement_record("no-such-session", "elsewhere.example.com", 443),
        ]
    )
    snap = sink.stats.snapshot()
    assert (snap.dropped["disabled"], snap.dropped["unroutable"]) == (1, 1)
    assert sink.client_for(handle.host_key) is None  # an "off" connection creates no client


def test_native_telemetry_off_sends_nothing_and_does_not_block(
    fresh_wh: LocalWarehouse, sink: DatabricksTelemetrySink
) -> None:
    fresh_wh.feature_flags.configure(enabled=True, delay=2.0)
    kwargs = fresh_wh.connect_kwargs()
    override = native_telemetry_kwargs(kwargs, FORCED)
    assert override == {"enable_telemetry": False, "force_enable_telemetry": False}
    conn = databricks.sql.connect(**{**kwargs, **override})
    assert conn.telemetry_enabled is False  # the driver's own decision: nothing to send or flush
    handle = sink.register_connection(conn, kwargs, FORCED)
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    cursor.fetchall()
    cursor.close()
    sink.export([connection_record(handle.session_id, "127.0.0.1", fresh_wh.port)])
    conn.close()
    sink.unregister_connection(handle)
    assert sink.flush(3)
    events = session_events(fresh_wh, handle.session_id, include_rejected=True)
    assert events and all(is_ours(e) for e in events)
    # Neither the driver nor the forced exporter asked, so nothing waited for the 2 s answer.
    assert fresh_wh.feature_flags.requests == []


def test_driver_default_kwargs_would_send_native_telemetry(fresh_wh: LocalWarehouse) -> None:
    """Control: without the override, the driver itself posts to the same endpoint."""
    conn: Any = databricks.sql.connect(
        **fresh_wh.connect_kwargs(_retry_stop_after_attempts_count=1)
    )
    session = str(conn.get_session_id_hex())
    conn.close()
    assert wait_for(
        lambda: any(not is_ours(e) for e in session_events(fresh_wh, session)), timeout_s=5
    )


def test_keep_native_telemetry_leaves_the_driver_alone(
    fresh_wh: LocalWarehouse, sink: DatabricksTelemetrySink
) -> None:
    options = InstrumentationOptions(keep_native_telemetry=True, force_enable_telemetry=True)
    kwargs = fresh_wh.connect_kwargs(_retry_stop_after_attempts_count=1)
    assert native_telemetry_kwargs(kwargs, options) == {}
    conn, handle = open_connection(fresh_wh, sink, options)
    assert handle is not None
    sink.export([connection_record(handle.session_id, "127.0.0.1", fresh_wh.port)])
    conn.close()
    sink.unregister_connection(handle)
    session = handle.session_id
    assert wait_for(
        lambda: any(not is_ours(e) for e in session_events(fresh_wh, session)), timeout_s=5
    )
    assert wait_for(lambda: any(is_ours(e) for e in session_events(fresh_wh, session)), timeout_s=5)


def test_keep_native_telemetry_from_keyword_and_environment() -> None:
    from opentelemetry_instrumentation_dbsql.options import resolve_options

    native_off = {"enable_telemetry": False, "force_enable_telemetry": False}
    env = {"OTEL_PYTHON_DBSQL_KEEP_NATIVE_TELEMETRY": "yes"}
    assert native_telemetry_kwargs({}, resolve_options({"keep_native_telemetry": True}, {})) == {}
    assert native_telemetry_kwargs({}, resolve_options({}, env)) == {}
    kept_off = resolve_options({"keep_native_telemetry": False}, env)  # the keyword wins
    assert native_telemetry_kwargs({}, kept_off) == native_off
    assert native_telemetry_kwargs({}, resolve_options({}, {})) == native_off


def test_privacy_canary_end_to_end(fresh_wh: LocalWarehouse) -> None:
    """Through the instrumentor: no SQL text, literal, token or error message in any payload."""
    secret = "canary-4f1e9b"
    sql_ok = f"SELECT '{secret}-literal' AS value, 42 AS n"
    sql_bad = f"SELECT * FROM {secret}_missing_table"
    instrumentor = DbsqlInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # a singleton: start from a clean state
        instrumentor.uninstrument()
    instrumentor.instrument(
        force_enable_telemetry=True,
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(),
    )
    try:
        conn: Any = databricks.sql.connect(
            **fresh_wh.connect_kwargs(_retry_stop_after_attempts_count=1, user_agent_entry="app")
        )
        session = str(conn.get_session_id_hex())
        cursor = conn.cursor()
        cursor.execute(sql_ok)
        cursor.fetchall()
        cursor.execute("SELECT :p AS v", {"p": f"{secret}-param"})
        cursor.fetchall()
        with pytest.raises(databricks.sql.exc.Error):
            cursor.execute(sql_bad)
        cursor.close()
        conn.close()
    finally:
        instrumentor.uninstrument()
    assert wait_for(lambda: len(session_events(fresh_wh, session)) >= 5, timeout_s=5)
    native = [
        e["system_configuration"].get("client_app_name")
        for e in session_events(fresh_wh, session, include_rejected=True)
        if not is_ours(e)
    ]
    assert not native, native
    bodies = json.dumps(
        [
            {k: v for k, v in p.items() if k != "headers"}
            for p in session_payloads(fresh_wh, session)
        ]
    )
    # The one URL allowed: the workspace address the connection was given (host_info).
    host_member = json.dumps(json.dumps({"host_url": fresh_wh.base_url}, separators=(",", ":")))
    assert host_member[2:-2] in bodies
    bodies = bodies.replace(host_member[2:-2], "")
    for needle in (secret, fresh_wh.access_token, "SELECT", "missing_table", "Bearer", "http://"):
        at = bodies.find(needle)
        assert at < 0, (needle, bodies[max(0, at - 300) : at + 80])
    events = session_events(fresh_wh, session)
    assert all(is_ours(e) for e in events)
    ops = [e["sql_operation"]["operation_detail"]["operation_type"] for e in events]
    assert ops[0] == "CREATE_SESSION" and ops[-1] == "DELETE_SESSION"
    assert ops.count("EXECUTE_STATEMENT") == 3
    errors = [e["error_info"] for e in events if "error_info" in e]
    assert len(errors) == 1
    assert errors[0]["stack_trace"] == ""
    assert errors[0]["error_name"]


def test_stats_and_metrics(wh: LocalWarehouse, closing: list[Any]) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    stats = ExportStats()
    sink = DatabricksTelemetrySink(config=FAST, stats=stats, meter=provider.get_meter("test"))
    try:
        conn, handle = open_connection(wh, sink, FORCED)
        closing.append(conn)
        assert handle is not None
        wh.telemetry.fail(status=400, times=1)
        sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
        assert sink.flush(5)
        sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port) for _ in range(3)])
        assert sink.flush(5)
        data = reader.get_metrics_data()
        assert data is not None
        points: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint)
                        key = tuple(sorted((point.attributes or {}).items()))
                        points.setdefault(metric.name, {})[key] = point.value
        assert points["databricks.telemetry.export.records"][()] == 3
        dropped = points["databricks.telemetry.export.dropped"]
        assert dropped[(("reason", "terminal_http_error"),)] == 1
        assert dropped[(("reason", "breaker_open"),)] == 0
        assert points["databricks.telemetry.export.http_attempts"][()] == 2
        assert points["databricks.telemetry.export.batches"][(("outcome", "sent"),)] == 1
        assert points["databricks.telemetry.export.batches"][(("outcome", "failed"),)] == 1
    finally:
        sink.shutdown(1)
        provider.shutdown()
    # The process-wide counters are a separate instance, reachable without a sink.
    snap = get_export_stats()
    assert set(snap.dropped) >= {
        "breaker_open",
        "queue_full",
        "terminal_http_error",
        "disabled",
        "shutdown",
        "flag_pending_overflow",
        "retries_exhausted",
    }


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_exports_with_fresh_state(
    wh: LocalWarehouse, sink: DatabricksTelemetrySink, closing: list[Any]
) -> None:
    conn, handle = open_connection(wh, sink, FORCED)
    closing.append(conn)
    assert handle is not None
    sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
    assert sink.flush(5)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_fd)
            assert sink.client_for(handle.host_key) is None  # the parent's worker is gone
            child_conn, child_handle = open_connection(wh, sink, FORCED)
            assert child_handle is not None
            sink.export([statement_record(child_handle.session_id, "127.0.0.1", wh.port)])
            ok = sink.flush(5) and sink.stats.snapshot().exported == 2
            os.write(write_fd, child_handle.session_id.encode())
            child_conn.close()
            sink.shutdown(2)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    os.close(write_fd)
    child_session = os.read(read_fd, 200).decode()
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sessions = {handle.session_id, child_session}
    assert {e["session_id"] for e in session_events(wh, *sessions)} == sessions
    # The parent goes on as before.
    sink.export([statement_record(handle.session_id, "127.0.0.1", wh.port)])
    assert sink.flush(5)
    assert sink.stats.snapshot().exported == 2


def test_native_telemetry_left_alone_where_this_exporter_is_ruled_out() -> None:
    # Explicitly off: this exporter never runs for the connection, so the driver's own
    # telemetry stays as the user configured it.
    assert native_telemetry_kwargs({}, InstrumentationOptions(enable_telemetry=False)) == {}
    assert native_telemetry_kwargs({"enable_telemetry": False}, None) == {}
    # Possibly on (the flag decides) or forced: one stream, ours.
    assert native_telemetry_kwargs({}, None) == {
        "enable_telemetry": False,
        "force_enable_telemetry": False,
    }
