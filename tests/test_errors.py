"""Error classification against real driver, urllib3 and stdlib exceptions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import http.server
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
from databricks.sql import exc as _exc
from databricks.sql import utils as _driver_utils
from databricks.sql.backend import thrift_backend as _thrift_backend
from databricks.sql.thrift_api.TCLIService import ttypes as _ttypes

from opentelemetry_instrumentation_dbsql import errors, query_text
from opentelemetry_instrumentation_dbsql.errors import (
    ErrorCategory,
    ErrorInfo,
    classify,
    classify_http_status,
    http_status_of,
    safe_message,
    sqlstate_of,
)
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.runtime import Runtime
from opentelemetry_instrumentation_dbsql.spans import SpanRecorder

C = ErrorCategory

# The driver is untyped: reach it through Any so strict type checking stays meaningful here.
dbx: Any = _exc
ttypes: Any = _ttypes
ThriftDatabricksClient: Any = _thrift_backend.ThriftDatabricksClient
RequestErrorInfo: Any = _driver_utils.RequestErrorInfo

# --------------------------------------------------------------------------- helpers


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _raw_server(behaviour: str) -> tuple[int, Callable[[], None]]:
    """A TCP server that answers a TLS client with plain HTTP ('plain') or hangs up ('hangup')."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(5)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                if behaviour == "plain":
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], listener.close


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status: int = self.server.status  # type: ignore[attr-defined]
        body = b"<Error><Code>AccessDenied</Code></Error>"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-databricks-reason-phrase", "Invalid access token.")
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[Callable[[int], int]]:
    """Start HTTP servers that answer every request with a fixed status; yields a factory."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(status: int) -> int:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
        server.status = status  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server.server_port

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _capture(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("no exception raised")


_OP_HANDLE = ttypes.TOperationHandle(
    operationId=ttypes.THandleIdentifier(guid=b"\x01" * 16, secret=b"\x02" * 16),
    operationType=ttypes.TOperationType.EXECUTE_STATEMENT,
    hasResultSet=True,
)


def _operation_error(
    display: str | None, error: str | None = None, diagnostic: str | None = None
) -> BaseException:
    """The exception the Thrift backend raises for an operation in ERROR_STATE."""
    response = ttypes.TGetOperationStatusResp(
        status=ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS),
        operationState=ttypes.TOperationState.ERROR_STATE,
        displayMessage=display,
        errorMessage=error,
        diagnosticInfo=diagnostic,
        sqlState="42P01",  # the driver drops this field
    )
    backend = SimpleNamespace(_host=None)
    return _capture(
        lambda: ThriftDatabricksClient._check_command_not_in_error_or_closed_state(
            backend, _OP_HANDLE, response
        )
    )


def _request_error(
    http_code: int | None, error: BaseException, message: str = ": Invalid access token."
) -> BaseException:
    """The RequestError the Thrift backend raises when it gives up on an RPC."""
    backend = SimpleNamespace(
        _retry_stop_after_attempts_count=1,
        _retry_stop_after_attempts_duration=900.0,
        _host=None,
    )
    info = RequestErrorInfo(
        error=error,
        error_message=message,
        retry_delay=None,
        http_code=http_code,
        method="OpenSession",
        request=ttypes.TOpenSessionReq(),
    )
    return _capture(lambda: ThriftDatabricksClient._handle_request_error(backend, info, 1, 0.01))


NOT_FOUND_DISPLAY = (
    "[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`default`.`missing` cannot be found. "
    "Verify the spelling and correctness of the schema and catalog.\n"
    "If you did not qualify the name with a schema, verify the current_schema() output, or "
    "qualify the name with the correct schema and catalog.\n"
    "To tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS. "
    "SQLSTATE: 42P01; line 1 pos 14"
)


# --------------------------------------------------------------------------- driver: Thrift


def test_server_operation_error_from_display_message() -> None:
    exc = _operation_error(NOT_FOUND_DISPLAY, diagnostic="org.apache.spark.sql...")
    assert type(exc) is dbx.ServerOperationError
    info = classify(exc)
    assert info == ErrorInfo(
        error_type="databricks.sql.exc.ServerOperationError",
        category=C.NOT_FOUND,
        terminal=True,
        sqlstate="42P01",
        http_status=None,
        message=NOT_FOUND_DISPLAY,
    )


def test_server_operation_error_from_error_message_with_stack_trace() -> None:
    error = (
        "org.apache.hive.service.cli.HiveSQLException: Error running query: "
        "[PARSE_SYNTAX_ERROR] org.apache.spark.sql.catalyst.parser.ParseException: "
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'. SQLSTATE: 42601 (line 1, pos 0)\n"
        + "\tat org.apache.spark.sql.hive.thriftserver.Foo.run(Foo.scala:42)\n"
        * 500
    )
    info = classify(_operation_error(None, error))
    assert (info.category, info.terminal, info.sqlstate) == (C.SYNTAX_ERROR, True, "42601")


def test_server_operation_error_without_any_message() -> None:
    exc = _operation_error(None, None)
    assert exc.message is None  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        str(exc)
    info = classify(exc)
    assert info.error_type == "databricks.sql.exc.ServerOperationError"
    assert info.category is C.UNKNOWN
    assert info.terminal is False
    assert info.message == "ServerOperationError"
    assert safe_message(exc) == "ServerOperationError"
    assert sqlstate_of(exc) is None


def test_sqlstate_only_in_diagnostic_info() -> None:
    diagnostic = (
        "org.apache.hive.service.cli.HiveSQLException: Error running query: "
        "[INSUFFICIENT_PERMISSIONS] ... SQLSTATE: 42501\n\tat org.apache..."
    )
    exc = _operation_error("Query could not be run", diagnostic=diagnostic)
    assert sqlstate_of(exc) == "42501"
    info = classify(exc)
    assert (info.category, info.terminal, info.sqlstate) == (C.PERMISSION_ERROR, True, "42501")


def test_operation_closed_server_side() -> None:
    response = ttypes.TGetOperationStatusResp(
        operationState=ttypes.TOperationState.CLOSED_STATE,
    )
    exc = _capture(
        lambda: ThriftDatabricksClient._check_command_not_in_error_or_closed_state(
            SimpleNamespace(_host=None), _OP_HANDLE, response
        )
    )
    assert type(exc) is dbx.DatabaseError
    assert classify(exc).category is C.CANCELLED


@pytest.mark.parametrize(
    ("status_code", "message", "category"),
    [
        (
            ttypes.TStatusCode.ERROR_STATUS,
            "[SCHEMA_NOT_FOUND] The schema `x` cannot be found.",
            C.NOT_FOUND,
        ),
        (
            ttypes.TStatusCode.INVALID_HANDLE_STATUS,
            "Invalid SessionHandle: SessionHandle [0123-4567]",
            C.NOT_FOUND,
        ),
        (ttypes.TStatusCode.ERROR_STATUS, "Something odd happened", C.UNKNOWN),
    ],
)
def test_response_status_errors(status_code: int, message: str, category: ErrorCategory) -> None:
    response = ttypes.TExecuteStatementResp(
        status=ttypes.TStatus(statusCode=status_code, errorMessage=message)
    )
    exc = _capture(lambda: ThriftDatabricksClient._check_response_for_error(response))
    assert type(exc) is dbx.DatabaseError
    assert classify(exc).category is category


def test_reyden_rejection_carries_its_sqlstate() -> None:
    response = ttypes.TOpenSessionResp(
        status=ttypes.TStatus(
            statusCode=ttypes.TStatusCode.ERROR_STATUS,
            sqlState="KP001",
            errorMessage="Thrift is not supported on this warehouse",
        )
    )
    exc = _capture(
        lambda: ThriftDatabricksClient._check_response_for_error(response, detect_reyden=True)
    )
    assert type(exc).__name__ == "ReydenThriftUnsupportedError"
    info = classify(exc)
    assert (info.category, info.terminal, info.sqlstate) == (C.NOT_SUPPORTED, True, "KP001")


@pytest.mark.parametrize(
    ("http_code", "category", "terminal"),
    [
        (400, C.INVALID_REQUEST, True),
        (401, C.AUTH_ERROR, True),
        (403, C.PERMISSION_ERROR, True),
        (404, C.NOT_FOUND, True),
        (408, C.TIMEOUT, False),
        (429, C.RATE_LIMIT_EXCEEDED, False),
        (500, C.SERVER_ERROR, False),
        (501, C.NOT_SUPPORTED, True),
        (502, C.SERVER_ERROR, False),
        (503, C.SERVER_ERROR, False),
        (504, C.TIMEOUT, False),
    ],
)
def test_request_error_http_codes(http_code: int, category: ErrorCategory, terminal: bool) -> None:
    exc = _request_error(http_code, EOFError())
    assert type(exc) is dbx.RequestError
    info = classify(exc)
    assert (info.category, info.terminal, info.http_status) == (category, terminal, http_code)
    assert info.error_type == "databricks.sql.exc.RequestError"


def test_request_error_after_retry_budget_ran_out() -> None:
    # What the driver raises for 429/500/503 when the next wait would exceed the budget: the
    # status is lost, only MaxRetryDurationError (in args[1]) remains.
    cause = dbx.MaxRetryDurationError(
        "Retry request would exceed Retry policy max retry duration of 3.0 seconds"
    )
    exc = _request_error(None, cause, message="")
    info = classify(exc)
    assert (info.category, info.terminal, info.http_status) == (C.TIMEOUT, False, None)


def test_stale_http_code_is_ignored() -> None:
    # The transport keeps the previous response's status when a request gets none.
    exc = _request_error(200, ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    info = classify(exc)
    assert info.http_status is None
    assert (info.category, info.terminal) == (C.CONNECTION_ERROR, False)


def test_driver_connect_rejected_with_401(status_server: Callable[[int], int]) -> None:
    from databricks import sql

    port = status_server(401)
    base = f"http://127.0.0.1:{port}"
    exc = _capture(
        lambda: sql.connect(
            server_hostname=base,
            http_path="/sql/1.0/warehouses/x",
            _connection_uri=f"{base}/sql/1.0/warehouses/x",
            access_token="not-a-token",
            enable_telemetry=False,
            _retry_stop_after_attempts_count=1,
        )
    )
    assert type(exc) is dbx.RequestError
    info = classify(exc)
    assert (info.category, info.terminal, info.http_status) == (C.AUTH_ERROR, True, 401)


def test_driver_connect_to_closed_port_raises_raw_urllib3_error() -> None:
    from databricks import sql

    exc = _capture(
        lambda: sql.connect(
            server_hostname="127.0.0.1",
            _port=_closed_port(),
            http_path="/sql/1.0/warehouses/x",
            access_token="x",
            enable_telemetry=False,
            _retry_stop_after_attempts_count=1,
            _retry_delay_min=0.01,
            _retry_delay_max=0.01,
        )
    )
    assert type(exc) is urllib3.exceptions.MaxRetryError
    info = classify(exc)
    assert info.error_type == "urllib3.exceptions.MaxRetryError"
    assert (info.category, info.terminal) == (C.CONNECTION_ERROR, False)


# --------------------------------------------------------------------------- driver: other paths


@pytest.mark.parametrize(
    ("exc", "category", "terminal"),
    [
        (
            dbx.NotSupportedError("Transactions are not supported on Databricks"),
            C.NOT_SUPPORTED,
            True,
        ),
        (
            dbx.InterfaceError("Cannot create cursor from closed connection"),
            C.INVALID_REQUEST,
            True,
        ),
        (dbx.ProgrammingError("There is no active result set"), C.INVALID_REQUEST, True),
        (dbx.SessionAlreadyClosedError("gone"), C.NOT_FOUND, True),
        (dbx.CursorAlreadyClosedError("gone"), C.NOT_FOUND, True),
        (dbx.NonRecoverableNetworkError("501"), C.NOT_SUPPORTED, True),
        (dbx.TelemetryRateLimitError("slow down"), C.RATE_LIMIT_EXCEEDED, False),
        (
            dbx.OperationalError("Staging operation over HTTP was unsuccessful: 403-Forbidden"),
            C.PERMISSION_ERROR,
            True,
        ),
        (
            dbx.TransactionError("Failed to commit transaction: boom", context={"http-code": 503}),
            C.SERVER_ERROR,
            False,
        ),
        (dbx.Error("No active command to get state for"), C.UNKNOWN, False),
    ],
)
def test_other_driver_exceptions(
    exc: BaseException, category: ErrorCategory, terminal: bool
) -> None:
    info = classify(exc)
    assert (info.category, info.terminal) == (category, terminal)


def test_staging_error_status_from_message() -> None:
    exc = dbx.OperationalError("Staging operation over HTTP was unsuccessful: 404-Not Found")
    assert http_status_of(exc) == 404


def _kernel_error(cls: type[dbx.Error], **attrs: object) -> dbx.Error:
    """An exception shaped like the kernel backend's re-raised errors (attributes copied on)."""
    exc = cls(str(attrs.get("message", "kernel failure")))
    for name, value in attrs.items():
        setattr(exc, name, value)
    return exc


