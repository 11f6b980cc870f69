"""Delivery to /telemetry-ext: batching, retries, Retry-After, the breaker, hangs, shutdown."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.export.circuit_breaker import BreakerState, CircuitBreaker
from opentelemetry_instrumentation_dbsql.export.sink import (
    ConnectionHandle,
    DatabricksTelemetrySink,
    SinkConfig,
)
from opentelemetry_instrumentation_dbsql.export.telemetry_client import HostTelemetryClient
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.aggregation.helpers import ManualClock
from tests.export.conftest import SinkFactory
from tests.export.helpers import (
    FAST,
    FAST_BREAKER,
    FAST_CLIENT,
    open_connection,
    session_payloads,
    statement_record,
    wait_for,
)

FORCED = InstrumentationOptions(force_enable_telemetry=True)


# Longer than any test runs: only an advanced clock ends the open state.
BREAKER_OPEN_S = 60.0
# Scheduling slack of a loaded 2-core machine on top of a shutdown budget under test.
SLACK_S = 0.5


def frozen_clock() -> float:
    """A sink time that never moves: nothing in the sink may wait for it."""
    return 1000.0


def state(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (a function keeps type narrowing out of the way)."""
    return breaker.state


@dataclass
class Exporting:
    """A warehouse, a sink and one registered connection whose export is forced on."""

    wh: LocalWarehouse
    sink: DatabricksTelemetrySink
    conn: Any
    handle: ConnectionHandle

    @property
    def client(self) -> HostTelemetryClient:
        client = self.sink.client_for(self.handle.host_key)
        assert client is not None
        return client

    def export(self, n: int = 1) -> list[Any]:
        records = [
            statement_record(self.handle.session_id, "127.0.0.1", self.wh.port) for _ in range(n)
        ]
        self.sink.export(records)
        return records

    def posts(self) -> list[dict[str, Any]]:
        return [
            p
            for p in session_payloads(self.wh, self.handle.session_id)
            if p["path"] == "/telemetry-ext"
        ]


@contextlib.contextmanager
def exporting(wh: LocalWarehouse, sink: DatabricksTelemetrySink) -> Iterator[Exporting]:
    conn, handle = open_connection(wh, sink, FORCED)
    assert handle is not None
    try:
        yield Exporting(wh, sink, conn, handle)
    finally:
        conn.close()


@pytest.fixture
def ex(wh: LocalWarehouse, sink: DatabricksTelemetrySink) -> Iterator[Exporting]:
    with exporting(wh, sink) as exp:
        yield exp


@pytest.fixture
def clock() -> ManualClock:
    """The time of ``exb``'s sink."""
    return ManualClock()


@pytest.fixture
def exb(wh: LocalWarehouse, make_sink: SinkFactory, clock: ManualClock) -> Iterator[Exporting]:
    """Like ``ex`` with a breaker that opens after four calls at 50 % and stays open until
    ``clock`` is advanced by ``BREAKER_OPEN_S``."""
    breaker = replace(FAST_BREAKER, open_seconds=BREAKER_OPEN_S)
    with exporting(wh, make_sink(replace(FAST, breaker=breaker), clock=clock)) as exp:
        yield exp


def test_one_post_per_batch(ex: Exporting) -> None:
    records = ex.export(50)
    assert ex.sink.flush(5)
    posts = ex.posts()
    assert len(posts) == 1
    assert len(posts[0]["protoLogs"]) == 50
    sent_ids = [
        json.loads(p)["entry"]["sql_driver_log"]["sql_statement_id"] for p in posts[0]["protoLogs"]
    ]
    assert sent_ids == [r.statement_id for r in records]
    assert posts[0]["headers"]["content-type"] == "application/json"
    assert posts[0]["headers"]["authorization"] == f"Bearer {ex.wh.access_token}"
    snap = ex.sink.stats.snapshot()
    assert (snap.exported, snap.batches_sent, snap.http_attempts, snap.dropped_total) == (
        50,
        1,
        1,
        0,
    )


def test_large_export_is_split_at_the_batch_size(ex: Exporting) -> None:
    ex.wh.telemetry.hang()  # hold the first POST so that the rest queue up behind it
    ex.export(1)
    assert wait_for(lambda: len(ex.posts()) == 1)
    ex.export(250)
    ex.wh.telemetry.release()
    assert ex.sink.flush(5)
    sizes = [len(p["protoLogs"]) for p in ex.posts()]
    assert sizes == [1, 100, 100, 50]
    assert ex.sink.stats.snapshot().exported == 251


