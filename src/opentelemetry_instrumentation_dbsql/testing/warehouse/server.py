"""The warehouse's HTTP server (HTTP/1.1 keep-alive, optional TLS) and its routing."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from opentelemetry_instrumentation_dbsql.testing.warehouse.endpoints import (
    FEATURE_FLAG_PREFIX,
    TELEMETRY_PATHS,
    FeatureFlagEndpoint,
    TelemetryEndpoint,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import HttpRecord, Recorder
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import FileStore
from opentelemetry_instrumentation_dbsql.testing.warehouse.rpc import ThriftEndpoint
from opentelemetry_instrumentation_dbsql.testing.warehouse.sea_endpoint import SeaEndpoint
from opentelemetry_instrumentation_dbsql.testing.warehouse.staging import VolumeStore
from opentelemetry_instrumentation_dbsql.testing.warehouse.wire import Reply, Request

CLOUDFETCH_PREFIX = "/cloudfetch/"


class Router:
    """Sends each request to the endpoint for its path."""

    def __init__(
        self,
        http_path: str,
        *,
        thrift: ThriftEndpoint,
        flags: FeatureFlagEndpoint,
        telemetry: TelemetryEndpoint,
        files: FileStore,
        recorder: Recorder,
        sea: SeaEndpoint | None = None,
        volumes: VolumeStore | None = None,
    ) -> None:
        self._http_path = http_path.rstrip("/")
        self._volumes = volumes
        self._thrift = thrift
        self._sea = sea
        self._flags = flags
        self._telemetry = telemetry
        self._files = files
        self._recorder = recorder

    def route(self, request: Request) -> Reply:
        """Answer one request."""
        path = urlsplit(request.path).path.rstrip("/") or "/"
        if request.method == "POST" and path == self._http_path:
            return self._thrift.handle(request)
        if self._sea is not None and self._sea.handles(request):
            return self._sea.handle(request)
        if request.method == "GET" and path.startswith(FEATURE_FLAG_PREFIX):
            return self._flags.handle(request)
        if request.method == "POST" and path in TELEMETRY_PATHS:
            return self._telemetry.handle(request)
        if request.method == "GET" and path.startswith(CLOUDFETCH_PREFIX):
            return self._download(path[len(CLOUDFETCH_PREFIX) :])
        if self._volumes is not None and self._volumes.handles(request):
            return self._volumes.handle(request)
        return Reply(status=404, body=b"not found")

    def _download(self, token: str) -> Reply:
        file = self._files.get(token)
        if file is None:
            return Reply(status=404, body=b"<Error><Code>NoSuchKey</Code></Error>")
        if file.expires_at <= time.time():
            return Reply(
                status=403,
                body=b"<Error><Code>AccessDenied</Code><Message>expired</Message></Error>",
                headers={"Content-Type": "application/xml"},
            )
        self._recorder.count_download(file.statement_id, file.index)
        return Reply(
            status=200, body=file.data, headers={"Content-Type": "application/octet-stream"}
        )


class WarehouseHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so that stopping ends them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        recorder: Recorder,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.router: Router | None = None
        self.recorder = recorder
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._active = 0
        self._connections: set[Any] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection; TLS handshakes happen later, on the connection's thread."""
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection, then serve it on its own thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection and close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    @property
    def active_requests(self) -> int:
        """Requests received and not yet answered."""
        with self._connections_lock:
            return self._active

    def request_started(self) -> None:
        """Count a request in."""
        with self._connections_lock:
            self._active += 1

    def request_finished(self) -> None:
        """Count a request out."""
        with self._connections_lock:
            self._active -= 1

    def close_connections(self) -> None:
        """End every open (keep-alive or waiting) connection."""
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away or failed the TLS handshake."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this every small response waits for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True
    server: WarehouseHTTPServer
    server_version = "LocalWarehouse/0.1"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        self.server.request_started()
        try:
            self._answer()
        finally:
            self.server.request_finished()

    def _answer(self) -> None:
        started = time.time()
        clock = time.perf_counter()
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, self.path, headers, self._body())
        router = self.server.router
        reply = router.route(request) if router else Reply(status=503, body=b"starting")
        interrupted = False
        if reply.delay > 0:
            interrupted = self.server.stopping.wait(reply.delay)
        if reply.hold is not None:
            while not reply.hold.wait(0.05):
                if self.server.stopping.is_set():
                    interrupted = True
                    break
        status = 0 if reply.reset or interrupted else reply.status
        self.server.recorder.add_http(
            HttpRecord(
                self.command, self.path, headers, status, started, time.perf_counter() - clock
            )
        )
        if reply.reset or interrupted:
            self._reset()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset (no answer, no orderly close)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()