def test_kernel_code_and_sqlstate_attributes() -> None:
    not_found = _kernel_error(dbx.ProgrammingError, code="NotFound", sql_state="42P01")
    info = classify(not_found)
    assert (info.category, info.terminal, info.sqlstate) == (C.NOT_FOUND, True, "42P01")

    timeout = _kernel_error(dbx.OperationalError, code="Timeout", retryable=True)
    assert (classify(timeout).category, classify(timeout).terminal) == (C.TIMEOUT, False)

    sql_error = _kernel_error(
        dbx.ServerOperationError, code="SqlError", sql_state="22012", http_status=None
    )
    assert classify(sql_error).category is C.INVALID_REQUEST

    throttled = _kernel_error(dbx.OperationalError, code="Unknown", http_status=429)
    info = classify(throttled)
    assert (info.category, info.http_status) == (C.RATE_LIMIT_EXCEEDED, 429)

    # The kernel says the failure is retryable: that wins over the category's default.
    retryable = _kernel_error(dbx.DatabaseError, code="PermissionDenied", retryable=True)
    assert (classify(retryable).category, classify(retryable).terminal) == (
        C.PERMISSION_ERROR,
        False,
    )


# --------------------------------------------------------------------------- CloudFetch


@pytest.fixture
def download_handler(status_server: Callable[[int], int]) -> Callable[[int], Any]:
    from databricks.sql.auth.common import ClientContext
    from databricks.sql.cloudfetch.downloader import (
        DownloadableResultSettings,
        ResultSetDownloadHandler,
    )
    from databricks.sql.common.unified_http_client import UnifiedHttpClient
    from databricks.sql.types import SSLOptions

    port = status_server(403)
    context = ClientContext(
        hostname=f"http://127.0.0.1:{port}",
        ssl_options=SSLOptions(),
        retry_stop_after_attempts_count=1,
        retry_delay_min=0.01,
        retry_delay_max=0.01,
        retry_stop_after_attempts_duration=5,
        user_agent="tests",
    )
    http_client_class: Any = UnifiedHttpClient
    client = http_client_class(context)

    def make(expiry: int) -> Any:
        link = ttypes.TSparkArrowResultLink(
            fileLink=f"http://127.0.0.1:{port}/results/0?signature=secret",
            expiryTime=expiry,
            startRowOffset=0,
            rowCount=1,
            bytesNum=1,
        )
        settings = DownloadableResultSettings(is_lz4_compressed=False)
        return ResultSetDownloadHandler(settings, link, SSLOptions(), 0, None, "stmt", client)

    return make


