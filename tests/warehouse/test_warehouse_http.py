"""The HTTP side: faults, flags, telemetry, CloudFetch links, TLS, the standalone command."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import databricks.sql
import pytest
import urllib3
from cryptography import x509
from databricks.sql import exc

from opentelemetry_instrumentation_dbsql.testing.warehouse import TELEMETRY_FLAG, LocalWarehouse

from .conftest import FAST_FAIL

FLAGS_PATH = "/api/2.0/connector-service/feature-flags/PYTHON/4.9.0"


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _proto_body(*events: dict[str, Any]) -> bytes:
    logs = [json.dumps({"entry": {"sql_driver_log": e}}) for e in events]
    return json.dumps({"uploadTime": 1, "items": [], "protoLogs": logs}).encode()


def test_open_session_401_is_request_error(warehouse: LocalWarehouse) -> None:
    warehouse.fault_rpc(
        "OpenSession", status=401, headers={"x-databricks-reason-phrase": "bad token"}, times=1
    )
    with pytest.raises(exc.RequestError) as raised:
        databricks.sql.connect(**warehouse.connect_kwargs(**FAST_FAIL))
    assert "bad token" in str(raised.value)
    assert raised.value.context["http-code"] == 401
    assert [(r.name, r.status) for r in warehouse.rpcs] == [("OpenSession", 401)]
    assert warehouse.rpcs[0].request.initialNamespace.catalogName == "main"
    # The fault was used up: the next connection works.
    with databricks.sql.connect(**warehouse.connect_kwargs()) as connection:
        assert connection.open


def test_rpc_fault_status_and_delay(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    with connect(**FAST_FAIL).cursor() as cursor:
        warehouse.fault_rpc("ExecuteStatement", status=500)
        with pytest.raises(exc.RequestError) as raised:
            cursor.execute("SELECT 1")
        assert raised.value.context["http-code"] == 500
        warehouse.fault_rpc("ExecuteStatement", delay=0.2)
        cursor.execute("SELECT 1")
        assert cursor.fetchall()
    executes = [r for r in warehouse.rpcs if r.name == "ExecuteStatement"]
    assert [r.status for r in executes] == [500, 200]
    assert executes[1].duration >= 0.2


def test_malformed_thrift_body_then_still_serving(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    http = urllib3.PoolManager()
    reply = http.request("POST", warehouse.base_url + warehouse.http_path, body=b"\x00garbage")
    assert reply.status == 400
    reply = http.request("POST", warehouse.base_url + warehouse.http_path, body=b"")
    assert reply.status == 400
    with connect().cursor() as cursor:
        cursor.execute("SELECT 1 AS ok")
        assert cursor.fetchone().ok == 1
    assert warehouse.http_requests[0].status == 400


def test_feature_flag_endpoint(warehouse: LocalWarehouse) -> None:
    http = urllib3.PoolManager(retries=False)
    url = warehouse.base_url + FLAGS_PATH
    body = json.loads(http.request("GET", url).data)
    assert body == {"flags": [{"name": TELEMETRY_FLAG, "value": "true"}], "ttl_seconds": 900}
    warehouse.feature_flags.configure(enabled=False, ttl_seconds=60)
    body = json.loads(http.request("GET", url).data)
    assert body == {"flags": [{"name": TELEMETRY_FLAG, "value": "false"}], "ttl_seconds": 60}
    warehouse.feature_flags.configure(status=503)
    assert http.request("GET", url).status == 503
    warehouse.feature_flags.configure(malformed=True)
    reply = http.request("GET", url)
    assert reply.status == 200
    with pytest.raises(ValueError):
        json.loads(reply.data)
    warehouse.feature_flags.configure(delay=0.2)
    started = time.perf_counter()
    assert http.request("GET", url).status == 200
    assert time.perf_counter() - started >= 0.2
    assert len(warehouse.feature_flags.requests) == 5


def test_driver_fetches_flags_and_sends_telemetry_to_the_same_origin(
    warehouse: LocalWarehouse,
) -> None:
    connection = databricks.sql.connect(**warehouse.connect_kwargs())
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()
        query_id = cursor.query_id
    session_id = connection.get_session_id_hex()
    connection.close()
    flag_gets = [r for r in warehouse.http_requests if r.path.startswith("/api/2.0/")]
    assert [r.path for r in flag_gets] == [FLAGS_PATH]
    assert flag_gets[0].headers["authorization"] == f"Bearer {warehouse.access_token}"
    assert flag_gets[0].headers["user-agent"].startswith("PyDatabricksSqlConnector/")
    assert _wait_for(lambda: bool(warehouse.telemetry.payloads))
    payload = warehouse.telemetry.payloads[0]
    assert payload["path"] == "/telemetry-ext"
    assert payload["headers"]["authorization"] == f"Bearer {warehouse.access_token}"
    events = warehouse.telemetry.events()
    assert {e["session_id"] for e in events} == {session_id}
    assert query_id in {e.get("sql_statement_id") for e in events}


def test_forced_native_telemetry(warehouse: LocalWarehouse) -> None:
    warehouse.feature_flags.configure(enabled=False)
    connection = databricks.sql.connect(**warehouse.connect_kwargs(force_enable_telemetry=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    connection.close()
    assert _wait_for(lambda: bool(warehouse.telemetry.events()))
    # force_enable_telemetry skips the flag fetch entirely.
    assert not warehouse.feature_flags.requests
    operation = [e["sql_operation"] for e in warehouse.telemetry.events() if "sql_operation" in e]
    assert operation and operation[0]["execution_result"] == "INLINE_ARROW"


def test_telemetry_endpoint_records_and_fails(warehouse: LocalWarehouse) -> None:
    http = urllib3.PoolManager(retries=False)
    url = warehouse.base_url + "/telemetry-ext"
    reply = http.request("POST", url, body=_proto_body({"a": 1}, {"b": 2}))
    assert json.loads(reply.data) == {
        "errors": [],
        "numSuccess": 0,
        "numProtoSuccess": 2,
        "numRealtimeSuccess": 0,
    }
    warehouse.telemetry.fail(status=503, retry_after="2", times=2)
    for _ in range(2):
        reply = http.request("POST", url, body=_proto_body({"c": 3}))
        assert (reply.status, reply.headers["Retry-After"]) == (503, "2")
    assert http.request("POST", url, body=_proto_body({"d": 4})).status == 200
    unauth = http.request(
        "POST", warehouse.base_url + "/telemetry-unauth", body=_proto_body({"e": 5})
    )
    assert unauth.status == 200
    payloads = warehouse.telemetry.payloads
    assert [(p["path"], p["status"]) for p in payloads] == [
        ("/telemetry-ext", 200),
        ("/telemetry-ext", 503),
        ("/telemetry-ext", 503),
        ("/telemetry-ext", 200),
        ("/telemetry-unauth", 200),
    ]
    assert payloads[0]["uploadTime"] == 1 and "content-length" in payloads[0]["headers"]
    assert warehouse.telemetry.events() == [{"a": 1}, {"b": 2}, {"d": 4}, {"e": 5}]
    assert len(warehouse.telemetry.events(include_rejected=True)) == 6

    warehouse.telemetry.reset_connections(times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("POST", url, body=_proto_body({"f": 6}))
    assert http.request("POST", url, body=_proto_body({"g": 7})).status == 200

    warehouse.telemetry.set_delay(0.2)
    started = time.perf_counter()
    assert http.request("POST", url, body=_proto_body()).status == 200
    assert time.perf_counter() - started >= 0.2


def test_telemetry_hang_does_not_block_and_ends(warehouse: LocalWarehouse) -> None:
    http = urllib3.PoolManager(retries=False, maxsize=4)
    url = warehouse.base_url + "/telemetry-ext"
    warehouse.telemetry.hang()
    answers: list[int] = []

    def post() -> None:
        answers.append(http.request("POST", url, body=_proto_body({"h": 1})).status)

    thread = threading.Thread(target=post)
    thread.start()
    assert _wait_for(lambda: len(warehouse.telemetry.payloads) == 1)
    # Answered while the POST is still held: the held request blocks nothing else.
    flags = http.request("GET", warehouse.base_url + FLAGS_PATH, timeout=10.0)
    assert flags.status == 200
    assert thread.is_alive()
    warehouse.telemetry.release()
    thread.join(5)
    assert answers == [200]

    # Stopping the server also ends a held request.
    with LocalWarehouse() as other:
        other.telemetry.hang()
        outcome: list[object] = []

        def held() -> None:
            try:
                reply = http.request("POST", other.base_url + "/telemetry-ext", body=_proto_body())
                outcome.append(reply.status)
            except Exception as error:
                outcome.append(error)

        thread = threading.Thread(target=held)
        thread.start()
        assert _wait_for(lambda: len(other.telemetry.payloads) == 1)
    thread.join(10)
    assert not thread.is_alive() and outcome  # held for good otherwise: no release was called


def test_expired_cloudfetch_link_answers_403(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    sql = "SELECT * FROM range(1000)"
    warehouse.script(sql, result_format="cloudfetch", cloudfetch_files=2, lz4=False)
    with connect().cursor() as cursor:
        cursor.execute(sql)
        assert len(cursor.fetchall()) == 1000
        files = warehouse.served[cursor.query_id].files
        http = urllib3.PoolManager(retries=False)
        assert http.request("GET", files[0].url).status == 200
        assert warehouse.expire_links(cursor.query_id) == 2
        assert http.request("GET", files[0].url).status == 403
    assert http.request("GET", warehouse.base_url + "/cloudfetch/unknown").status == 404


def test_https(connect: Callable[..., Any]) -> None:
    with LocalWarehouse(tls=True) as wh:
        kwargs = wh.connect_kwargs()
        assert wh.base_url.startswith("https://127.0.0.1:")
        assert kwargs["_tls_trusted_ca_file"] == wh.cert_file
        sql = "SELECT * FROM range(5000)"
        wh.script(sql, result_format="cloudfetch", cloudfetch_files=2)
        with databricks.sql.connect(**kwargs) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            assert len(cursor.fetchall()) == 5000
        paths = [r.path for r in wh.http_requests]
        assert FLAGS_PATH in paths
        assert sum(p.startswith("/cloudfetch/") for p in paths) == 2
        # The server presents a leaf certificate signed by the authority clients trust, not
        # the authority itself (which rustls, the kernel backend's TLS stack, rejects).
        with open(kwargs["_tls_trusted_ca_file"], "rb") as trusted:
            authority = x509.load_pem_x509_certificate(trusted.read())
        served = x509.load_pem_x509_certificate(
            ssl.get_server_certificate(("127.0.0.1", wh.port)).encode()
        )
        assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert not served.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert served.issuer == authority.subject
        served.verify_directly_issued_by(authority)


def test_records_are_copies(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    with connect().cursor() as cursor:
        cursor.execute("SELECT 1")
        query_id = cursor.query_id
    served = warehouse.served
    served[query_id].rows = 999
    warehouse.rpcs.clear()
    assert warehouse.served[query_id].rows == 1
    assert warehouse.rpc_names()[:2] == ["OpenSession", "ExecuteStatement"]
    warehouse.reset_records()
    assert warehouse.rpcs == [] and warehouse.served == {} and warehouse.http_requests == []


def test_standalone_command() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opentelemetry_instrumentation_dbsql.testing.warehouse",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        output = "".join(lines)
        assert "databricks.sql.connect(" in output
        snippet = output[output.index("import databricks.sql") : output.index("\nPress Ctrl+C")]
        namespace: dict[str, Any] = {}
        exec(snippet, namespace)
        connection = namespace["connection"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'standalone' AS s")
            assert cursor.fetchone().s == "standalone"
        connection.close()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=15)
        assert process.returncode == 0
        assert "Stopped." in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
