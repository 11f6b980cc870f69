"""Per-host circuit breaker for telemetry exports.

States: ``closed`` lets every call through and records outcomes in a sliding window of the last
``window_size`` calls; once at least ``min_calls`` outcomes are in the window and the failed share
reaches ``failure_ratio``, the breaker opens. ``open`` rejects every call for ``open_seconds``, or
for the server's ``Retry-After`` when that is longer (the larger of the two, never the sum).
``half_open`` then admits one probe at a time; ``half_open_successes`` consecutive successful
probes close it again with an empty window, and a failed probe re-opens it.

Callers pair every admitted :meth:`CircuitBreaker.try_acquire` with exactly one of
:meth:`~CircuitBreaker.record_success`, :meth:`~CircuitBreaker.record_failure` or
:meth:`~CircuitBreaker.release` (the call was admitted but never made). Outcomes of calls
admitted before the breaker opened are not probe results: while open or half-open without a probe
in flight, a late success is ignored and a late failure can only lengthen the open period through
its Retry-After. Log records and the ``on_state_change`` callback are emitted outside the lock, so
the callback may use the breaker.
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from enum import Enum

__all__ = [
    "DEFAULT_CONFIG",
    "MAX_RETRY_AFTER_SECONDS",
    "BreakerConfig",
    "BreakerState",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "StateChangeCallback",
    "normalize_host",
    "parse_retry_after",
]

logger = logging.getLogger("opentelemetry_instrumentation_dbsql.export")

MAX_RETRY_AFTER_SECONDS = 3600.0
"""Longest server back-off honoured; a larger Retry-After is treated as this."""


class BreakerState(str, Enum):
    """Where a breaker is in its cycle."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of a breaker; the defaults are the reference design's."""

    window_size: int = 30
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_seconds: float = 60.0
    half_open_successes: int = 3
    max_open_seconds: float = MAX_RETRY_AFTER_SECONDS
    """Cap on how long a server's Retry-After may keep the breaker open."""

    def __post_init__(self) -> None:
        if self.window_size < 1:
            raise ValueError("window_size must be at least 1")
        if not 1 <= self.min_calls <= self.window_size:
            raise ValueError("min_calls must be between 1 and window_size")
        if not 0.0 < self.failure_ratio <= 1.0:
            raise ValueError("failure_ratio must be in (0, 1]")
        if not (math.isfinite(self.open_seconds) and self.open_seconds >= 0.0):
            raise ValueError("open_seconds must be a finite number >= 0")
        if self.half_open_successes < 1:
            raise ValueError("half_open_successes must be at least 1")
        if not self.max_open_seconds >= self.open_seconds:
            raise ValueError("max_open_seconds must be >= open_seconds")


DEFAULT_CONFIG = BreakerConfig()


@dataclass(frozen=True)
class BreakerStats:
    """A consistent snapshot of one breaker."""

    state: BreakerState
    window_calls: int
    window_failures: int
    opens: int
    """Times the breaker went to ``open`` (from ``closed`` or from ``half_open``)."""
    rejected: int
    """Calls refused by :meth:`CircuitBreaker.try_acquire`."""
    open_remaining: float
    """Seconds until an open breaker admits a probe; 0 unless open."""


StateChangeCallback = Callable[[str, BreakerState, BreakerState], None]
"""Called as ``(breaker name, old state, new state)`` after each transition, outside the lock."""