def test_cloudfetch_download_denied(download_handler: Callable[[int], Any]) -> None:
    handler = download_handler(int(time.time()) + 3600)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        exc = _capture(pool.submit(handler.run).result)
    assert type(exc) is dbx.RequestError
    info = classify(exc)
    assert info.category is C.CHUNK_DOWNLOAD_ERROR
    assert (info.terminal, info.http_status) == (True, 403)


def test_cloudfetch_link_expired(download_handler: Callable[[int], Any]) -> None:
    handler = download_handler(1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        exc = _capture(pool.submit(handler.run).result)
    assert type(exc) is dbx.Error
    info = classify(exc)
    assert (info.category, info.terminal) == (C.CHUNK_DOWNLOAD_ERROR, False)


def test_driver_request_error_elsewhere_is_not_a_chunk_error() -> None:
    exc = _capture(lambda: _raise(dbx.RequestError("HTTP request error: HTTP 403: denied")))
    info = classify(exc)
    assert (info.category, info.http_status) == (C.PERMISSION_ERROR, 403)


def _raise(exc: BaseException) -> None:
    raise exc


# --------------------------------------------------------------------------- urllib3


def test_urllib3_connection_refused() -> None:
    pool = urllib3.PoolManager()
    url = f"http://127.0.0.1:{_closed_port()}/"
    wrapped = _capture(lambda: pool.request("GET", url, retries=0))
    assert type(wrapped) is urllib3.exceptions.MaxRetryError
    assert type(wrapped.reason) is urllib3.exceptions.NewConnectionError
    bare = _capture(lambda: pool.request("GET", url, retries=False))
    # NewConnectionError subclasses ConnectTimeoutError, yet a refusal is no timeout.
    assert isinstance(bare, urllib3.exceptions.ConnectTimeoutError)
    for exc in (wrapped, bare):
        info = classify(exc)
        assert (info.category, info.terminal) == (C.CONNECTION_ERROR, False)


def test_urllib3_read_timeout(silent_port: int) -> None:
    pool = urllib3.PoolManager()
    url = f"http://127.0.0.1:{silent_port}/"
    wrapped = _capture(lambda: pool.request("GET", url, retries=0, timeout=0.2))
    bare = _capture(lambda: pool.request("GET", url, retries=False, timeout=0.2))
    assert type(wrapped) is urllib3.exceptions.MaxRetryError
    assert type(bare) is urllib3.exceptions.ReadTimeoutError
    for exc in (wrapped, bare):
        info = classify(exc)
        assert (info.category, info.terminal) == (C.TIMEOUT, False)


@pytest.mark.parametrize(
    ("status", "category"), [(503, C.SERVER_ERROR), (429, C.RATE_LIMIT_EXCEEDED)]
)
def test_urllib3_status_retries_exhausted(
    status_server: Callable[[int], int], status: int, category: ErrorCategory
) -> None:
    port = status_server(status)
    retry = urllib3.Retry(
        total=1, status_forcelist=[status], backoff_factor=0, respect_retry_after_header=False
    )
    exc = _capture(
        lambda: urllib3.PoolManager().request("GET", f"http://127.0.0.1:{port}/", retries=retry)
    )
    assert type(exc) is urllib3.exceptions.MaxRetryError
    info = classify(exc)
    assert (info.category, info.terminal, info.http_status) == (category, False, status)


@pytest.mark.parametrize(("behaviour", "terminal"), [("plain", True), ("hangup", False)])
def test_urllib3_tls_failures(behaviour: str, terminal: bool) -> None:
    port, stop = _raw_server(behaviour)
    try:
        exc = _capture(
            lambda: urllib3.PoolManager().request(
                "GET", f"https://127.0.0.1:{port}/", retries=0, timeout=5
            )
        )
    finally:
        stop()
    assert type(exc.reason) is urllib3.exceptions.SSLError  # type: ignore[attr-defined]
    info = classify(exc)
    assert (info.category, info.terminal) == (C.CONNECTION_ERROR, terminal)


def test_urllib3_untrusted_certificate(tmp_path: Any) -> None:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = time.time()
    import datetime

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime.fromtimestamp(now - 60, datetime.timezone.utc))
        .not_valid_after(datetime.datetime.fromtimestamp(now + 3600, datetime.timezone.utc))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    server.status = 200  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        exc = _capture(
            lambda: urllib3.PoolManager().request(
                "GET", f"https://localhost:{server.server_port}/", retries=0, timeout=5
            )
        )
    finally:
        server.shutdown()
        server.server_close()
    assert type(exc.reason.args[0]) is ssl.SSLCertVerificationError  # type: ignore[attr-defined]
    info = classify(exc)
    assert (info.category, info.terminal) == (C.CONNECTION_ERROR, True)


