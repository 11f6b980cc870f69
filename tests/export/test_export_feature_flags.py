"""The feature-flag cache: per host, off the caller's thread, one fetch at a time, TTL, stale."""

from __future__ import annotations

import threading

import pytest

from opentelemetry_instrumentation_dbsql.export.feature_flags import (
    FLAG_NAME,
    FeatureFlagCache,
    FlagLease,
    FlagRequester,
    parse_flag_response,
)
from opentelemetry_instrumentation_dbsql.export.http_transport import Endpoint, HttpTransport
from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.export.helpers import RecordingLauncher, open_connection, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def requester(wh: LocalWarehouse, version: str = "4.9.0") -> FlagRequester:
    transport = HttpTransport(Endpoint("http", "127.0.0.1", wh.port))
    return FlagRequester(
        transport, lambda: {"Authorization": "Bearer tok", "User-Agent": "UA/1"}, version
    )


def host(wh: LocalWarehouse) -> str:
    return f"127.0.0.1:{wh.port}"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"flags": [{"name": "%s", "value": "true"}], "ttl_seconds": 60}', (True, 60.0)),
        (200, b'{"flags": [{"name": "%s", "value": "TRUE"}]}', (True, None)),
        (200, b'{"flags": [{"name": "%s", "value": "false"}], "ttl_seconds": 0}', (False, None)),
        (200, b'{"flags": [{"name": "other", "value": "true"}]}', (False, None)),
        (200, b'{"flags": [{"name": "%s", "value": true}]}', (False, None)),
        (200, b'{"flags": []}', (False, None)),
        (200, b'{"flags": [{"name": ', (None, None)),
        (200, b"[]", (None, None)),
        (200, b'{"flags": "x"}', (None, None)),
        (500, b'{"flags": [{"name": "%s", "value": "true"}]}', (None, None)),
        (404, b"", (None, None)),
    ],
)
def test_parse(status: int, body: bytes, expected: tuple[bool | None, float | None]) -> None:
    if b"%s" in body:
        body = body % FLAG_NAME.encode()
    assert parse_flag_response(status, body) == expected


def test_fetch_is_a_get_with_auth_user_agent_and_version(wh: LocalWarehouse) -> None:
    cache = FeatureFlagCache()
    lease = cache.acquire(host(wh), requester(wh, "4.9.0"))
    assert lease.entry.wait(5) is True
    (request,) = wh.feature_flags.requests
    assert request.method == "GET"
    assert request.path == "/api/2.0/connector-service/feature-flags/PYTHON/4.9.0"
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["user-agent"] == "UA/1"


def test_acquire_never_waits_for_the_server(wh: LocalWarehouse) -> None:
    wh.feature_flags.configure(enabled=True)
    launcher = RecordingLauncher(hold=True)  # the fetch does not start before release()
    cache = FeatureFlagCache(launcher=launcher)
    leases: list[FlagLease] = []
    caller = threading.Thread(target=lambda: leases.append(cache.acquire(host(wh), requester(wh))))
    caller.start()
    caller.join(10)
    assert leases, "acquire() waited for the flag fetch"
    assert leases[0].entry.value() is None
    assert launcher.launched == 1
    launcher.release()
    assert leases[0].entry.wait(3) is True


def test_one_fetch_in_flight_per_host(wh: LocalWarehouse) -> None:
    wh.feature_flags.configure(enabled=True, delay=0.3)
    cache = FeatureFlagCache()
    req = requester(wh)
    barrier = threading.Barrier(16)
    leases = []

    def grab() -> None:
        barrier.wait()
        lease = cache.acquire(host(wh), req)
        for _ in range(50):
            lease.entry.value()
        leases.append(lease)

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert leases[0].entry.wait(3) is True
    assert len(wh.feature_flags.requests) == 1
    assert {id(lease.entry) for lease in leases} == {id(leases[0].entry)}
    assert leases[0].entry.refcount == 16
    for lease in leases:
        cache.release(lease)
    assert leases[0].entry.refcount == 0
    cache.release(leases[0])  # releasing twice changes nothing
    assert leases[0].entry.refcount == 0


