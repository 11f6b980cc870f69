"""One telemetry client per Databricks host: a bounded queue, a worker, retries, the breaker.

Each client owns one daemon worker thread. A worker per host (rather than one for all hosts)
keeps a host whose endpoint hangs from delaying the exports of every other host, and hosts are
few. The worker is the only thread that makes HTTP requests; ``enqueue`` never blocks.

Retries live here and nowhere else (the transport has ``retries=False``): 429, 502, 503, 504
and connection failures are retried up to ``max_retries`` times with exponential backoff and
jitter inside the batch deadline; ``Retry-After`` is honoured when it fits in the deadline.
Every HTTP attempt is one circuit-breaker outcome; while the breaker rejects, batches are
dropped and counted.

Lifecycle: connections ``acquire``/``release`` the client. When the last one releases, the
client lingers briefly (records of a closing connection are still being aggregated), then
flushes within its close deadline and stops. ``begin_close`` + ``join`` end it at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from opentelemetry_instrumentation_dbsql.export.circuit_breaker import parse_retry_after
from opentelemetry_instrumentation_dbsql.export.feature_flags import FlagEntry
from opentelemetry_instrumentation_dbsql.export.http_transport import (
    HttpTransport,
    TransportError,
)
from opentelemetry_instrumentation_dbsql.export.launcher import ThreadLauncher
from opentelemetry_instrumentation_dbsql.export.stats import DropReason, ExportStats
from opentelemetry_instrumentation_dbsql.export.wire_format import encode_literals

logger = logging.getLogger(__name__)

AUTH_PATH = "/telemetry-ext"
UNAUTH_PATH = "/telemetry-unauth"
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# An attempt with less time than this left is not worth starting.
_MIN_ATTEMPT_S = 0.05


class Breaker(Protocol):
    """The circuit-breaker operations the client uses."""

    def try_acquire(self) -> bool:
        """Admit one attempt (False while open, or when the half-open probe is taken)."""
        ...

    def record_success(self) -> None:
        """The admitted attempt succeeded."""
        ...

    def record_failure(self, retry_after: float | None = None) -> None:
        """The admitted attempt failed; ``retry_after`` is the server's hint in seconds."""
        ...

    def release(self) -> None:
        """The admitted attempt was not made."""
        ...


HeaderSource = Callable[[], Mapping[str, str]]
RetryAfterParser = Callable[[str | None], float | None]


@dataclass(frozen=True)
class ClientConfig:
    """Limits and timings of a host client; small values make tests fast."""

    max_batch_size: int = 100
    max_queue: int = 2000
    max_flag_pending: int = 1000
    batch_deadline_s: float = 10.0
    attempt_timeout_s: float = 5.0
    max_retries: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 4.0
    close_linger_s: float = 1.0
    close_flush_timeout_s: float = 4.0
    retryable_statuses: frozenset[int] = RETRYABLE_STATUSES


class ClientState(str, Enum):
    """Where a client is in its life."""

    ACTIVE = "active"
    LINGERING = "lingering"
    CLOSING = "closing"
    CLOSED = "closed"