# --------------------------------------------------------------------------- stdlib


def test_socket_timeout_and_refusal(silent_port: int) -> None:
    with socket.create_connection(("127.0.0.1", silent_port), timeout=0.1) as sock:
        timeout = _capture(lambda: sock.recv(1))
    assert isinstance(timeout, TimeoutError)
    refused = _capture(lambda: socket.create_connection(("127.0.0.1", _closed_port()), timeout=1))
    assert isinstance(refused, ConnectionRefusedError)
    assert (classify(timeout).category, classify(timeout).terminal) == (C.TIMEOUT, False)
    assert (classify(refused).category, classify(refused).terminal) == (C.CONNECTION_ERROR, False)
    assert classify(timeout).error_type == "TimeoutError"


@pytest.mark.parametrize(
    ("exc", "category", "terminal"),
    [
        (OSError(errno.ETIMEDOUT, "Connection timed out"), C.TIMEOUT, False),
        (OSError(errno.ECONNRESET, "Connection reset by peer"), C.CONNECTION_ERROR, False),
        (OSError(errno.EMFILE, "Too many open files"), C.RESOURCE_EXHAUSTED, False),
        (OSError("something"), C.CONNECTION_ERROR, False),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            C.CONNECTION_ERROR,
            False,
        ),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), C.CONNECTION_ERROR, False),
        (PermissionError(errno.EACCES, "denied", "/etc/ca.pem"), C.PERMISSION_ERROR, True),
        (FileNotFoundError(errno.ENOENT, "missing", "/etc/ca.pem"), C.NOT_FOUND, True),
        (KeyboardInterrupt(), C.CANCELLED, True),
        (asyncio.CancelledError(), C.CANCELLED, True),
        (concurrent.futures.CancelledError(), C.CANCELLED, True),
        (MemoryError(), C.RESOURCE_EXHAUSTED, True),
        (ValueError("No valid connection settings."), C.INVALID_REQUEST, True),
        (TypeError("bad parameter"), C.INVALID_REQUEST, True),
        (NotImplementedError(), C.NOT_SUPPORTED, True),
        (KeyError("x"), C.UNKNOWN, False),
        (RuntimeError("boom"), C.UNKNOWN, False),
        (Exception("429 Too Many Requests"), C.RATE_LIMIT_EXCEEDED, False),
        (Exception("HTTP 401: unauthorized"), C.AUTH_ERROR, True),
        (RuntimeError("the request timed out"), C.TIMEOUT, False),
        (RuntimeError("Permission denied for user"), C.PERMISSION_ERROR, True),
    ],
)
def test_stdlib_exceptions(exc: BaseException, category: ErrorCategory, terminal: bool) -> None:
    info = classify(exc)
    assert (info.category, info.terminal) == (category, terminal)