def test_retryable_statuses_are_retried_then_succeed(ex: Exporting) -> None:
    for status in (503, 429, 502, 504):
        ex.wh.telemetry.reset()
        ex.wh.telemetry.fail(status=status, times=2)
        ex.export(3)
        assert ex.sink.flush(5)
        assert [p["status"] for p in ex.posts()] == [status, status, 200], status
        # The same batch each time: a retry resends, it does not re-batch.
        assert len({json.dumps(p["protoLogs"]) for p in ex.posts()}) == 1
    snap = ex.sink.stats.snapshot()
    assert (snap.exported, snap.retries, snap.http_attempts, snap.dropped_total) == (12, 8, 12, 0)


def test_connection_resets_are_retried(ex: Exporting) -> None:
    ex.wh.telemetry.reset_connections(times=2)
    ex.export(2)
    assert ex.sink.flush(5)
    assert [p["status"] for p in ex.posts()] == [0, 0, 200]
    assert ex.sink.stats.snapshot().exported == 2


def test_retries_are_bounded(ex: Exporting) -> None:
    ex.wh.telemetry.fail(status=503, times=100)
    ex.export(5)
    assert ex.sink.flush(5)
    assert len(ex.posts()) == 1 + FAST_CLIENT.max_retries
    snap = ex.sink.stats.snapshot()
    assert snap.dropped["retries_exhausted"] == 5
    assert snap.exported == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500])
def test_other_statuses_are_not_retried(ex: Exporting, status: int) -> None:
    ex.wh.telemetry.fail(status=status, times=5)
    ex.export(4)
    assert ex.sink.flush(5)
    assert len(ex.posts()) == 1
    assert ex.sink.stats.snapshot().dropped["terminal_http_error"] == 4


def test_retry_after_is_honoured(ex: Exporting) -> None:
    ex.wh.telemetry.fail(status=429, retry_after="1", times=1)
    start = time.monotonic()
    ex.export(1)
    assert wait_for(lambda: len(ex.posts()) == 2, timeout_s=5)
    # Backoff alone is at most 0.1 s here; the server asked for 1 s.
    assert time.monotonic() - start >= 1.0
    assert ex.sink.flush(5)
    assert ex.sink.stats.snapshot().exported == 1  # retried inside the 3 s batch deadline


def test_retry_after_beyond_the_deadline_gives_up_at_once(
    wh: LocalWarehouse, make_sink: SinkFactory
) -> None:
    # The sink's time stands still: a client that waited before giving up would never wake.
    with exporting(wh, make_sink(clock=frozen_clock)) as ex:
        ex.wh.telemetry.fail(status=503, retry_after="30", times=1)
        ex.export(2)
        assert ex.sink.flush(5)
        assert len(ex.posts()) == 1
        assert ex.sink.stats.snapshot().dropped["retries_exhausted"] == 2