def test_ttl_from_the_server_then_refresh(wh: LocalWarehouse) -> None:
    clock = FakeClock()
    launcher = RecordingLauncher()
    wh.feature_flags.configure(enabled=True, ttl_seconds=30)
    cache = FeatureFlagCache(clock=clock, launcher=launcher)
    entry = cache.acquire(host(wh), requester(wh)).entry
    assert entry.wait(3) is True
    clock.now += 29
    assert entry.value() is True
    assert launcher.launched == 1  # within the TTL: no new fetch
    launcher.join()
    assert len(wh.feature_flags.requests) == 1
    wh.feature_flags.configure(enabled=False, ttl_seconds=30)
    clock.now += 2
    assert entry.value() is True  # stale value served while the refresh runs
    launcher.join()
    assert entry.peek() is False
    assert len(wh.feature_flags.requests) == 2


def test_default_ttl_is_900_seconds(wh: LocalWarehouse) -> None:
    clock = FakeClock()
    launcher = RecordingLauncher()
    cache = FeatureFlagCache(clock=clock, launcher=launcher)
    assert cache.default_ttl_s == 900.0
    wh.feature_flags.configure(enabled=True, ttl_seconds=0)  # no usable TTL in the answer
    entry = cache.acquire(host(wh), requester(wh)).entry
    assert entry.wait(3) is True
    clock.now += 899
    entry.value()
    assert launcher.launched == 1  # within the default TTL: no new fetch
    clock.now += 2
    entry.value()
    assert launcher.launched == 2
    launcher.join()
    assert len(wh.feature_flags.requests) == 2


@pytest.mark.parametrize("failure", ["status", "malformed", "down"])
def test_stale_value_served_on_error(failure: str) -> None:
    clock = FakeClock()
    with LocalWarehouse() as wh:
        cache = FeatureFlagCache(clock=clock, error_retry_s=60)
        entry = cache.acquire(host(wh), requester(wh)).entry
        assert entry.wait(3) is True
        if failure == "status":
            wh.feature_flags.configure(status=500)
        elif failure == "malformed":
            wh.feature_flags.configure(malformed=True)
        else:
            wh.stop()
        clock.now += 901
        entry.value()
        assert wait_for(lambda: entry.fetch_count == 2)
        assert entry.peek() is True
        # Asked again after the error retry interval, not after a whole TTL.
        clock.now += 61
        entry.value()
        assert wait_for(lambda: entry.fetch_count == 3)


@pytest.mark.parametrize("failure", ["status", "malformed", "timeout", "down"])
def test_unavailable_flag_means_off(failure: str) -> None:
    with LocalWarehouse() as wh:
        if failure == "status":
            wh.feature_flags.configure(status=503)
        elif failure == "malformed":
            wh.feature_flags.configure(malformed=True)
        elif failure == "timeout":
            wh.feature_flags.configure(delay=2.0)
        port = wh.port
        if failure == "down":
            wh.stop()
        transport = HttpTransport(Endpoint("http", "127.0.0.1", port))
        cache = FeatureFlagCache(fetch_timeout_s=0.3)
        entry = cache.acquire(f"127.0.0.1:{port}", FlagRequester(transport, dict, "4.9.0")).entry
        assert entry.wait(3) is False


def test_failing_credentials_mean_off(wh: LocalWarehouse) -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("token refresh failed")

    transport = HttpTransport(Endpoint("http", "127.0.0.1", wh.port))
    cache = FeatureFlagCache()
    entry = cache.acquire(host(wh), FlagRequester(transport, broken, "4.9.0")).entry
    assert entry.wait(3) is False
    assert wh.feature_flags.requests == []


def test_connections_share_one_entry_per_host(
    wh: LocalWarehouse, sink: DatabricksTelemetrySink
) -> None:
    launcher = RecordingLauncher()
    sink.flags.launcher = launcher  # to see whether the sink starts a fetch
    wh.feature_flags.configure(enabled=True, delay=0.2)
    opened = [open_connection(wh, sink) for _ in range(5)]
    handles = [h for _, h in opened]
    assert all(h is not None for h in handles)
    entry = handles[0].flag if handles[0] else None
    assert entry is not None
    assert all(h is not None and h.flag is entry for h in handles)
    assert entry.refcount == 5
    assert entry.wait(3) is True
    assert len(wh.feature_flags.requests) == 1
    for conn, handle in opened:
        conn.close()
        assert handle is not None
        sink.unregister_connection(handle)
    assert entry.refcount == 0
    # The value stays cached: a new connection does not ask again within the TTL.
    conn, handle = open_connection(wh, sink)
    assert handle is not None and handle.flag is entry and entry.peek() is True
    assert launcher.launched == 1
    launcher.join()
    assert len(wh.feature_flags.requests) == 1
    conn.close()
