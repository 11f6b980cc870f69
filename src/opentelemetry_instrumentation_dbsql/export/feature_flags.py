"""The server's telemetry feature flag, cached per host and fetched off the caller's thread.

One entry per normalized host, shared by that host's connections and reference counted. A
fetch runs on its own daemon thread (never on the thread that registers a connection), at most
one per host at a time. Until the first answer the value is unknown (``None``); afterwards the
last good value is served while a refresh runs or after a refresh fails. A non-200 answer, bad
JSON or a network failure without an earlier good value means "off".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry_instrumentation_dbsql.export.http_transport import (
    HttpTransport,
    TransportError,
)
from opentelemetry_instrumentation_dbsql.export.launcher import ThreadLauncher

logger = logging.getLogger(__name__)

FLAG_NAME = "databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForPythonDriver"
FLAG_PATH_FORMAT = "/api/2.0/connector-service/feature-flags/PYTHON/{version}"
DEFAULT_TTL_S = 900.0

FlagListener = Callable[[bool], None]


@dataclass(frozen=True)
class FlagRequester:
    """How one connection asks for the flag: its transport, headers and connector version.

    ``headers`` runs on the fetch thread: it may refresh an OAuth token.
    """

    transport: HttpTransport
    headers: Callable[[], Mapping[str, str]]
    driver_version: str


def parse_flag_response(status: int, body: bytes) -> tuple[bool | None, float | None]:
    """``(flag, ttl_seconds)`` of one answer; ``flag`` is None when the answer is unusable."""
    if status != 200:
        return None, None
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    flags = data.get("flags", [])
    if not isinstance(flags, list):
        return None, None
    value = False
    for item in flags:
        if isinstance(item, dict) and item.get("name") == FLAG_NAME:
            raw = item.get("value")
            value = isinstance(raw, str) and raw.strip().lower() == "true"
    ttl_raw: Any = data.get("ttl_seconds")
    ttl = float(ttl_raw) if isinstance(ttl_raw, int | float) and ttl_raw > 0 else None
    return value, ttl


class FlagEntry:
    """The flag of one host."""

    def __init__(self, cache: FeatureFlagCache, host_key: str) -> None:
        self.host_key = host_key
        self._cache = cache
        self._lock = threading.Condition()
        self._value: bool | None = None
        self._from_server = False
        self._expires_at = 0.0
        self._in_flight = False
        self._refs = 0
        self._requesters: dict[int, FlagRequester] = {}
        self._listeners: list[FlagListener] = []
        self.fetch_count = 0

    # -- reading ------------------------------------------------------------------------------
    def value(self) -> bool | None:
        """The flag, None while the first answer is awaited; starts a refresh when stale."""
        with self._lock:
            value = self._value
        self._maybe_refresh()
        return value

    def peek(self) -> bool | None:
        """The flag without triggering a refresh."""
        with self._lock:
            return self._value

    def wait(self, timeout_s: float) -> bool | None:
        """Block until a value is known or ``timeout_s`` passed (tests and shutdown only)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._value is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            return self._value

    def add_listener(self, listener: FlagListener) -> None:
        """Call ``listener(value)`` on the fetch thread after every answer."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: FlagListener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- fetching -----------------------------------------------------------------------------
    def _maybe_refresh(self) -> None:
        with self._lock:
            if self._in_flight or self._cache.closed:
                return
            if self._value is not None and self._cache.clock() < self._expires_at:
                return
            if not self._requesters:
                return
            # The most recently registered connection asks: its credentials are the freshest.
            requester = next(reversed(self._requesters.values()))
            self._in_flight = True
        thread = threading.Thread(
            target=self._fetch,
            args=(requester,),
            name=f"dbsql-telemetry-flag[{self.host_key}]",
            daemon=True,
        )
        launcher = self._cache.launcher
        try:
            if launcher is not None:
                launcher.launch(thread)
            else:
                thread.start()
        except RuntimeError:
            # Interpreter shutting down: no new threads; keep whatever is known.
            with self._lock:
                self._in_flight = False

    def _fetch(self, requester: FlagRequester) -> None:
        value: bool | None = None
        ttl: float | None = None
        try:
            headers = dict(requester.headers())
            path = FLAG_PATH_FORMAT.format(version=requester.driver_version)
            response = requester.transport.request(
                "GET", path, headers=headers, timeout_s=self._cache.fetch_timeout_s
            )
            value, ttl = parse_flag_response(response.status, response.data)
            if value is None:
                logger.debug("Feature-flag answer unusable (HTTP %s)", response.status)
        except TransportError as exc:
            logger.debug("Feature-flag fetch failed: %s", exc)
        except Exception as exc:  # credentials provider or anything unexpected
            logger.debug("Feature-flag fetch failed: %s", type(exc).__name__)
        self._store(value, ttl)

    def _store(self, value: bool | None, ttl: float | None) -> None:
        now = self._cache.clock()
        with self._lock:
            self.fetch_count += 1
            self._in_flight = False
            if value is not None:
                self._value = value
                self._from_server = True
                self._expires_at = now + (ttl if ttl is not None else self._cache.default_ttl_s)
            else:
                if not self._from_server:
                    self._value = False  # unavailable means off
                # Stale value kept; ask again sooner than a full TTL.
                self._expires_at = now + min(self._cache.error_retry_s, self._cache.default_ttl_s)
            result = bool(self._value)
            listeners = list(self._listeners)
            self._lock.notify_all()
        for listener in listeners:
            try:
                listener(result)
            except Exception:
                logger.debug("Feature-flag listener failed", exc_info=True)

    # -- reference counting -------------------------------------------------------------------
    def _acquire(self, token: int, requester: FlagRequester) -> None:
        with self._lock:
            self._refs += 1
            self._requesters[token] = requester

    def _release(self, token: int) -> int:
        with self._lock:
            if self._requesters.pop(token, None) is None:
                return self._refs
            self._refs -= 1
            return self._refs

    @property
    def refcount(self) -> int:
        """Connections holding this entry."""
        with self._lock:
            return self._refs


@dataclass(frozen=True)
class FlagLease:
    """One connection's hold on a host's flag entry."""

    entry: FlagEntry
    token: int


class FeatureFlagCache:
    """Flag entries by normalized host key."""

    def __init__(
        self,
        *,
        default_ttl_s: float = DEFAULT_TTL_S,
        error_retry_s: float = 60.0,
        fetch_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        launcher: ThreadLauncher | None = None,
    ) -> None:
        self.launcher = launcher
        self.default_ttl_s = default_ttl_s
        self.error_retry_s = error_retry_s
        self.fetch_timeout_s = fetch_timeout_s
        self.clock = clock
        self.closed = False
        self._lock = threading.Lock()
        self._entries: dict[str, FlagEntry] = {}
        self._next_token = 0

    def acquire(self, host_key: str, requester: FlagRequester) -> FlagLease:
        """Hold the host's entry and start a fetch if there is no fresh value (non-blocking)."""
        with self._lock:
            entry = self._entries.get(host_key)
            if entry is None:
                entry = FlagEntry(self, host_key)
                self._entries[host_key] = entry
            self._next_token += 1
            token = self._next_token
            entry._acquire(token, requester)
        entry.value()
        return FlagLease(entry, token)

    def release(self, lease: FlagLease) -> None:
        """Drop a hold. The value stays cached for its TTL; credentials are forgotten."""
        lease.entry._release(lease.token)

    def get(self, host_key: str) -> FlagEntry | None:
        """The host's entry, if any connection ever asked for it."""
        with self._lock:
            return self._entries.get(host_key)

    def close(self) -> None:
        """Start no more fetches (fetches in flight finish on their daemon threads)."""
        self.closed = True