@pytest.mark.parametrize(
    ("kind", "category", "terminal"),
    [
        (1, C.CONNECTION_ERROR, False),  # NOT_OPEN
        (3, C.TIMEOUT, False),  # TIMED_OUT
        (4, C.CONNECTION_ERROR, False),  # END_OF_FILE
        (0, C.CONNECTION_ERROR, False),  # UNKNOWN: the class's default
    ],
)
def test_thrift_transport_types(kind: int, category: ErrorCategory, terminal: bool) -> None:
    from thrift.transport.TTransport import TTransportException

    info = classify(TTransportException(type=kind, message="transport failed"))
    assert (info.category, info.terminal) == (category, terminal)


@pytest.mark.parametrize(
    ("kind", "category", "terminal"),
    [(1, C.NOT_SUPPORTED, True), (6, C.SERVER_ERROR, False)],  # UNKNOWN_METHOD, INTERNAL_ERROR
)
def test_thrift_application_types(kind: int, category: ErrorCategory, terminal: bool) -> None:
    from thrift.Thrift import TApplicationException

    info = classify(TApplicationException(type=kind, message="call failed"))
    assert (info.category, info.terminal) == (category, terminal)


def test_a_refined_class_rule_decides_before_message_codes() -> None:
    # The errno decides like a class that needs nothing else; without one, the codes do.
    timed_out = OSError(errno.ETIMEDOUT, "[TABLE_OR_VIEW_NOT_FOUND] SQLSTATE: 42P01")
    assert classify(timed_out).category is C.TIMEOUT
    assert classify(OSError("[TABLE_OR_VIEW_NOT_FOUND] SQLSTATE: 42P01")).category is C.NOT_FOUND