def test_http_date_retry_after(ex: Exporting) -> None:
    ex.wh.telemetry.fail(status=503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", times=1)
    ex.export(1)
    assert ex.sink.flush(5)
    assert [p["status"] for p in ex.posts()] == [503, 200]


def test_breaker_opens_rejects_and_recovers_through_probes(
    exb: Exporting, clock: ManualClock
) -> None:
    breaker = exb.sink.breakers.get(exb.handle.host_key)
    # min_calls=4 at 50 %: one batch's four failing attempts open it.
    exb.wh.telemetry.fail(status=503, times=4)
    exb.export(1)
    assert exb.sink.flush(5)
    assert len(exb.posts()) == 4
    assert state(breaker) is BreakerState.OPEN

    # While open: batches are dropped and counted, nothing reaches the endpoint.
    for _ in range(3):
        exb.export(2)
        assert exb.sink.flush(5)
    assert len(exb.posts()) == 4
    assert exb.sink.stats.snapshot().dropped["breaker_open"] == 6

    # After open_seconds: half-open, one probe at a time; two successes close it.
    clock.advance(BREAKER_OPEN_S)
    assert state(breaker) is BreakerState.HALF_OPEN
    exb.export(1)
    assert exb.sink.flush(5)
    assert state(breaker) is BreakerState.HALF_OPEN
    exb.export(1)
    assert exb.sink.flush(5)
    assert state(breaker) is BreakerState.CLOSED
    assert [p["status"] for p in exb.posts()][4:] == [200, 200]


def test_failed_probe_reopens(exb: Exporting, clock: ManualClock) -> None:
    breaker = exb.sink.breakers.get(exb.handle.host_key)
    exb.wh.telemetry.fail(status=503, times=5)
    exb.export(1)
    assert exb.sink.flush(5)
    assert state(breaker) is BreakerState.OPEN
    clock.advance(BREAKER_OPEN_S)
    assert state(breaker) is BreakerState.HALF_OPEN
    exb.export(1)  # the probe meets the fifth failure: open again, no retry admitted
    assert exb.sink.flush(5)
    assert state(breaker) is BreakerState.OPEN
    assert len(exb.posts()) == 5
    assert breaker.stats.opens == 2


def test_probe_is_admitted_alone(exb: Exporting, clock: ManualClock) -> None:
    """While a half-open probe is in flight, other attempts are rejected."""
    breaker = exb.sink.breakers.get(exb.handle.host_key)
    exb.wh.telemetry.fail(status=503, times=4)
    exb.export(1)
    assert exb.sink.flush(5)
    clock.advance(BREAKER_OPEN_S)
    assert state(breaker) is BreakerState.HALF_OPEN
    exb.wh.telemetry.hang()
    exb.export(1)
    assert wait_for(lambda: len(exb.posts()) == 5)
    assert breaker.try_acquire() is False  # the probe slot is taken
    exb.wh.telemetry.release()
    assert exb.sink.flush(5)


def test_queue_is_bounded_dropping_the_oldest(wh: LocalWarehouse, make_sink: SinkFactory) -> None:
    sink = make_sink(replace(FAST, client=replace(FAST_CLIENT, max_queue=10)))
    with exporting(wh, sink) as ex:
        wh.telemetry.hang()
        ex.export(1)
        assert wait_for(lambda: len(ex.posts()) == 1)
        records = ex.export(30)
        assert sink.stats.snapshot().dropped["queue_full"] == 20
        wh.telemetry.release()
        assert sink.flush(5)
        sent = [
            json.loads(x)["entry"]["sql_driver_log"]["sql_statement_id"]
            for x in ex.posts()[1]["protoLogs"]
        ]
        assert sent == [r.statement_id for r in records[20:]]


def test_shutdown_deadline_holds_when_the_endpoint_hangs(
    wh: LocalWarehouse, make_sink: SinkFactory
) -> None:
    # Production timings: 10 s batch deadline, 5 s attempts.
    sink = make_sink(SinkConfig())
    with exporting(wh, sink) as ex:
        wh.telemetry.hang()
        ex.export(3)
        assert wait_for(lambda: len(ex.posts()) == 1)
        ex.export(4)  # queued behind the hung POST
        start = time.monotonic()
        sink.shutdown(1.0)
        assert time.monotonic() - start < 1.0 + SLACK_S  # the documented budget holds
        assert sink.stats.snapshot().dropped["shutdown"] == 4
        wh.telemetry.release()


CHILD = """
import atexit, sys, time
import databricks.sql
from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink
from tests.export.helpers import statement_record
# Registered first, so it runs last: after the sink's own exit handler.
atexit.register(lambda: print("done", time.monotonic(), flush=True))
kwargs = dict(server_hostname=sys.argv[1], http_path=sys.argv[2], access_token="t",
              _connection_uri=sys.argv[1] + sys.argv[2], _port=int(sys.argv[3]),
              enable_telemetry=False)
conn = databricks.sql.connect(**kwargs)
sink = DatabricksTelemetrySink()
handle = sink.register_connection(conn, {**kwargs, "force_enable_telemetry": True})
sink.export([statement_record(handle.session_id, "127.0.0.1", int(sys.argv[3]))])
print("exiting", time.monotonic(), handle.session_id, flush=True)
"""


def test_interpreter_exit_flushes_within_five_seconds(wh: LocalWarehouse) -> None:
    """atexit: the default 5 s budget holds although the endpoint never answers."""
    wh.telemetry.hang()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, wh.base_url, wh.http_path, str(wh.port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert child.stdout is not None
    out, _ = child.communicate(timeout=20)
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert child.returncode == 0
    exiting_at, session_id = float(lines["exiting"][0]), lines["exiting"][1]
    done_at = float(lines["done"][0])
    assert wait_for(lambda: len(session_payloads(wh, session_id)) == 1, timeout_s=1)
    # It waited for the hung POST (so it did try to flush), then gave up inside the budget.
    took = done_at - exiting_at
    assert 4.0 < took < 5.0, took
    wh.telemetry.release()


def test_shutdown_is_idempotent_and_safe_concurrently(ex: Exporting) -> None:
    ex.wh.telemetry.hang()
    ex.export(1)
    assert wait_for(lambda: len(ex.posts()) == 1)
    times: list[float] = []

    def stop() -> None:
        start = time.monotonic()
        ex.sink.shutdown(0.5)
        times.append(time.monotonic() - start)

    threads = [threading.Thread(target=stop) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(times) == 6
    assert max(times) < 0.5 + SLACK_S  # every caller keeps its own budget
    ex.sink.shutdown(0.5)  # again: returns at once
    ex.export(2)
    assert ex.sink.stats.snapshot().dropped["shutdown"] >= 2
    ex.wh.telemetry.release()


def test_flush_of_a_drained_queue_on_shutdown(ex: Exporting) -> None:
    ex.wh.telemetry.set_delay(0.2)
    ex.export(5)
    ex.sink.shutdown(3.0)
    assert ex.sink.stats.snapshot().exported == 5
    assert [len(p["protoLogs"]) for p in ex.posts()] == [5]