class CircuitBreaker:
    """A thread-safe circuit breaker over a sliding window of call outcomes."""

    def __init__(
        self,
        config: BreakerConfig = DEFAULT_CONFIG,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        on_state_change: StateChangeCallback | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self._clock = clock
        self._on_state_change = on_state_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._window: deque[bool] = deque(maxlen=config.window_size)  # True = failure
        self._failures = 0
        self._open_until = 0.0
        # Latest "not before" time a server asked for while closed; honoured if the breaker opens.
        self._server_hold_until = 0.0
        self._probe_in_flight = False
        self._probe_successes = 0
        self._opens = 0
        self._rejected = 0

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose time is up reports ``half_open``)."""
        with self._lock:
            change = self._expire_open(self._clock())
            state = self._state
        self._announce(change)
        return state

    @property
    def stats(self) -> BreakerStats:
        """Window counts, opens and rejections, read atomically."""
        with self._lock:
            now = self._clock()
            change = self._expire_open(now)
            stats = BreakerStats(
                state=self._state,
                window_calls=len(self._window),
                window_failures=self._failures,
                opens=self._opens,
                rejected=self._rejected,
                open_remaining=(
                    max(self._open_until - now, 0.0) if self._state is BreakerState.OPEN else 0.0
                ),
            )
        self._announce(change)
        return stats

    def try_acquire(self) -> bool:
        """Whether a call may proceed now; in ``half_open`` only one probe at a time may."""
        with self._lock:
            change = self._expire_open(self._clock())
            state = self._state
            if state is BreakerState.CLOSED:
                admitted = True
            elif state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                admitted = True
            else:
                self._rejected += 1
                admitted = False
        self._announce(change)
        return admitted

    def record_success(self) -> None:
        """An admitted call succeeded."""
        with self._lock:
            change = None
            state = self._state
            if state is BreakerState.CLOSED:
                self._push(failed=False)
            elif state is BreakerState.HALF_OPEN and self._probe_in_flight:
                self._probe_in_flight = False
                self._probe_successes += 1
                if self._probe_successes >= self.config.half_open_successes:
                    change = self._close()
            # Otherwise a call admitted before the breaker opened finished late: not a probe.
        self._announce(change)

    def record_failure(self, retry_after: float | None = None) -> None:
        """An admitted call failed; ``retry_after`` is the server's back-off in seconds."""
        hold = _valid_hold(retry_after, self.config.max_open_seconds)
        with self._lock:
            now = self._clock()
            change = None
            state = self._state
            if state is BreakerState.CLOSED:
                if hold is not None:
                    self._server_hold_until = max(self._server_hold_until, now + hold)
                self._push(failed=True)
                if self._should_open():
                    change = self._open(now)
            elif state is BreakerState.HALF_OPEN:
                if self._probe_in_flight:
                    if hold is not None:
                        self._server_hold_until = max(self._server_hold_until, now + hold)
                    change = self._open(now)
            elif hold is not None:
                # A call admitted before the breaker opened: its server hint may still extend it.
                self._open_until = max(self._open_until, now + hold)
        self._announce(change)

    def release(self) -> None:
        """An admitted call ended without an outcome; frees the half-open probe slot."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probe_in_flight = False

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state.value})"

    # ------------------------------------------------------------------ internals (lock held)

    def _push(self, *, failed: bool) -> None:
        window = self._window
        if len(window) == window.maxlen and window[0]:
            self._failures -= 1
        window.append(failed)
        if failed:
            self._failures += 1

    def _should_open(self) -> bool:
        calls = len(self._window)
        return (
            calls >= self.config.min_calls and self._failures >= self.config.failure_ratio * calls
        )

    def _open(self, now: float) -> tuple[BreakerState, BreakerState, str]:
        old = self._state
        hold = min(
            max(self.config.open_seconds, self._server_hold_until - now),
            self.config.max_open_seconds,
        )
        self._open_until = now + hold
        self._server_hold_until = 0.0
        self._state = BreakerState.OPEN
        self._probe_in_flight = False
        self._probe_successes = 0
        self._opens += 1
        if old is BreakerState.HALF_OPEN:
            detail = f"probe failed; rejecting calls for {hold:.0f} s"
        else:
            detail = (
                f"{self._failures} of the last {len(self._window)} calls failed; "
                f"rejecting calls for {hold:.0f} s"
            )
        return old, BreakerState.OPEN, detail

    def _expire_open(self, now: float) -> tuple[BreakerState, BreakerState, str] | None:
        if self._state is not BreakerState.OPEN or now < self._open_until:
            return None
        self._state = BreakerState.HALF_OPEN
        self._probe_in_flight = False
        self._probe_successes = 0
        return BreakerState.OPEN, BreakerState.HALF_OPEN, "admitting one probe at a time"

    def _close(self) -> tuple[BreakerState, BreakerState, str]:
        old = self._state
        self._state = BreakerState.CLOSED
        self._window.clear()
        self._failures = 0
        self._server_hold_until = 0.0
        self._probe_in_flight = False
        self._probe_successes = 0
        return old, BreakerState.CLOSED, f"{self.config.half_open_successes} probes succeeded"

    # ------------------------------------------------------------------ notification (no lock)

    def _announce(self, change: tuple[BreakerState, BreakerState, str] | None) -> None:
        if change is None:
            return
        old, new, detail = change
        level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
        logger.log(
            level, "Circuit breaker %s: %s -> %s (%s)", self.name, old.value, new.value, detail
        )
        callback = self._on_state_change
        if callback is not None:
            try:
                callback(self.name, old, new)
            except Exception:
                logger.exception("Circuit breaker %s: state-change callback failed", self.name)


def _valid_hold(retry_after: float | None, cap: float) -> float | None:
    if retry_after is None or isinstance(retry_after, bool):
        return None
    try:
        seconds = float(retry_after)
    except (TypeError, ValueError):
        return None
    if math.isnan(seconds) or seconds <= 0.0:
        return None
    return min(seconds, cap)


class CircuitBreakerRegistry:
    """One :class:`CircuitBreaker` per normalized host, created on first use."""

    def __init__(
        self,
        config: BreakerConfig = DEFAULT_CONFIG,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeCallback | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_state_change = on_state_change
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, host: str) -> CircuitBreaker:
        """The breaker of ``host`` (any spelling that :func:`normalize_host` maps together)."""
        key = normalize_host(host)
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = CircuitBreaker(
                    self.config,
                    clock=self._clock,
                    name=key,
                    on_state_change=self._on_state_change,
                )
                self._breakers[key] = breaker
            return breaker

    def remove(self, host: str) -> None:
        """Forget the breaker of ``host``; the next :meth:`get` starts a closed one."""
        with self._lock:
            self._breakers.pop(normalize_host(host), None)

    def hosts(self) -> list[str]:
        """The normalized hosts that have a breaker."""
        with self._lock:
            return sorted(self._breakers)

    def __len__(self) -> int:
        with self._lock:
            return len(self._breakers)


def normalize_host(host: str) -> str:
    """Host key: lower-cased, without scheme, path or trailing slash; the port is kept.

    ``"HTTPS://Host.Example.com/"`` and ``"host.example.com"`` give the same key;
    ``"host.example.com:8443"`` does not.
    """
    key = host.strip().lower()
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
            break
    return key.split("/", 1)[0]


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when absent or invalid.

    Accepts delay-seconds (``"120"``, leniently ``"1.5"``) and HTTP-dates; a date in the past
    gives 0. Negative, non-finite or unparsable values give None; results are capped at
    :data:`MAX_RETRY_AFTER_SECONDS`.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until_http_date(text, now)
    if seconds is None or not math.isfinite(seconds) or seconds < 0.0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _seconds_until_http_date(text: str, now: Callable[[], float]) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        # RFC 9110 dates are GMT; a zone-less date is read the same way.
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return max(moment.timestamp() - now(), 0.0)
    except (OverflowError, OSError, ValueError):
        return None
