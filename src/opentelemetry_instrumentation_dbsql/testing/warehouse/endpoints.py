"""The driver's side channels: the feature-flag endpoint and the telemetry endpoints."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

from opentelemetry_instrumentation_dbsql.testing.warehouse.wire import (
    Reply,
    Request,
    json_reply,
)

FEATURE_FLAG_PREFIX = "/api/2.0/connector-service/feature-flags/"
TELEMETRY_FLAG = (
    "databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForPythonDriver"
)
TELEMETRY_PATHS = ("/telemetry-ext", "/telemetry-unauth")


class FeatureFlagEndpoint:
    """``GET /api/2.0/connector-service/feature-flags/<DRIVER>/<version>``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self.last_answer: bool | None = None
        """The telemetry flag value last answered (None: not asked yet, or no valid answer)."""
        self.configure()

    def configure(
        self,
        enabled: bool = True,
        *,
        ttl_seconds: int = 900,
        status: int = 200,
        delay: float = 0.0,
        malformed: bool = False,
        extra_flags: dict[str, str] | None = None,
    ) -> None:
        """Set what the endpoint answers from now on.

        ``enabled`` is the telemetry flag's value; ``status`` other than 200 answers that
        status; ``malformed`` answers a body that is not JSON; ``delay`` waits first.
        """
        with self._lock:
            self._enabled = enabled
            self._ttl = ttl_seconds
            self._status = status
            self._delay = delay
            self._malformed = malformed
            self._extra = dict(extra_flags or {})

    @property
    def requests(self) -> list[Request]:
        """The flag requests received so far."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def handle(self, request: Request) -> Reply:
        """Answer one flag request."""
        with self._lock:
            self._requests.append(request)
            self.last_answer = None
            if self._malformed:
                reply = Reply(
                    status=self._status,
                    body=b'{"flags": [{"name": ',
                    headers={"Content-Type": "application/json"},
                )
            elif self._status != 200:
                reply = json_reply(
                    {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "feature flags failed"},
                    status=self._status,
                )
            else:
                flags = [{"name": TELEMETRY_FLAG, "value": "true" if self._enabled else "false"}]
                flags += [{"name": k, "value": v} for k, v in self._extra.items()]
                reply = json_reply({"flags": flags, "ttl_seconds": self._ttl})
                self.last_answer = self._enabled
            reply.delay = self._delay
        return reply


class TelemetryEndpoint:
    """``POST /telemetry-ext`` and ``POST /telemetry-unauth``, with fault injection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payloads: list[dict[str, Any]] = []
        self._fail: tuple[int, str | None] | None = None
        self._fail_times = 0
        self._resets = 0
        self._delay = 0.0
        self._hold: threading.Event | None = None
        self.last_post: float | None = None
        """``time.monotonic()`` of the latest POST received."""

    def fail(self, status: int = 503, retry_after: str | int | None = None, times: int = 1) -> None:
        """Answer the next ``times`` POSTs with ``status`` (and ``Retry-After`` if given)."""
        with self._lock:
            self._fail = (status, None if retry_after is None else str(retry_after))
            self._fail_times = times

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering every POST."""
        with self._lock:
            self._delay = seconds

    def hang(self) -> None:
        """Hold every POST from now on unanswered until :meth:`release` (or server stop)."""
        with self._lock:
            if self._hold is None or self._hold.is_set():
                self._hold = threading.Event()

    def release(self) -> None:
        """Answer the held POSTs and stop holding new ones."""
        with self._lock:
            hold, self._hold = self._hold, None
        if hold is not None:
            hold.set()

    def reset_connections(self, times: int = 1) -> None:
        """Drop the connection (TCP reset) of the next ``times`` POSTs."""
        with self._lock:
            self._resets = times

    def clear_faults(self) -> None:
        """Undo :meth:`fail`, :meth:`set_delay`, :meth:`hang` and :meth:`reset_connections`."""
        with self._lock:
            self._fail, self._fail_times, self._resets, self._delay = None, 0, 0, 0.0
        self.release()

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """Every POST body received, JSON-decoded, plus ``path``, ``headers`` and ``status``.

        ``protoLogs`` entries stay the JSON strings the client sent; ``status`` is the HTTP
        status answered (0 for a reset connection).
        """
        with self._lock:
            return copy.deepcopy(self._payloads)

    def events(self, include_rejected: bool = False) -> list[dict[str, Any]]:
        """The ``entry.sql_driver_log`` of every accepted protoLogs entry, decoded.

        Payloads that were answered with an error status or reset are left out unless
        ``include_rejected`` (a client retrying them would otherwise count twice).
        """
        out: list[dict[str, Any]] = []
        for payload in self.payloads:
            if not include_rejected and not 200 <= payload.get("status", 0) < 300:
                continue
            for log in payload.get("protoLogs") or []:
                try:
                    decoded = json.loads(log) if isinstance(log, str) else log
                    out.append(decoded["entry"]["sql_driver_log"])
                except (ValueError, KeyError, TypeError):
                    continue
        return out

    def reset(self) -> None:
        """Forget the recorded payloads."""
        with self._lock:
            self._payloads.clear()

    def stop(self) -> None:
        """Release held requests for good (the server is stopping)."""
        self.release()

    def handle(self, request: Request) -> Reply:
        """Record and answer one telemetry POST."""
        try:
            body = json.loads(request.body.decode() or "null")
        except ValueError:
            body = None
        payload: dict[str, Any] = dict(body) if isinstance(body, dict) else {"raw": request.body}
        payload["path"] = request.path
        payload["headers"] = dict(request.headers)
        logs = payload.get("protoLogs")
        count = len(logs) if isinstance(logs, list) else 0
        with self._lock:
            self.last_post = time.monotonic()
            if self._resets > 0:
                self._resets -= 1
                reply = Reply(reset=True)
            elif self._fail is not None and self._fail_times > 0:
                self._fail_times -= 1
                status, retry_after = self._fail
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                reply = json_reply(
                    {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "telemetry failed"},
                    status=status,
                    headers=headers,
                )
            elif body is None or not isinstance(body, dict):
                reply = json_reply({"error_code": "BAD_REQUEST", "message": "not JSON"}, 400)
            else:
                reply = json_reply(
                    {
                        "errors": [],
                        "numSuccess": 0,
                        "numProtoSuccess": count,
                        "numRealtimeSuccess": 0,
                    }
                )
            reply.delay = self._delay
            reply.hold = self._hold
            payload["status"] = 0 if reply.reset else reply.status
            self._payloads.append(payload)
        return reply