def test_cause_and_context_are_followed() -> None:
    def wrapped() -> None:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as inner:
            raise RuntimeError("fetch failed") from inner

    info = classify(_capture(wrapped))
    assert (info.error_type, info.category) == ("RuntimeError", C.TIMEOUT)

    def suppressed() -> None:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError:
            raise RuntimeError("fetch failed") from None

    assert classify(_capture(suppressed)).category is C.UNKNOWN


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("sqlstate", "category", "terminal"),
    [
        ("42601", C.SYNTAX_ERROR, True),
        ("42P01", C.NOT_FOUND, True),
        ("42704", C.NOT_FOUND, True),
        ("42703", C.NOT_FOUND, True),
        ("42883", C.NOT_FOUND, True),
        ("42501", C.PERMISSION_ERROR, True),
        ("42K09", C.INVALID_REQUEST, True),
        ("42000", C.INVALID_REQUEST, True),
        ("08001", C.CONNECTION_ERROR, False),
        ("08S01", C.CONNECTION_ERROR, False),
        ("28000", C.AUTH_ERROR, True),
        ("22012", C.INVALID_REQUEST, True),
        ("23505", C.INVALID_REQUEST, True),
        ("3D000", C.NOT_FOUND, True),
        ("3F000", C.NOT_FOUND, True),
        ("40001", C.CANCELLED, False),
        ("40P01", C.CANCELLED, False),
        ("40000", C.CANCELLED, True),
        ("57014", C.CANCELLED, True),
        ("HY008", C.CANCELLED, True),
        ("HYT00", C.TIMEOUT, False),
        ("53200", C.RESOURCE_EXHAUSTED, False),
        ("54000", C.RESOURCE_EXHAUSTED, True),
        ("0A000", C.NOT_SUPPORTED, True),
        ("57P01", C.SERVER_ERROR, False),
        ("58030", C.SERVER_ERROR, False),
        ("XX000", C.SERVER_ERROR, False),
        ("HY000", C.UNKNOWN, False),
    ],
)
def test_sqlstate_table(sqlstate: str, category: ErrorCategory, terminal: bool) -> None:
    from_message = dbx.ServerOperationError(
        f"Query failed. SQLSTATE: {sqlstate}", {"operation-id": "x", "diagnostic-info": None}
    )
    from_attribute = _kernel_error(dbx.ServerOperationError, code="SqlError", sql_state=sqlstate)
    for exc in (from_message, from_attribute):
        info = classify(exc)
        assert (info.category, info.terminal, info.sqlstate) == (category, terminal, sqlstate)


@pytest.mark.parametrize(
    ("status", "category", "terminal"),
    [
        (400, C.INVALID_REQUEST, True),
        (401, C.AUTH_ERROR, True),
        (403, C.PERMISSION_ERROR, True),
        (404, C.NOT_FOUND, True),
        (405, C.INVALID_REQUEST, True),
        (407, C.AUTH_ERROR, True),
        (408, C.TIMEOUT, False),
        (409, C.INVALID_REQUEST, True),
        (410, C.NOT_FOUND, True),
        (413, C.INVALID_REQUEST, True),
        (418, C.INVALID_REQUEST, True),
        (429, C.RATE_LIMIT_EXCEEDED, False),
        (500, C.SERVER_ERROR, False),
        (501, C.NOT_SUPPORTED, True),
        (502, C.SERVER_ERROR, False),
        (503, C.SERVER_ERROR, False),
        (504, C.TIMEOUT, False),
        (505, C.NOT_SUPPORTED, True),
        (507, C.RESOURCE_EXHAUSTED, False),
        (599, C.SERVER_ERROR, False),
        (200, C.UNKNOWN, False),
        (302, C.UNKNOWN, False),
        (99, C.UNKNOWN, False),
        (600, C.UNKNOWN, False),
    ],
)
def test_http_status_table(status: int, category: ErrorCategory, terminal: bool) -> None:
    assert classify_http_status(status) == (category, terminal)


def test_http_status_rejects_non_integers() -> None:
    assert classify_http_status(True) == (C.UNKNOWN, False)
    assert classify_http_status("404") == (C.UNKNOWN, False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "category"),
    [
        ("[TABLE_OR_VIEW_NOT_FOUND] The table or view `t` cannot be found.", C.NOT_FOUND),
        ("[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `x` cannot be resolved.", C.NOT_FOUND),
        ("[UNRESOLVED_ROUTINE] Cannot resolve routine `f`.", C.NOT_FOUND),
        ("[SCHEMA_NOT_FOUND] The schema `s` cannot be found.", C.NOT_FOUND),
        ("[PARSE_SYNTAX_ERROR] Syntax error at or near 'FORM'.", C.SYNTAX_ERROR),
        (
            "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not own table.",
            C.PERMISSION_ERROR,
        ),
        ("[DIVIDE_BY_ZERO] Division by zero.", C.INVALID_REQUEST),
        ("[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table.", C.INVALID_REQUEST),
        ("[QUERY_EXECUTION_TIMEOUT_EXCEEDED] The execution was cancelled.", C.TIMEOUT),
        ("[UNSUPPORTED_FEATURE.TIME_TRAVEL] Not supported.", C.NOT_SUPPORTED),
        ("[INTERNAL_ERROR] The Spark SQL phase failed.", C.SERVER_ERROR),
        ("[SOME_FUTURE_CLASS] Whatever happened here.", C.UNKNOWN),
    ],
)
def test_databricks_error_classes(message: str, category: ErrorCategory) -> None:
    exc = dbx.ServerOperationError(message, {"operation-id": "x", "diagnostic-info": None})
    assert classify(exc).category is category


