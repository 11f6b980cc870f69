"""Hosts, keys and the HTTP transport: own host only, one attempt, no redirects."""

from __future__ import annotations

import socket
import time

import pytest

from opentelemetry_instrumentation_dbsql.endpoint import Endpoint
from opentelemetry_instrumentation_dbsql.export.circuit_breaker import normalize_host
from opentelemetry_instrumentation_dbsql.export.http_transport import HttpTransport, TransportError
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse


@pytest.mark.parametrize(
    ("server_hostname", "port", "base_url", "key"),
    [
        (
            "adb-1.azuredatabricks.net",
            443,
            "https://adb-1.azuredatabricks.net",
            "adb-1.azuredatabricks.net",
        ),
        ("HTTPS://Host.Example.com/", 443, "https://host.example.com", "host.example.com"),
        ("http://127.0.0.1:8080", 443, "http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("myhost", 8443, "https://myhost:8443", "myhost:8443"),
        ("myhost:9443", 443, "https://myhost:9443", "myhost:9443"),
        ("https://[::1]:9000/", None, "https://[::1]:9000", "::1:9000"),
        ("host:notaport", 443, "https://host", "host"),
    ],
)
def test_endpoint_and_key(server_hostname: str, port: int | None, base_url: str, key: str) -> None:
    endpoint = Endpoint.from_server_hostname(server_hostname, port)
    assert endpoint.base_url == base_url
    assert endpoint.key == key
    if "[" not in base_url:
        # The breaker registry normalizes the same way.
        assert normalize_host(base_url) == key


def test_one_attempt_and_no_redirects(wh: LocalWarehouse) -> None:
    transport = HttpTransport(Endpoint("http", "127.0.0.1", wh.port))
    response = transport.request("GET", "/nowhere", headers={}, timeout_s=2)
    assert response.status == 404
    with pytest.raises(ValueError, match="path"):
        transport.request("GET", "http://elsewhere.example.com/", headers={}, timeout_s=2)
    transport.close()
    with pytest.raises(TransportError):
        transport.request("GET", "/nowhere", headers={}, timeout_s=2)


def test_refused_connection_is_one_quick_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = HttpTransport(Endpoint("http", "127.0.0.1", port))
    start = time.monotonic()
    with pytest.raises(TransportError):
        transport.request("POST", "/telemetry-ext", headers={}, body=b"{}", timeout_s=2)
    assert time.monotonic() - start < 0.5


def test_attempt_timeout(wh: LocalWarehouse) -> None:
    wh.telemetry.hang()
    transport = HttpTransport(Endpoint("http", "127.0.0.1", wh.port))
    start = time.monotonic()
    with pytest.raises(TransportError):
        transport.request("POST", "/telemetry-ext", headers={}, body=b"{}", timeout_s=0.3)
    assert 0.25 < time.monotonic() - start < 1.0
    wh.telemetry.release()