class HostTelemetryClient:
    """Queue and worker of one host."""

    def __init__(
        self,
        host_key: str,
        transport: HttpTransport,
        breaker: Breaker,
        stats: ExportStats,
        config: ClientConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after_parser: RetryAfterParser = parse_retry_after,
        on_idle: Callable[[HostTelemetryClient], None] | None = None,
        launcher: ThreadLauncher | None = None,
    ) -> None:
        self.host_key = host_key
        self.transport = transport
        self.breaker = breaker
        self.stats = stats
        self.config = config or ClientConfig()
        self._clock = clock
        self._parse_retry_after = retry_after_parser
        self._on_idle = on_idle
        self._launcher = launcher
        self._running = threading.Event()
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._pending: deque[str] = deque()
        self._flag: FlagEntry | None = None
        self._header_sources: dict[int, HeaderSource] = {}
        self._last_header_source: HeaderSource | None = None
        self._refs = 0
        self._state = ClientState.ACTIVE
        self._linger_until = 0.0
        self._close_deadline = float("inf")
        self._in_flight = 0
        self._in_flight_records = 0
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def state(self) -> ClientState:
        """Current life stage."""
        with self._cond:
            return self._state

    @property
    def refcount(self) -> int:
        """Connections holding the client."""
        with self._cond:
            return self._refs

    def start(self) -> None:
        """Start the worker thread (once); through the launcher when there is one."""
        with self._cond:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name=f"dbsql-telemetry[{self.host_key}]", daemon=True
            )
            self._thread = thread
        if self._launcher is not None:
            self._launcher.launch(thread)
        else:
            thread.start()

    def try_acquire(self, token: int, headers: HeaderSource) -> bool:
        """Add a connection; False once the client is closing (make a new one)."""
        with self._cond:
            if self._state in (ClientState.CLOSING, ClientState.CLOSED):
                return False
            self._refs += 1
            self._header_sources[token] = headers
            self._last_header_source = headers
            self._state = ClientState.ACTIVE
            return True

    def release(self, token: int) -> None:
        """Remove a connection; the last one starts the linger, then the final flush."""
        with self._cond:
            if self._header_sources.pop(token, None) is None:
                return
            self._refs -= 1
            if self._refs == 0 and self._state is ClientState.ACTIVE:
                self._state = ClientState.LINGERING
                self._linger_until = self._clock() + self.config.close_linger_s
                self._cond.notify_all()

    def retire_if_idle(self) -> bool:
        """LINGERING past its time -> CLOSING with the close deadline. Registry lock held."""
        with self._cond:
            if self._state is not ClientState.LINGERING or self._refs:
                return False
            if self._clock() < self._linger_until:
                return False
            self._start_closing_locked(self._clock() + self.config.close_flush_timeout_s)
            return True

    def begin_close(self, deadline: float) -> None:
        """Stop accepting records and flush until ``deadline`` (clock time)."""
        with self._cond:
            if self._state is ClientState.CLOSED:
                return
            if self._state is ClientState.CLOSING:
                self._close_deadline = min(self._close_deadline, deadline)
            else:
                self._start_closing_locked(deadline)
            self._cond.notify_all()
        if self._thread is None:
            self._finish()

    def _start_closing_locked(self, deadline: float) -> None:
        self._state = ClientState.CLOSING
        self._close_deadline = deadline
        self._cond.notify_all()

    def join(self, timeout_s: float) -> bool:
        """Wait for the worker; on timeout count what is left as dropped. True when done.

        A batch still being sent at the timeout is not counted: its outcome is counted when
        the endpoint answers (never, if the process ends first; see ``unanswered``)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        deadline = time.monotonic() + max(timeout_s, 0.0)
        # A launched thread may not have started yet; join() would raise.
        if self._running.wait(max(timeout_s, 0.0)):
            thread.join(max(deadline - time.monotonic(), 0.0))
        if not self._running.is_set() or thread.is_alive():
            self._drop_all_held(DropReason.SHUTDOWN)
            return False
        return True

    @property
    def unanswered(self) -> int:
        """Records of the batch being sent, whose outcome is not known yet."""
        with self._cond:
            return self._in_flight_records

    # -- records in ---------------------------------------------------------------------------
    def enqueue(self, proto_logs: Sequence[str], flag: FlagEntry | None = None) -> None:
        """Queue serialized events (``protoLogs`` elements as JSON string literals, see
        ``wire_format.proto_log_literal``); with ``flag`` they wait for (and obey) the server
        flag."""
        if not proto_logs:
            return
        listen = False
        with self._cond:
            if self._state in (ClientState.CLOSING, ClientState.CLOSED):
                self.stats.record_dropped(DropReason.SHUTDOWN, len(proto_logs))
                return
            if flag is not None:
                if self._flag is None:
                    self._flag = flag
                    listen = True
                value = flag.peek()
                if value is False:
                    self.stats.record_dropped(DropReason.DISABLED, len(proto_logs))
                elif value is None:
                    self._hold_pending_locked(proto_logs)
                else:
                    self._queue_locked(proto_logs)
            else:
                self._queue_locked(proto_logs)
            self._cond.notify_all()
        if listen and flag is not None:
            flag.add_listener(self._on_flag)
        if flag is not None:
            flag.value()  # starts a refresh when the value is stale; never waits

    def _queue_locked(self, proto_logs: Sequence[str]) -> None:
        self._queue.extend(proto_logs)
        self.stats.adjust_held(queued=len(proto_logs))
        overflow = len(self._queue) - self.config.max_queue
        if overflow > 0:
            for _ in range(overflow):
                self._queue.popleft()
            self.stats.adjust_held(queued=-overflow)
            self.stats.record_dropped(DropReason.QUEUE_FULL, overflow)

    def _hold_pending_locked(self, proto_logs: Sequence[str]) -> None:
        self._pending.extend(proto_logs)
        self.stats.adjust_held(flag_pending=len(proto_logs))
        overflow = len(self._pending) - self.config.max_flag_pending
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            self.stats.adjust_held(flag_pending=-overflow)
            self.stats.record_dropped(DropReason.FLAG_PENDING_OVERFLOW, overflow)

    def _on_flag(self, _value: bool) -> None:
        with self._cond:
            self._resolve_pending_locked()
            self._cond.notify_all()

    def _resolve_pending_locked(self) -> None:
        if not self._pending or self._flag is None:
            return
        value = self._flag.peek()
        if value is None:
            return
        held = list(self._pending)
        self._pending.clear()
        self.stats.adjust_held(flag_pending=-len(held))
        if value:
            self._queue_locked(held)
        else:
            self.stats.record_dropped(DropReason.DISABLED, len(held))

    def _drop_all_held(self, reason: DropReason) -> None:
        with self._cond:
            queued, pending = len(self._queue), len(self._pending)
            self._queue.clear()
            self._pending.clear()
            self.stats.adjust_held(queued=-queued, flag_pending=-pending)
        self.stats.record_dropped(reason, queued + pending)

    # -- worker -------------------------------------------------------------------------------
    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is queued or in flight (tests)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def _next_batch(self) -> tuple[list[str], float] | None:
        """The next batch and its deadline, or None when the worker should stop."""
        while True:
            retire = False
            with self._cond:
                self._resolve_pending_locked()
                now = self._clock()
                closing = self._state is ClientState.CLOSING
                if closing and now >= self._close_deadline:
                    return None
                if self._queue:
                    n = min(len(self._queue), self.config.max_batch_size)
                    batch = [self._queue.popleft() for _ in range(n)]
                    self.stats.adjust_held(queued=-n)
                    self._in_flight += 1
                    self._in_flight_records += n
                    deadline = now + self.config.batch_deadline_s
                    return batch, min(deadline, self._close_deadline)
                if closing:
                    if not self._pending:
                        return None
                    self._cond.wait(min(self._close_deadline - now, 0.5))
                    continue
                if self._state is ClientState.LINGERING:
                    if now >= self._linger_until:
                        retire = True
                    else:
                        self._cond.wait(self._linger_until - now)
                        continue
                else:
                    # Bounded wait: also the safety net for a missed flag notification.
                    self._cond.wait(1.0)
                    continue
            if retire and self._on_idle is not None:
                self._on_idle(self)  # takes the registry lock, then ours: never under ours
            elif retire:
                self.retire_if_idle()

    def _run(self) -> None:
        self._running.set()
        try:
            while True:
                item = self._next_batch()
                if item is None:
                    break
                batch, deadline = item
                try:
                    self._send(batch, deadline)
                except Exception:
                    logger.debug("Telemetry batch failed unexpectedly", exc_info=True)
                    self.stats.record_dropped(DropReason.RETRIES_EXHAUSTED, len(batch), batch=True)
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self._in_flight_records -= len(batch)
                        self._cond.notify_all()
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._cond:
            self._state = ClientState.CLOSED
            self._header_sources.clear()
            self._last_header_source = None
            self._cond.notify_all()
        self._drop_all_held(DropReason.SHUTDOWN)
        if self._flag is not None:
            self._flag.remove_listener(self._on_flag)
        self.transport.close()

    def _headers(self) -> tuple[dict[str, str], bool]:
        with self._cond:
            source = (
                next(reversed(self._header_sources.values()))
                if self._header_sources
                else self._last_header_source
            )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if source is None:
            return headers, False
        supplied = dict(source())
        headers.update(supplied)
        authenticated = any(k.lower() == "authorization" for k in supplied)
        return headers, authenticated

    def _backoff(self, retry: int) -> float:
        ceiling = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2.0 ** (retry - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _current_deadline(self, deadline: float) -> float:
        with self._cond:
            return min(deadline, self._close_deadline)

    def _sleep(self, seconds: float, deadline: float) -> None:
        end = self._clock() + seconds
        with self._cond:
            while True:
                now = self._clock()
                # A close that moves the deadline earlier ends the wait at once.
                if now >= end or self._close_deadline < deadline:
                    return
                self._cond.wait(end - now)

    def _send(self, batch: list[str], deadline: float) -> None:
        n = len(batch)
        try:
            headers, authenticated = self._headers()
        except Exception as exc:
            logger.debug("Telemetry headers unavailable: %s", type(exc).__name__)
            self.stats.record_dropped(DropReason.CREDENTIALS_ERROR, n, batch=True)
            return
        path = AUTH_PATH if authenticated else UNAUTH_PATH
        body = encode_literals(batch)
        retries = 0
        while True:
            deadline = self._current_deadline(deadline)
            remaining = deadline - self._clock()
            if remaining < _MIN_ATTEMPT_S:
                reason = DropReason.SHUTDOWN if retries == 0 else DropReason.RETRIES_EXHAUSTED
                self.stats.record_dropped(reason, n, batch=True)
                return
            if not self.breaker.try_acquire():
                self.stats.record_dropped(DropReason.BREAKER_OPEN, n, batch=True)
                return
            self.stats.record_attempt(retry=retries > 0)
            retry_after: float | None = None
            try:
                response = self.transport.request(
                    "POST",
                    path,
                    headers=headers,
                    body=body,
                    timeout_s=min(self.config.attempt_timeout_s, remaining),
                )
            except TransportError as exc:
                self.breaker.record_failure(None)
                logger.debug("Telemetry POST failed: %s", exc)
            except BaseException:
                self.breaker.release()
                raise
            else:
                if 200 <= response.status < 300:
                    self.breaker.record_success()
                    self.stats.record_exported(n)
                    return
                retry_after = self._parse_retry_after(response.headers.get("retry-after"))
                self.breaker.record_failure(retry_after)
                logger.debug("Telemetry POST answered HTTP %s", response.status)
                if response.status not in self.config.retryable_statuses:
                    self.stats.record_dropped(DropReason.TERMINAL_HTTP_ERROR, n, batch=True)
                    return
            retries += 1
            if retries > self.config.max_retries:
                self.stats.record_dropped(DropReason.RETRIES_EXHAUSTED, n, batch=True)
                return
            delay = self._backoff(retries)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if self._clock() + delay + _MIN_ATTEMPT_S > self._current_deadline(deadline):
                self.stats.record_dropped(DropReason.RETRIES_EXHAUSTED, n, batch=True)
                return
            self._sleep(delay, deadline)
