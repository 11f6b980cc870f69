"""Staging (volume) operations: ``PUT`` / ``GET`` / ``REMOVE`` statements and the transfers to
their pre-signed URLs.

A staging statement (``PUT 'local' INTO '/Volumes/...' [OVERWRITE]``, ``GET '/Volumes/...' TO
'local'``, ``REMOVE '/Volumes/...'``) is answered as Databricks answers it: a result marked
``isStagingOperation`` whose one row holds ``operation``, ``presignedUrl``, ``localFile`` and
``headers``. The driver then sends PUT, GET or DELETE to that URL itself; the warehouse serves
it from memory, keyed by volume path, with faults injectable per HTTP method, and records
every transfer it answered.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse.faults import FaultPlan, RpcFault
from opentelemetry_instrumentation_dbsql.testing.warehouse.wire import Reply, Request

TRANSFER_PREFIX = "/volume-transfer/"
# The query parameters of a pre-signed URL (names in the style of the cloud stores').
SIGNATURE_PARAM = "X-Databricks-Signature"
EXPIRES_PARAM = "X-Databricks-Expires"

_METHODS = {"PUT": "PUT", "GET": "GET", "REMOVE": "DELETE"}
_LITERAL = r"'((?:[^']|'')*)'"
_PUT = re.compile(rf"\s*PUT\s+{_LITERAL}\s+INTO\s+{_LITERAL}(\s+OVERWRITE)?\s*;?\s*", re.I | re.S)
_GET = re.compile(rf"\s*GET\s+{_LITERAL}\s+TO\s+{_LITERAL}\s*;?\s*", re.I | re.S)
_REMOVE = re.compile(rf"\s*REMOVE\s+{_LITERAL}\s*;?\s*", re.I | re.S)


@dataclass(frozen=True)
class StagingCommand:
    """One staging statement: ``operation`` is PUT, GET or REMOVE; ``local_file`` is None for
    REMOVE and ``__input_stream__`` for a PUT from a stream."""

    operation: str
    volume_path: str
    local_file: str | None = None
    overwrite: bool = False

    @property
    def method(self) -> str:
        """The HTTP method of the transfer."""
        return _METHODS[self.operation]


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def parse_staging(sql: str) -> StagingCommand | None:
    """The staging command ``sql`` is, or None for any other statement."""
    match = _PUT.fullmatch(sql)
    if match:
        return StagingCommand(
            "PUT", _unquote(match[2]), _unquote(match[1]), overwrite=match[3] is not None
        )
    match = _GET.fullmatch(sql)
    if match:
        return StagingCommand("GET", _unquote(match[1]), _unquote(match[2]))
    match = _REMOVE.fullmatch(sql)
    if match:
        return StagingCommand("REMOVE", _unquote(match[1]))
    return None


@dataclass(frozen=True)
class ServedTransfer:
    """One request to a pre-signed volume URL, as the warehouse answered it.

    ``status`` is 0 when the connection was reset; ``request_bytes`` / ``response_bytes`` are
    the bodies' sizes; ``url`` is the pre-signed URL used (what must never be recorded).
    """

    method: str
    volume_path: str
    statement_id: str
    status: int
    request_bytes: int
    response_bytes: int
    url: str
    duration: float = 0.0


@dataclass(frozen=True)
class _Ticket:
    command: StagingCommand
    statement_id: str
    signature: str
    expires_at: float
    url: str


def _error(status: int, code: str, message: str) -> Reply:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return Reply(status=status, body=body, headers={"Content-Type": "application/xml"})


class VolumeStore:
    """The files of every volume, the pre-signed URLs handed out, and the transfers served."""

    def __init__(self, link_ttl: float = 900.0) -> None:
        self._lock = threading.Lock()
        self._link_ttl = link_ttl
        self._files: dict[str, bytes] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._transfers: list[ServedTransfer] = []
        self.faults = FaultPlan()

    # -- the statement ---------------------------------------------------------------------------

    def issue(self, command: StagingCommand, statement_id: str, base_url: str) -> Any:
        """The one-row result of a staging statement, with a fresh pre-signed URL."""
        token = secrets.token_urlsafe(18)
        signature = secrets.token_hex(16)
        expires_at = time.time() + self._link_ttl
        url = (
            f"{base_url}{TRANSFER_PREFIX}{token}"
            f"?{SIGNATURE_PARAM}={signature}&{EXPIRES_PARAM}={int(expires_at)}"
        )
        with self._lock:
            self._tickets[token] = _Ticket(command, statement_id, signature, expires_at, url)
        headers = {"Content-Type": "application/octet-stream"} if command.operation == "PUT" else {}
        return pa.table(
            {
                "operation": pa.array([command.operation], pa.string()),
                "presignedUrl": pa.array([url], pa.string()),
                "localFile": pa.array([command.local_file], pa.string()),
                "headers": pa.array([json.dumps(headers)], pa.string()),
            }
        )

    # -- the transfer ----------------------------------------------------------------------------

    def handles(self, request: Request) -> bool:
        """Whether ``request`` goes to a pre-signed volume URL."""
        return request.path.startswith(TRANSFER_PREFIX)

    def handle(self, request: Request) -> Reply:
        """Answer one transfer: store, return or delete the file the URL was signed for."""
        clock = time.perf_counter()
        parts = urlsplit(request.path)
        token = parts.path[len(TRANSFER_PREFIX) :]
        query = parse_qs(parts.query)
        with self._lock:
            ticket = self._tickets.get(token)
        fault = self.faults.take(request.method)
        if fault is not None and (fault.status is not None or fault.reset):
            status = 0 if fault.reset else int(fault.status or 500)
            reply = (
                Reply(reset=True)
                if fault.reset
                else _error(status, "InjectedFault", f"injected status {status}")
            )
            reply.headers.update(fault.headers)
        else:
            reply = self._answer(request, ticket, query)
            status = reply.status
        if fault is not None:
            reply.delay = fault.delay  # waited by the server, which ends the wait when stopping
        if ticket is not None:
            record = ServedTransfer(
                request.method,
                ticket.command.volume_path,
                ticket.statement_id,
                status,
                len(request.body),
                len(reply.body),
                ticket.url,
                time.perf_counter() - clock,
            )
            with self._lock:
                self._transfers.append(record)
        return reply

    def _answer(self, request: Request, ticket: _Ticket | None, query: dict[str, Any]) -> Reply:
        if ticket is None:
            return _error(404, "NoSuchUpload", "unknown link")
        if query.get(SIGNATURE_PARAM) != [ticket.signature] or request.method != (
            ticket.command.method
        ):
            return _error(403, "SignatureDoesNotMatch", "signature does not match")
        if ticket.expires_at <= time.time():
            return _error(403, "AccessDenied", "Request has expired")
        path = ticket.command.volume_path
        with self._lock:
            if request.method == "PUT":
                self._files[path] = request.body
                return Reply(status=200)
            data = self._files.get(path)
            if data is None:
                return _error(404, "NoSuchKey", "The specified key does not exist.")
            if request.method == "DELETE":
                del self._files[path]
                return Reply(status=204)
            return Reply(
                status=200, body=data, headers={"Content-Type": "application/octet-stream"}
            )

    # -- for tests -------------------------------------------------------------------------------

    def fault(self, method: str, fault: RpcFault, times: int | None) -> None:
        """Apply ``fault`` to the next ``times`` transfers with HTTP ``method`` (``"*"``: any)."""
        self.faults.add(method.upper(), fault, times)

    @property
    def files(self) -> dict[str, bytes]:
        """A copy of every stored file, by volume path."""
        with self._lock:
            return dict(self._files)

    def put_file(self, volume_path: str, data: bytes) -> None:
        """Store a file directly (as if uploaded before)."""
        with self._lock:
            self._files[volume_path] = bytes(data)

    @property
    def transfers(self) -> list[ServedTransfer]:
        """Every transfer answered, in order."""
        with self._lock:
            return list(self._transfers)

    def reset_records(self) -> None:
        """Forget the transfers recorded so far."""
        with self._lock:
            self._transfers.clear()

    def clear(self) -> None:
        """Drop files, URLs, records and faults."""
        with self._lock:
            self._files.clear()
            self._tickets.clear()
            self._transfers.clear()
        self.faults.clear()