def test_error_class_beats_its_sqlstate() -> None:
    exc = dbx.ServerOperationError(
        "[QUERY_EXECUTION_TIMEOUT_EXCEEDED] Query exceeded the timeout. SQLSTATE: 57KD0", {}
    )
    info = classify(exc)
    assert (info.category, info.terminal, info.sqlstate) == (C.TIMEOUT, True, "57KD0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Failed. SQLSTATE: 42P01; line 1 pos 14", "42P01"),
        ("java.sql.SQLException: SQLState:  42000", "42000"),
        ('{"error_code":"X","sqlState":"22012"}', "22012"),
        ("sql_state=08001", "08001"),
        ("SQL_STATE: 28000", "28000"),
        ("sqlstate 42501 raised", "42501"),
        ("SQLSTATE is unknown", None),
        ("SQLSTATE value", None),
        ("SQLSTATE: 42p01", None),
        ("SQLSTATE: 42P011", None),
        ("no code here", None),
        # The first key in the message wins, whatever its spelling.
        ("sqlState=22012, then SQLSTATE: 42P01", "22012"),
        ("SQL_STATE=08001 / sqlstate: 28000", "08001"),
    ],
)
def test_sqlstate_extraction(text: str, expected: str | None) -> None:
    assert sqlstate_of(dbx.DatabaseError(text)) == expected


def test_sqlstate_from_context() -> None:
    assert sqlstate_of(dbx.DatabaseError("x", {"sql-state": "42p01"})) == "42P01"


# --------------------------------------------------------------------------- robustness


class _HostileStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class _HostileMessage(Exception):
    @property
    def message(self) -> str:
        raise ValueError("no message")

    @property
    def args(self) -> tuple[object, ...]:  # type: ignore[override]
        raise ValueError("no args")

    def __str__(self) -> str:
        return 42  # type: ignore[return-value]  # noqa: PLE0307


class _HostileEverything(Exception):
    def __getattribute__(self, name: str) -> Any:
        if name == "__class__":
            return object.__getattribute__(self, name)
        raise RuntimeError(f"no {name}")


class _WeirdClass(Exception):
    pass


_WeirdClass.__module__ = 42  # type: ignore[assignment]


def test_hostile_exceptions_never_break_classification() -> None:
    for exc in (_HostileStr(), _HostileMessage("x"), _HostileEverything(), _WeirdClass("w")):
        info = classify(exc)
        assert isinstance(info, ErrorInfo)
        assert isinstance(info.message, str) and info.message
        assert isinstance(safe_message(exc), str)
        assert sqlstate_of(exc) is None
        assert http_status_of(exc) is None
    assert safe_message(_HostileStr()) == "_HostileStr"
    assert classify(_HostileStr()).error_type.endswith("_HostileStr")
    assert classify(_WeirdClass("w")).error_type == "_WeirdClass"


def test_driver_error_str_raising_is_handled() -> None:
    exc = dbx.Error()  # message None: str(exc) raises TypeError
    with pytest.raises(TypeError):
        str(exc)
    assert safe_message(exc) == "Error"
    info = classify(exc)
    assert (info.error_type, info.category, info.message) == (
        "databricks.sql.exc.Error",
        C.UNKNOWN,
        "Error",
    )


def test_cycles_and_long_chains_terminate() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert classify(first).category is C.UNKNOWN

    head = RuntimeError("head")
    node = head
    for index in range(200):
        nxt = RuntimeError(f"link {index}")
        node.__cause__ = nxt
        node = nxt
    node.__cause__ = TimeoutError("deep")
    # The timeout is too deep to be read: the chain is bounded.
    assert classify(head).category is C.UNKNOWN


def test_error_type_names() -> None:
    assert classify(ValueError()).error_type == "ValueError"
    assert classify(dbx.ServerOperationError("x")).error_type == (
        "databricks.sql.exc.ServerOperationError"
    )
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/", "t")  # type: ignore[arg-type]
    assert classify(timeout).error_type == ("urllib3.exceptions.ReadTimeoutError")
    assert classify(socket.gaierror()).error_type == "socket.gaierror"


