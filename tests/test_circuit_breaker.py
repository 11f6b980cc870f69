"""Circuit breaker: state machine under a fake clock, concurrency, registry, Retry-After."""

from __future__ import annotations

import email.utils
import logging
import threading

import pytest

from opentelemetry_instrumentation_dbsql.export.circuit_breaker import (
    MAX_RETRY_AFTER_SECONDS,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitBreakerRegistry,
    normalize_host,
    parse_retry_after,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(clock=clock, name="host.example.com")


def _call(breaker: CircuitBreaker, *, fail: bool, retry_after: float | None = None) -> None:
    assert breaker.try_acquire()
    if fail:
        breaker.record_failure(retry_after)
    else:
        breaker.record_success()


def _trip(breaker: CircuitBreaker, retry_after: float | None = None) -> None:
    for _ in range(breaker.config.min_calls):
        _call(breaker, fail=True, retry_after=retry_after)
    assert breaker.state is OPEN


# --------------------------------------------------------------------------- closed -> open


def test_does_not_open_below_min_calls(breaker: CircuitBreaker) -> None:
    for _ in range(9):
        _call(breaker, fail=True)
    assert breaker.state is CLOSED
    assert breaker.stats.window_failures == 9
    _call(breaker, fail=True)
    assert breaker.state is OPEN
    assert breaker.stats.opens == 1


def test_opens_at_exactly_the_failure_ratio(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        _call(breaker, fail=False)
    for _ in range(4):
        _call(breaker, fail=True)
    assert breaker.state is CLOSED  # 4 of 9: too few calls anyway
    _call(breaker, fail=True)  # 5 of 10 = 50 %
    assert breaker.state is OPEN


def test_stays_closed_below_the_failure_ratio(breaker: CircuitBreaker) -> None:
    for _ in range(6):
        _call(breaker, fail=False)
    for _ in range(4):
        _call(breaker, fail=True)
    assert breaker.state is CLOSED  # 4 of 10
    for _ in range(10):
        _call(breaker, fail=False)
        _call(breaker, fail=True)
    assert breaker.state is CLOSED  # 14 of 30 < 50 %
    stats = breaker.stats
    assert (stats.window_calls, stats.window_failures) == (30, 14)


def test_sliding_window_forgets_old_outcomes(breaker: CircuitBreaker) -> None:
    for _ in range(9):
        _call(breaker, fail=True)
    for _ in range(30):
        _call(breaker, fail=False)
    stats = breaker.stats
    assert (stats.window_calls, stats.window_failures) == (30, 0)
    for _ in range(14):
        _call(breaker, fail=True)
    assert breaker.state is CLOSED  # 14 of the last 30
    _call(breaker, fail=True)
    assert breaker.state is OPEN  # 15 of the last 30


# --------------------------------------------------------------------------- open


def test_rejects_while_open_and_counts(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _trip(breaker)
    assert [breaker.try_acquire() for _ in range(3)] == [False, False, False]
    clock.advance(59.9)
    assert not breaker.try_acquire()
    stats = breaker.stats
    assert stats.rejected == 4
    assert stats.state is OPEN
    assert stats.open_remaining == pytest.approx(0.1)


def test_open_for_sixty_seconds_then_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _trip(breaker)
    clock.advance(60.0)
    assert breaker.state is HALF_OPEN
    assert breaker.stats.open_remaining == 0.0


def test_longer_retry_after_extends_the_open_period(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _trip(breaker, retry_after=120.0)
    clock.advance(119.0)
    assert breaker.state is OPEN
    clock.advance(1.0)  # 120 s: the larger of the two, not 60 + 120
    assert breaker.state is HALF_OPEN


def test_shorter_retry_after_does_not_shorten_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _trip(breaker, retry_after=5.0)
    clock.advance(59.0)
    assert breaker.state is OPEN
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN


def test_retry_after_seen_before_the_trip_is_honoured(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _call(breaker, fail=True, retry_after=300.0)
    clock.advance(10.0)
    for _ in range(9):
        _call(breaker, fail=True)
    assert breaker.state is OPEN
    clock.advance(289.0)
    assert breaker.state is OPEN
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN


def test_retry_after_is_capped(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(max_open_seconds=600.0), clock=clock)
    _trip(breaker, retry_after=10_000.0)
    clock.advance(600.0)
    assert breaker.state is HALF_OPEN


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), None])
def test_unusable_retry_after_is_ignored(
    breaker: CircuitBreaker, clock: FakeClock, bad: float | None
) -> None:
    _trip(breaker, retry_after=bad)
    clock.advance(60.0)
    assert breaker.state is HALF_OPEN


def test_late_outcomes_while_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    # Calls admitted before the trip may finish while the breaker is open.
    _trip(breaker)
    breaker.record_success()
    assert breaker.state is OPEN
    breaker.record_failure(retry_after=90.0)  # the server's hint still counts
    clock.advance(60.0)
    assert breaker.state is OPEN
    clock.advance(30.0)
    assert breaker.state is HALF_OPEN
    assert breaker.stats.opens == 1


# --------------------------------------------------------------------------- half-open


def _half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _trip(breaker)
    clock.advance(breaker.config.open_seconds)
    assert breaker.state is HALF_OPEN


def test_half_open_admits_one_probe_at_a_time(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _half_open(breaker, clock)
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    assert not breaker.try_acquire()
    breaker.record_success()
    assert breaker.try_acquire()
    assert breaker.stats.rejected == 2


def test_half_open_admits_one_concurrent_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _half_open(breaker, clock)
    threads_count = 16
    barrier = threading.Barrier(threads_count)
    results: list[bool] = []
    lock = threading.Lock()

    def contender() -> None:
        barrier.wait()
        admitted = breaker.try_acquire()
        with lock:
            results.append(admitted)

    threads = [threading.Thread(target=contender) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False] * (threads_count - 1) + [True]
    assert breaker.stats.rejected == threads_count - 1


def test_release_frees_the_probe_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _half_open(breaker, clock)
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    breaker.release()
    assert breaker.try_acquire()
    assert breaker.state is HALF_OPEN


def test_three_successful_probes_close_and_clear_the_window(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _half_open(breaker, clock)
    _call(breaker, fail=False)
    _call(breaker, fail=False)
    assert breaker.state is HALF_OPEN
    _call(breaker, fail=False)
    assert breaker.state is CLOSED
    stats = breaker.stats
    assert (stats.window_calls, stats.window_failures) == (0, 0)
    # A fresh window: it takes min_calls outcomes again to open.
    for _ in range(9):
        _call(breaker, fail=True)
    assert breaker.state is CLOSED


def test_probe_failure_reopens(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _half_open(breaker, clock)
    _call(breaker, fail=False)
    _call(breaker, fail=True)
    assert breaker.state is OPEN
    assert breaker.stats.opens == 2
    assert not breaker.try_acquire()
    clock.advance(59.0)
    assert breaker.state is OPEN
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN
    # Successes start over after a re-open.
    _call(breaker, fail=False)
    _call(breaker, fail=False)
    assert breaker.state is HALF_OPEN


def test_probe_failure_with_retry_after(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _half_open(breaker, clock)
    _call(breaker, fail=True, retry_after=200.0)
    clock.advance(199.0)
    assert breaker.state is OPEN
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN


def test_outcomes_without_a_probe_are_not_probe_results(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _half_open(breaker, clock)
    for _ in range(5):
        breaker.record_success()  # late successes of calls admitted before the trip
    assert breaker.state is HALF_OPEN
    breaker.record_failure()
    assert breaker.state is HALF_OPEN


# --------------------------------------------------------------------------- notification


def test_transitions_are_logged_once_and_reported(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        clock=clock,
        name="h.example.com",
        on_state_change=lambda name, old, new: seen.append((name, old, new)),
    )
    caplog.set_level(logging.INFO, logger="opentelemetry_instrumentation_dbsql.export")
    _trip(breaker)
    for _ in range(5):
        breaker.try_acquire()
    clock.advance(60.0)
    for _ in range(5):
        assert breaker.state is HALF_OPEN
    for _ in range(3):
        _call(breaker, fail=False)
    assert seen == [
        ("h.example.com", CLOSED, OPEN),
        ("h.example.com", OPEN, HALF_OPEN),
        ("h.example.com", HALF_OPEN, CLOSED),
    ]
    records = [r for r in caplog.records if r.name == "opentelemetry_instrumentation_dbsql.export"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO, logging.INFO]
    assert "h.example.com" in records[0].getMessage()


def test_a_failing_callback_does_not_break_the_breaker(clock: FakeClock) -> None:
    def explode(name: str, old: BreakerState, new: BreakerState) -> None:
        raise RuntimeError("callback bug")

    breaker = CircuitBreaker(clock=clock, on_state_change=explode)
    _trip(breaker)
    assert not breaker.try_acquire()


def test_a_callback_may_use_the_breaker(clock: FakeClock) -> None:
    states: list[BreakerState] = []
    holder: list[CircuitBreaker] = []

    def reentrant(name: str, old: BreakerState, new: BreakerState) -> None:
        states.append(holder[0].stats.state)  # would deadlock if called under the lock

    breaker = CircuitBreaker(clock=clock, on_state_change=reentrant)
    holder.append(breaker)
    _trip(breaker)
    assert states == [OPEN]


# --------------------------------------------------------------------------- misc


def test_concurrent_outcomes_keep_counts_consistent(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(window_size=30, min_calls=30), clock=clock)
    per_thread, threads_count = 500, 8

    def worker() -> None:
        for _ in range(per_thread):
            if breaker.try_acquire():
                breaker.record_success()

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stats = breaker.stats
    assert (stats.state, stats.window_calls, stats.window_failures) == (CLOSED, 30, 0)


def test_release_when_closed_is_harmless(breaker: CircuitBreaker) -> None:
    assert breaker.try_acquire()
    breaker.release()
    assert breaker.state is CLOSED
    assert breaker.stats.window_calls == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_size": 0},
        {"min_calls": 0},
        {"min_calls": 31},
        {"failure_ratio": 0.0},
        {"failure_ratio": 1.5},
        {"open_seconds": -1.0},
        {"open_seconds": float("inf")},
        {"half_open_successes": 0},
        {"max_open_seconds": 30.0},
    ],
)
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_defaults_match_the_reference_design() -> None:
    config = BreakerConfig()
    assert (
        config.window_size,
        config.min_calls,
        config.failure_ratio,
        config.open_seconds,
        config.half_open_successes,
    ) == (30, 10, 0.5, 60.0, 3)


# --------------------------------------------------------------------------- registry


def test_registry_shares_one_breaker_per_host(clock: FakeClock) -> None:
    registry = CircuitBreakerRegistry(clock=clock)
    first = registry.get("HTTPS://Host.Example.com/")
    assert registry.get("host.example.com") is first
    assert registry.get("http://host.example.com") is first
    assert first.name == "host.example.com"
    other = registry.get("host.example.com:8443")
    assert other is not first
    assert registry.hosts() == ["host.example.com", "host.example.com:8443"]
    assert len(registry) == 2
    _trip(first)
    assert registry.get("host.example.com").state is OPEN
    assert other.state is CLOSED
    registry.remove("HOST.example.com")
    assert registry.get("host.example.com").state is CLOSED


def test_registry_default_construction() -> None:
    registry = CircuitBreakerRegistry()
    breaker = registry.get("h")
    assert breaker.config == BreakerConfig()
    assert breaker.try_acquire()


def test_registry_is_thread_safe() -> None:
    registry = CircuitBreakerRegistry()
    found: list[CircuitBreaker] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        breaker = registry.get("https://race.example.com/")
        with lock:
            found.append(breaker)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(b) for b in found}) == 1


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("HTTPS://Host.Example.com/", "host.example.com"),
        ("host.example.com", "host.example.com"),
        ("http://host.example.com//", "host.example.com"),
        ("  https://adb-123.4.azuredatabricks.net  ", "adb-123.4.azuredatabricks.net"),
        ("https://host.example.com:443/", "host.example.com:443"),
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("https://host.example.com/sql/1.0/warehouses/abc", "host.example.com"),
    ],
)
def test_normalize_host(host: str, key: str) -> None:
    assert normalize_host(host) == key


# --------------------------------------------------------------------------- Retry-After


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("99999", MAX_RETRY_AFTER_SECONDS),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),
        (email.utils.formatdate(NOW + 86_400, usegmt=True), MAX_RETRY_AFTER_SECONDS),
        ("Wed, 21 Oct 2015 07:28:00", 0.0),  # zone-less, long past
        (None, None),
        ("", None),
        ("   ", None),
        ("-1", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    result = parse_retry_after(value, now=lambda: NOW)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_parse_retry_after_uses_wall_clock_by_default() -> None:
    import time

    value = email.utils.formatdate(time.time() + 30, usegmt=True)
    result = parse_retry_after(value)
    assert result is not None and 25.0 <= result <= 30.0
