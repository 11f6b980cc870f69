"""What the warehouse saw and served, kept for tests to compare against."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class RpcRecord:
    """One Thrift RPC or Statement Execution API call as received.

    ``started`` is wall-clock epoch seconds, ``duration`` seconds spent answering it
    (server-side delays included) and ``status`` the HTTP status sent back. ``protocol`` is
    ``"thrift"`` (``request`` is the Thrift request struct) or ``"rest"`` (``request`` is the
    JSON body with the path's ids, ``name`` one of the names in ``sea_endpoint``).
    """

    name: str
    request: Any
    started: float
    duration: float
    status: int = 200
    protocol: str = "thrift"


@dataclass(frozen=True)
class HttpRecord:
    """One HTTP request of any kind (Thrift, feature flags, telemetry, CloudFetch).

    ``status`` is 0 when the connection was reset instead of answered.
    """

    method: str
    path: str
    headers: dict[str, str]
    status: int
    started: float = 0.0
    duration: float = 0.0


@dataclass(frozen=True)
class ServedFile:
    """One CloudFetch file of a statement (``url`` is its link, the pre-signed URL stand-in)."""

    index: int
    start_row: int
    row_count: int
    compressed_bytes: int
    uncompressed_bytes: int
    downloads: int = 0
    url: str = ""


@dataclass
class ServedStatement:
    """What the warehouse did for one operation (statement or metadata call).

    ``statement_id`` is the operation guid as a UUID string, the same string the driver
    exposes as ``cursor.query_id``. ``pages`` counts the responses that carried rows or links
    (the direct-results page included) and ``page_rows`` their row counts.

    Statements served over the REST API (``protocol="rest"``) are recorded in the same terms:
    ``state`` uses the Thrift names, ``result_format`` ``columnar`` for JSON_ARRAY rows,
    ``n_polls`` counts GetStatement calls and ``direct_results`` means the ExecuteStatement
    answer carried the result.
    """

    statement_id: str
    session_id: str
    operation: str
    sql: str | None
    state: str = "RUNNING"
    result_format: str | None = None
    lz4: bool = False
    rows: int = 0
    modified_rows: int | None = None
    n_polls: int = 0
    pages: int = 0
    page_rows: list[int] = field(default_factory=list)
    files: list[ServedFile] = field(default_factory=list)
    direct_results: bool = False
    closed: bool = False
    cancelled: bool = False
    sqlstate: str | None = None
    error_message: str | None = None
    scripted: bool = False
    started: float = 0.0
    finished: float | None = None
    protocol: str = "thrift"

    @property
    def compressed_bytes(self) -> int:
        """Total CloudFetch bytes on the wire."""
        return sum(f.compressed_bytes for f in self.files)

    @property
    def uncompressed_bytes(self) -> int:
        """Total CloudFetch bytes after decompression."""
        return sum(f.uncompressed_bytes for f in self.files)


class Recorder:
    """Lock-protected logs of RPCs, HTTP requests and served statements."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rpcs: list[RpcRecord] = []
        self._http: list[HttpRecord] = []
        self._served: dict[str, ServedStatement] = {}

    def add_rpc(self, record: RpcRecord) -> None:
        """Log one RPC."""
        with self._lock:
            self._rpcs.append(record)

    def add_http(self, record: HttpRecord) -> None:
        """Log one HTTP request."""
        with self._lock:
            self._http.append(record)

    def start_statement(self, statement: ServedStatement) -> None:
        """Begin the record of one operation."""
        with self._lock:
            self._served[statement.statement_id] = statement

    def update(self, statement_id: str, **changes: Any) -> None:
        """Change fields of an operation's record (ignored after a reset)."""
        with self._lock:
            record = self._served.get(statement_id)
            if record is None:
                return
            for name, value in changes.items():
                setattr(record, name, value)

    def add_page(self, statement_id: str, rows: int) -> None:
        """Count one response carrying rows or links."""
        with self._lock:
            record = self._served.get(statement_id)
            if record is not None:
                record.pages += 1
                record.page_rows.append(rows)

    def add_poll(self, statement_id: str) -> None:
        """Count one status poll (GetOperationStatus or GetStatement)."""
        with self._lock:
            record = self._served.get(statement_id)
            if record is not None:
                record.n_polls += 1

    def count_download(self, statement_id: str, index: int) -> None:
        """Count one GET of a CloudFetch file."""
        with self._lock:
            record = self._served.get(statement_id)
            if record is None:
                return
            record.files = [
                replace(f, downloads=f.downloads + 1) if f.index == index else f
                for f in record.files
            ]

    @property
    def rpcs(self) -> list[RpcRecord]:
        """A copy of the RPC log."""
        with self._lock:
            return list(self._rpcs)

    @property
    def http(self) -> list[HttpRecord]:
        """A copy of the HTTP log."""
        with self._lock:
            return list(self._http)

    @property
    def served(self) -> dict[str, ServedStatement]:
        """Deep copies of the served-statement records."""
        with self._lock:
            return {k: copy.deepcopy(v) for k, v in self._served.items()}

    def reset(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._rpcs.clear()
            self._http.clear()
            self._served.clear()