def test_error_info_is_frozen() -> None:
    info = classify(ValueError("x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.category = C.UNKNOWN  # type: ignore[misc]
    assert not hasattr(info, "__dict__")


def test_class_cache_is_bounded() -> None:
    limit = errors._class_info.cache_info().maxsize
    assert limit is not None
    for index in range(limit + 50):
        classify(type(f"Dynamic{index}", (Exception,), {})("x"))
    assert errors._class_info.cache_info().currsize <= limit


def test_module_does_not_import_the_driver() -> None:
    code = (
        "import sys\n"
        "from opentelemetry_instrumentation_dbsql.errors import classify\n"
        "classify(ValueError('x'))\n"
        "assert not [m for m in sys.modules if m.startswith('databricks')], 'driver imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_classes_are_inspected_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The costly part of a classification (the walk along the MRO) is done once per class;
    # what it costs in time is measured by benchmarks/bench_worst_case_text.py.
    exc = _operation_error(NOT_FOUND_DISPLAY)
    named: list[type] = []
    qualified_name = errors._qualified_name

    def counting(cls: type) -> str:
        named.append(cls)
        return qualified_name(cls)

    monkeypatch.setattr(errors, "_qualified_name", counting)
    errors._class_info.cache_clear()
    first = classify(exc)
    walked = len(named)
    assert walked > 0
    for _ in range(100):
        assert classify(exc) == first
    assert len(named) == walked


# --------------------------------------------------------------------------- long messages
#
# A server message can echo the whole failing statement (Spark parse errors do), so it can be
# megabytes long: classification searches its head only, and the recorded message is cut to
# the query-text length before it is sanitized, once per failure.

_SECRET_STATEMENT = "SELECT 'secret-1' AS s, 98765 FROM t WHERE " + "c = 'secret-2' AND " * 250_000
_ECHOING_MESSAGE = (
    "[PARSE_SYNTAX_ERROR] Syntax error at or near 'FROM'. SQLSTATE: 42601 (line 1, pos 9)\n\n"
    f"== SQL ==\n{_SECRET_STATEMENT}\n---------^^^\n"
)


def test_a_message_is_searched_in_its_head_only() -> None:
    tail = " " * errors._SCAN_LIMIT
    late_sqlstate = RuntimeError("SQLSTATE:" + tail + "42P01")
    assert sqlstate_of(late_sqlstate) is None
    late_class = RuntimeError("[" + "A" * errors._SCAN_LIMIT + "_NOT_FOUND] missing")
    assert classify(late_class).category is C.UNKNOWN
    info = classify(_operation_error(_ECHOING_MESSAGE))
    assert (info.category, info.sqlstate) == (C.SYNTAX_ERROR, "42601")
    assert info.message == _ECHOING_MESSAGE  # the message itself is kept whole


@pytest.mark.parametrize("spaces", [0, 1, 3, errors._SCAN_LIMIT // 4])
def test_sqlstate_after_spaces(spaces: int) -> None:
    gap = " " * spaces
    assert sqlstate_of(RuntimeError(f"SQLSTATE{gap}:{gap}42P01")) == "42P01"
    assert sqlstate_of(RuntimeError(f"SQLSTATE{gap}={gap}'42P01'")) == "42P01"
    assert sqlstate_of(RuntimeError(f"SQLSTATE{gap}42P01")) == "42P01"
    assert sqlstate_of(RuntimeError(f"SQLSTATE{gap}:{gap}none")) is None
    assert sqlstate_of(RuntimeError(f"SQLSTATE{gap}::{gap}42P01")) is None


def _tokenized(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every text the query-text tokenizer reads from now on."""
    lengths: list[int] = []
    tokenize = query_text._tokenize

    def counting(sql: str, build: bool) -> tuple[str, list[tuple[int, str]]]:
        lengths.append(len(sql))
        return tokenize(sql, build)

    monkeypatch.setattr(query_text, "_tokenize", counting)
    query_text.cache_clear()
    return lengths


def test_a_long_message_is_cut_before_it_is_sanitized(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime(InstrumentationOptions())
    limit = runtime.options.max_query_text_length
    assert len(_ECHOING_MESSAGE) > 1000 * limit
    tokenized = _tokenized(monkeypatch)
    text = runtime.safe_error_text(_ECHOING_MESSAGE)
    assert tokenized == [limit]
    assert text is not None
    assert text.startswith("[PARSE_SYNTAX_ERROR] Syntax error at or near ?. SQLSTATE: ? (line")
    assert "== SQL ==\nSELECT ? AS s, ? FROM t WHERE c = ? AND" in text
    assert len(text) <= limit
    assert "secret" not in text and "98765" not in text


def test_a_failure_recorded_on_two_spans_is_sanitized_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A CloudFetch download failure reaches the download's span, then its statement's.
    runtime = Runtime(InstrumentationOptions())
    exc = _operation_error(_ECHOING_MESSAGE)
    download = SpanRecorder(runtime, "download", {})
    statement = SpanRecorder(runtime, "statement", {})
    tokenized = _tokenized(monkeypatch)
    download.record_error(exc)
    statement.record_error(exc)
    assert len(tokenized) == 1
    messages = [recorder.events[0][1]["exception.message"] for recorder in (download, statement)]
    assert messages[0] == messages[1]
    assert isinstance(messages[0], str) and "secret" not in messages[0]


def test_raw_capture_cuts_without_sanitizing(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime(InstrumentationOptions(capture_query_text="raw"))
    tokenized = _tokenized(monkeypatch)
    text = runtime.safe_error_text(_ECHOING_MESSAGE)
    assert text == _ECHOING_MESSAGE[: runtime.options.max_query_text_length]
    assert tokenized == []
