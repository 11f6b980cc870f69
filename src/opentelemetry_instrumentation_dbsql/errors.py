"""Classification of failures raised around the Databricks SQL driver.

:func:`classify` turns any exception into an :class:`ErrorInfo`: the ``error.type`` value of the
OpenTelemetry semantic conventions, a coarse :class:`ErrorCategory`, whether retrying can ever
help (``terminal``), the SQLSTATE and HTTP status when they can be recovered, and a message that
is always a string.

Evidence is weighed in this order, the first decisive one winning:

1. an unambiguous exception class (timeouts, refused connections, cancellation, ...);
2. structured codes carried by the exception: the kernel backend's ``code`` slug, a Databricks
   error class such as ``[TABLE_OR_VIEW_NOT_FOUND]``, the SQLSTATE, the HTTP status;
3. the same two steps for linked exceptions: the driver's ``RequestError`` keeps the original
   exception in ``args[1]``, urllib3's ``MaxRetryError`` in ``reason``, plus ``__cause__`` and
   ``__context__``;
4. wrapper classes whose meaning is only a default (urllib3 ``SSLError``, ``ProtocolError``);
5. free-text message patterns;
6. broad classes (``ProgrammingError``, ``ValueError``, plain ``OSError``, ...).

The driver is never imported here: classes are recognised by the qualified names along their MRO,
so classifying costs nothing at import time and works for every driver version.

Decisions that are not obvious:

* HTTP 408 is a timeout and retryable (the server gave up waiting for the request; RFC 9110
  lets the client repeat it). 500 and the other 5xx are retryable server errors, except 501 and
  505 (not supported, terminal). 504 is a timeout.
* TLS failures are connection errors. Certificate and protocol failures are terminal (the same
  handshake fails again); an EOF or reset during the handshake is retryable.
* ``MaxRetryDurationError`` is a timeout and retryable: the driver's retry time budget ran out,
  and the driver does not keep the status that caused the retries.
* A Databricks statement timeout (``QUERY_EXECUTION_TIMEOUT_EXCEEDED``) is a terminal timeout:
  the same statement exceeds the same limit again.
* SQLSTATE 40001/40P01 (serialization failure, deadlock) are retryable cancellations; every
  other cancellation is terminal.
* A failure raised from the driver's CloudFetch downloader (seen in the traceback or named in the
  message) is a ``chunk_download_error``; its ``terminal`` flag comes from the underlying cause.
"""

from __future__ import annotations

import enum
import errno
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "ErrorCategory",
    "ErrorInfo",
    "classify",
    "classify_http_status",
    "http_status_of",
    "safe_message",
    "sqlstate_of",
]


class ErrorCategory(str, enum.Enum):
    """Coarse kind of a failure, stable enough for metric attributes."""

    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    CONNECTION_ERROR = "connection_error"
    AUTH_ERROR = "auth_error"
    PERMISSION_ERROR = "permission_error"
    NOT_FOUND = "not_found"
    SYNTAX_ERROR = "syntax_error"
    INVALID_REQUEST = "invalid_request"
    NOT_SUPPORTED = "not_supported"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    SERVER_ERROR = "server_error"
    CHUNK_DOWNLOAD_ERROR = "chunk_download_error"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What :func:`classify` learned about one exception."""

    error_type: str
    """Fully qualified class name (builtins without module), for ``error.type``."""
    category: ErrorCategory
    terminal: bool
    """True when retrying the same call cannot succeed."""
    sqlstate: str | None
    http_status: int | None
    """An HTTP error status (400-599) tied to the failure, if one is known."""
    message: str


_C = ErrorCategory
_Verdict = tuple[ErrorCategory, bool]

_TIMEOUT: _Verdict = (_C.TIMEOUT, False)
_CANCELLED: _Verdict = (_C.CANCELLED, True)
_CONNECTION: _Verdict = (_C.CONNECTION_ERROR, False)
_CONNECTION_TERMINAL: _Verdict = (_C.CONNECTION_ERROR, True)
_AUTH: _Verdict = (_C.AUTH_ERROR, True)
_PERMISSION: _Verdict = (_C.PERMISSION_ERROR, True)
_NOT_FOUND: _Verdict = (_C.NOT_FOUND, True)
_SYNTAX: _Verdict = (_C.SYNTAX_ERROR, True)
_INVALID: _Verdict = (_C.INVALID_REQUEST, True)
_NOT_SUPPORTED: _Verdict = (_C.NOT_SUPPORTED, True)
_RATE_LIMIT: _Verdict = (_C.RATE_LIMIT_EXCEEDED, False)
_RESOURCE: _Verdict = (_C.RESOURCE_EXHAUSTED, False)
_SERVER: _Verdict = (_C.SERVER_ERROR, False)
_UNKNOWN: _Verdict = (_C.UNKNOWN, False)

# How much of a message is searched for codes and patterns: the codes sit near the start, and a
# Thrift errorMessage can carry a whole server stack trace.
_SCAN_LIMIT = 8192
_MESSAGE_SCAN_LIMIT = 1024  # for the free-text patterns, which are lower-cased first
_MAX_LINKED = 8
_MAX_TRACEBACK_FRAMES = 64


# --------------------------------------------------------------------------- HTTP status

_HTTP_EXACT: dict[int, _Verdict] = {
    400: _INVALID,
    401: _AUTH,
    403: _PERMISSION,
    404: _NOT_FOUND,
    405: _INVALID,
    407: _AUTH,
    408: _TIMEOUT,
    410: _NOT_FOUND,
    429: _RATE_LIMIT,
    500: _SERVER,
    501: _NOT_SUPPORTED,
    502: _SERVER,
    503: _SERVER,
    504: _TIMEOUT,
    505: _NOT_SUPPORTED,
    507: _RESOURCE,
}

# Statuses that only survive in message text, tried in this order.
_HTTP_IN_MESSAGE = (
    re.compile(r"HTTP (\d{3})\b"),  # the CloudFetch downloader: "HTTP 403: ..."
    re.compile(r"too many (\d{3}) error responses"),  # urllib3's ResponseError
    re.compile(r"unsuccessful: (\d{3})-"),  # staging: "... over HTTP was unsuccessful: 403-..."
)
_HTTP_STATUS_ATTRS = ("http_status", "status_code", "status", "code")
_HTTP_RESPONSE_ATTRS = ("status", "status_code")


def classify_http_status(status: int) -> tuple[ErrorCategory, bool]:
    """Map an HTTP status to ``(category, terminal)``; statuses below 400 give ``unknown``."""
    if not isinstance(status, int) or isinstance(status, bool) or status < 400 or status > 599:
        return _UNKNOWN
    return _HTTP_EXACT.get(status) or (_INVALID if status < 500 else _SERVER)


def _as_status(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        status = value
    elif isinstance(value, str) and len(value) == 3 and value.isdigit():
        status = int(value)
    else:
        return None
    # Statuses below 400 are dropped on purpose: the driver's RequestError reports the transport's
    # last status, which is a stale 200 when the failing request never got a response.
    return status if 400 <= status <= 599 else None


def _status_in(text: str) -> int | None:
    if not text:
        return None
    for pattern in _HTTP_IN_MESSAGE:
        match = pattern.search(text, 0, _SCAN_LIMIT)
        if match is not None:
            return _as_status(match.group(1))
    return None


# --------------------------------------------------------------------------- SQLSTATE

_SQLSTATE_IN_TEXT = re.compile(
    # The key: SQLSTATE, SQLState, SqlState, sqlState, sqlstate, sql_state, SQL_STATE, ...
    r"(?:SQLS|SqlS|sqlS|sqls|ql_s|QL_S)(?:TATE|tate)"
    # A run of spaces matches in one way only (``\s*[:=]?\s*`` tried every split of it between
    # the two ``\s*`` before failing: quadratic in the run's length).
    r"[\"']?\s*(?:[:=]\s*)?[\"']?([0-9A-Z]{5})(?![0-9A-Za-z])"
)
_SQLSTATE_VALID = re.compile(r"[0-9A-Z]{5}")
_SQLSTATE_ATTRS = ("sql_state", "sqlstate", "sqlState")
_SQLSTATE_CONTEXT_KEYS = ("sql-state", "sql_state", "sqlstate", "sqlState")

_SQLSTATE_EXACT: dict[str, _Verdict] = {
    "42501": _PERMISSION,  # insufficient privilege
    "42601": _SYNTAX,
    "42602": _SYNTAX,  # invalid name
    "42617": _SYNTAX,  # empty statement
    "42P01": _NOT_FOUND,  # undefined table
    "42704": _NOT_FOUND,  # undefined object
    "42703": _NOT_FOUND,  # undefined column
    "42883": _NOT_FOUND,  # undefined function
    "42S02": _NOT_FOUND,  # ODBC: base table or view not found
    "42S12": _NOT_FOUND,  # ODBC: index not found
    "42S22": _NOT_FOUND,  # ODBC: column not found
    "57014": _CANCELLED,  # query_canceled
    "HY008": _CANCELLED,  # ODBC: operation canceled
    "HYT00": _TIMEOUT,
    "HYT01": _TIMEOUT,
    "40001": (_C.CANCELLED, False),  # serialization failure: retry the transaction
    "40P01": (_C.CANCELLED, False),  # deadlock detected
    "0A000": _NOT_SUPPORTED,
    "KP001": _NOT_SUPPORTED,  # Reyden warehouse rejecting the Thrift protocol
}

_SQLSTATE_CLASS: dict[str, _Verdict] = {
    "08": _CONNECTION,
    "0A": _NOT_SUPPORTED,
    "21": _INVALID,  # cardinality violation
    "22": _INVALID,  # data exception
    "23": _INVALID,  # integrity constraint violation
    "25": _INVALID,  # invalid transaction state
    "28": _AUTH,
    "3D": _NOT_FOUND,  # invalid catalog name
    "3F": _NOT_FOUND,  # invalid schema name
    "40": _CANCELLED,  # transaction rollback
    "42": _INVALID,  # other analysis errors: wrong types, duplicates, ambiguous names
    "53": _RESOURCE,  # insufficient resources
    "54": (_C.RESOURCE_EXHAUSTED, True),  # program limit exceeded: the same statement fails again
    "57": _SERVER,  # operator intervention
    "58": _SERVER,  # system error
    "XX": _SERVER,  # internal error
}


def _sqlstate_verdict(sqlstate: str) -> _Verdict | None:
    return _SQLSTATE_EXACT.get(sqlstate) or _SQLSTATE_CLASS.get(sqlstate[:2])


def _as_sqlstate(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip().upper()
        if _SQLSTATE_VALID.fullmatch(value):
            return value
    return None


def _sqlstate_in(text: str) -> str | None:
    """The value of the first SQLSTATE key in the head of ``text``."""
    match = _SQLSTATE_IN_TEXT.search(text, 0, _SCAN_LIMIT)
    return match.group(1) if match is not None else None


# --------------------------------------------------------------------------- error classes

# A Databricks error class such as ``[UNRESOLVED_COLUMN.WITH_SUGGESTION]``: the main class decides.
_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]{3,})(?:\.[A-Z0-9_]+)*\]")

_ERROR_CLASS_EXACT: dict[str, _Verdict] = {
    "PERMISSION_DENIED": _PERMISSION,
    "QUERY_EXECUTION_TIMEOUT_EXCEEDED": (_C.TIMEOUT, True),
    "OPERATION_CANCELED": _CANCELLED,
    "DIVIDE_BY_ZERO": _INVALID,
    "CAST_INVALID_INPUT": _INVALID,
    "CAST_OVERFLOW": _INVALID,
    "ARITHMETIC_OVERFLOW": _INVALID,
    "DATATYPE_MISMATCH": _INVALID,
    "INVALID_PARAMETER_VALUE": _INVALID,
    "UNBOUND_SQL_PARAMETER": _INVALID,
    "AMBIGUOUS_REFERENCE": _INVALID,
    "INTERNAL_ERROR": _SERVER,
}
_ERROR_CLASS_PREFIX: tuple[tuple[str, _Verdict], ...] = (
    ("INSUFFICIENT_PERMISSIONS", _PERMISSION),
    ("UNRESOLVED_", _NOT_FOUND),
    ("PARSE_", _SYNTAX),
    ("UNSUPPORTED_", _NOT_SUPPORTED),
    ("NOT_SUPPORTED_", _NOT_SUPPORTED),
    ("INTERNAL_ERROR_", _SERVER),
)
_ERROR_CLASS_SUFFIX: tuple[tuple[str, _Verdict], ...] = (
    ("_NOT_FOUND", _NOT_FOUND),
    ("_DOES_NOT_EXIST", _NOT_FOUND),
    ("_ALREADY_EXISTS", _INVALID),
)


def _error_class_verdict(name: str) -> _Verdict | None:
    verdict = _ERROR_CLASS_EXACT.get(name)
    if verdict is not None:
        return verdict
    for prefix, verdict in _ERROR_CLASS_PREFIX:
        if name.startswith(prefix):
            return verdict
    for suffix, verdict in _ERROR_CLASS_SUFFIX:
        if name.endswith(suffix):
            return verdict
    return None


def _error_class_in(text: str) -> _Verdict | None:
    """The verdict of the first error class in ``text`` that has one."""
    for match in _ERROR_CLASS.finditer(text, 0, _SCAN_LIMIT):
        verdict = _error_class_verdict(match.group(1))
        if verdict is not None:
            return verdict
    return None


# The kernel backend forwards its error ``code`` slug onto the driver exception.
_KERNEL_CODES: dict[str, _Verdict] = {
    "Unauthenticated": _AUTH,
    "PermissionDenied": _PERMISSION,
    "NotFound": _NOT_FOUND,
    "InvalidArgument": _INVALID,
    "InvalidStatementHandle": _INVALID,
    "ResourceExhausted": _RESOURCE,
    "Unavailable": _SERVER,
    "Timeout": _TIMEOUT,
    "Cancelled": _CANCELLED,
    "NetworkError": _CONNECTION,
    "DataLoss": _SERVER,
    "Internal": _SERVER,
}


# --------------------------------------------------------------------------- message patterns

# Free-text fallbacks in priority order: a verdict and the words, separated by "|", any of which
# in the lower-cased head of a message gives it.
_MESSAGE_WORDS: tuple[tuple[_Verdict, tuple[str, ...]], ...] = tuple(
    (verdict, tuple(words.split("|")))
    for verdict, words in (
        (_RATE_LIMIT, "too many requests|rate limit|rate-limit|ratelimit|throttl"),
        (
            _AUTH,
            "unauthorized|unauthorised|unauthenticated|invalid access token|invalid token"
            "|invalid bearer token|token expired|token has expired|authentication failed"
            "|authentication required|authentication error|invalid credentials",
        ),
        (
            _PERMISSION,
            "permission denied|access denied|forbidden|not authorized|not authorised"
            "|insufficient privilege|insufficient permission",
        ),
        (_TIMEOUT, "timed out|timeout|time out|deadline exceeded"),
        (
            _CANCELLED,
            "cancelled|canceled|cancelling|canceling|cancellation|interrupted|closed server side",
        ),
        (
            _CONNECTION,
            "connection refused|connection reset|connection aborted|connection closed"
            "|connection error|connection failed|failed to establish a new connection"
            "|name or service not known|nodename nor servname"
            "|temporary failure in name resolution|no route to host|network is unreachable"
            "|broken pipe|remote end closed|eof occurred",
        ),
        # Thrift INVALID_HANDLE_STATUS: the session or operation no longer exists on the server.
        (
            _NOT_FOUND,
            "invalid sessionhandle|invalid session handle|invalid operationhandle"
            "|invalid operation handle",
        ),
        (
            _NOT_FOUND,
            "not found|does not exist|cannot be found|no such table|no such file|no such schema",
        ),
        (_SYNTAX, "syntax error|parse error|mismatched input|parseexception"),
        (_NOT_SUPPORTED, "not supported|unsupported|not implemented"),
        (_RESOURCE, "out of memory|quota exceeded|resource exhausted|no space left"),
        (_SERVER, "internal error|internal server error|service unavailable|bad gateway"),
    )
)


def _message_verdict(message: str) -> _Verdict | None:
    text = message[:_MESSAGE_SCAN_LIMIT].lower()
    for verdict, words in _MESSAGE_WORDS:
        for word in words:
            if word in text:
                return verdict
    return None


# --------------------------------------------------------------------------- class rules

_STRONG = 0  # the class alone decides
_DEFER = 1  # a default, unless a linked exception says more
_WEAK = 2  # a last resort, after message patterns


class _Rule(NamedTuple):
    verdict: _Verdict
    mode: int
    refine: tuple[str, Mapping[int, _Verdict]] | None = None
    """An int attribute of the exception and the verdicts of some of its values, which decide
    like a ``_STRONG`` rule (``errno``, Thrift's exception ``type``)."""


_ERRNO: dict[int, _Verdict] = {
    errno.ETIMEDOUT: _TIMEOUT,
    errno.ECONNREFUSED: _CONNECTION,
    errno.ECONNRESET: _CONNECTION,
    errno.ECONNABORTED: _CONNECTION,
    errno.EPIPE: _CONNECTION,
    errno.EHOSTUNREACH: _CONNECTION,
    errno.ENETUNREACH: _CONNECTION,
    errno.ENETDOWN: _CONNECTION,
    errno.ESHUTDOWN: _CONNECTION,
    errno.EACCES: _PERMISSION,
    errno.EPERM: _PERMISSION,
    errno.ENOENT: _NOT_FOUND,
    errno.EMFILE: _RESOURCE,
    errno.ENFILE: _RESOURCE,
    errno.ENOMEM: _RESOURCE,
    errno.ENOSPC: _RESOURCE,
}
if hasattr(errno, "EHOSTDOWN"):
    _ERRNO[errno.EHOSTDOWN] = _CONNECTION

# thrift TTransportException.type: NOT_OPEN=1, TIMED_OUT=3, END_OF_FILE=4
_TRANSPORT_TYPES: dict[int, _Verdict] = {1: _CONNECTION, 3: _TIMEOUT, 4: _CONNECTION}
# thrift TApplicationException.type: UNKNOWN_METHOD=1
_APPLICATION_TYPES: dict[int, _Verdict] = {1: _NOT_SUPPORTED}

# The first class along an exception's MRO that is listed here gives its rule.
_CLASS_RULES: dict[str, _Rule] = {
    # databricks.sql.exc -- the generic classes (Error, DatabaseError, OperationalError,
    # RequestError, ServerOperationError, TransactionError) carry no category of their own.
    "databricks.sql.exc.MaxRetryDurationError": _Rule(_TIMEOUT, _STRONG),
    "databricks.sql.exc.NonRecoverableNetworkError": _Rule(_NOT_SUPPORTED, _STRONG),
    "databricks.sql.exc.SessionAlreadyClosedError": _Rule(_NOT_FOUND, _STRONG),
    "databricks.sql.exc.CursorAlreadyClosedError": _Rule(_NOT_FOUND, _STRONG),
    "databricks.sql.exc.NotSupportedError": _Rule(_NOT_SUPPORTED, _STRONG),
    "databricks.sql.exc.ReydenThriftUnsupportedError": _Rule(_NOT_SUPPORTED, _STRONG),
    "databricks.sql.exc.TelemetryRateLimitError": _Rule(_RATE_LIMIT, _STRONG),
    "databricks.sql.exc.UnsafeToRetryError": _Rule((_C.SERVER_ERROR, True), _WEAK),
    "databricks.sql.exc.InvalidServerResponseError": _Rule(_NOT_SUPPORTED, _WEAK),
    "databricks.sql.exc.InterfaceError": _Rule(_INVALID, _WEAK),
    "databricks.sql.exc.ProgrammingError": _Rule(_INVALID, _WEAK),
    "databricks.sql.exc.DataError": _Rule(_INVALID, _WEAK),
    "databricks.sql.exc.IntegrityError": _Rule(_INVALID, _WEAK),
    "databricks.sql.exc.InternalError": _Rule(_SERVER, _WEAK),
    # urllib3.exceptions -- NewConnectionError subclasses ConnectTimeoutError, so it must be
    # listed: a refused connection is not a timeout.
    "urllib3.exceptions.NewConnectionError": _Rule(_CONNECTION, _STRONG),
    "urllib3.exceptions.ConnectTimeoutError": _Rule(_TIMEOUT, _STRONG),
    "urllib3.exceptions.ReadTimeoutError": _Rule(_TIMEOUT, _STRONG),
    "urllib3.exceptions.TimeoutError": _Rule(_TIMEOUT, _STRONG),
    "urllib3.exceptions.LocationValueError": _Rule(_INVALID, _STRONG),
    "urllib3.exceptions.SSLError": _Rule(_CONNECTION_TERMINAL, _DEFER),
    "urllib3.exceptions.ProxyError": _Rule(_CONNECTION, _DEFER),
    "urllib3.exceptions.ProtocolError": _Rule(_CONNECTION, _DEFER),
    "urllib3.exceptions.IncompleteRead": _Rule(_CONNECTION, _DEFER),
    "urllib3.exceptions.InvalidChunkLength": _Rule(_CONNECTION, _DEFER),
    "urllib3.exceptions.MaxRetryError": _Rule(_CONNECTION, _WEAK),
    "urllib3.exceptions.PoolError": _Rule(_CONNECTION, _WEAK),
    "urllib3.exceptions.DecodeError": _Rule(_SERVER, _WEAK),
    "urllib3.exceptions.HeaderParsingError": _Rule(_SERVER, _WEAK),
    # thrift
    "thrift.transport.TTransport.TTransportException": _Rule(
        _CONNECTION, _WEAK, ("type", _TRANSPORT_TYPES)
    ),
    "thrift.Thrift.TApplicationException": _Rule(_SERVER, _WEAK, ("type", _APPLICATION_TYPES)),
    # ssl -- before OSError in every MRO
    "ssl.SSLEOFError": _Rule(_CONNECTION, _STRONG),
    "ssl.SSLZeroReturnError": _Rule(_CONNECTION, _STRONG),
    "ssl.SSLSyscallError": _Rule(_CONNECTION, _STRONG),
    "ssl.SSLError": _Rule(_CONNECTION_TERMINAL, _STRONG),
    # builtins and stdlib
    "TimeoutError": _Rule(_TIMEOUT, _STRONG),
    "concurrent.futures._base.TimeoutError": _Rule(_TIMEOUT, _STRONG),  # 3.10
    "asyncio.exceptions.TimeoutError": _Rule(_TIMEOUT, _STRONG),  # 3.10
    "ConnectionError": _Rule(_CONNECTION, _STRONG),
    "socket.gaierror": _Rule(_CONNECTION, _STRONG),
    "socket.herror": _Rule(_CONNECTION, _STRONG),
    "PermissionError": _Rule(_PERMISSION, _STRONG),
    "FileNotFoundError": _Rule(_NOT_FOUND, _STRONG),
    "OSError": _Rule(_CONNECTION, _WEAK, ("errno", _ERRNO)),
    "EOFError": _Rule(_CONNECTION, _WEAK),
    "KeyboardInterrupt": _Rule(_CANCELLED, _STRONG),
    "SystemExit": _Rule(_CANCELLED, _STRONG),
    "GeneratorExit": _Rule(_CANCELLED, _STRONG),
    "asyncio.exceptions.CancelledError": _Rule(_CANCELLED, _STRONG),
    "concurrent.futures._base.CancelledError": _Rule(_CANCELLED, _STRONG),
    "MemoryError": _Rule((_C.RESOURCE_EXHAUSTED, True), _STRONG),
    "NotImplementedError": _Rule(_NOT_SUPPORTED, _WEAK),
    "ValueError": _Rule(_INVALID, _WEAK),
    "TypeError": _Rule(_INVALID, _WEAK),
}

_DRIVER_ERROR = "databricks.sql.exc.Error"
# Classes, subclasses included, whose messages quote HTTP statuses: the driver's own HTTP failures
# and staging operations, urllib3's retry errors. A bare Exception does too: the CloudFetch
# downloader raises one.
_HTTP_IN_TEXT = frozenset(
    {"databricks.sql.exc.OperationalError", _DRIVER_ERROR, "urllib3.exceptions.HTTPError"}
)
# What the CloudFetch downloader lets escape: the driver's RequestError (from its HTTP client) and
# Error (expired link), and whatever lz4 raises while decompressing.
_DOWNLOADER_RAISES = frozenset(
    {"databricks.sql.exc.RequestError", _DRIVER_ERROR, "Exception", "RuntimeError"}
)
_CLOUDFETCH_WORDS = ("CloudFetch", "cloudfetch", "Cloudfetch", "cloudFetch", "Cloud Fetch")
_CLOUDFETCH_MODULE = "databricks.sql.cloudfetch"


class _ClassInfo(NamedTuple):
    error_type: str
    rule: _Rule | None
    sqlstate: str | None
    str_is_message: bool
    """``str(exc)`` is the driver's ``Error.__str__``, which only returns ``exc.message``."""
    http_in_text: bool
    """Whether messages of this class may quote an HTTP status (see ``_HTTP_IN_MESSAGE``)."""


def _qualified_name(cls: type) -> str:
    try:
        qualname = getattr(cls, "__qualname__", None) or cls.__name__
        module = getattr(cls, "__module__", None)
    except Exception:
        return "Exception"
    if not isinstance(qualname, str):
        qualname = "Exception"
    if not isinstance(module, str) or module in ("builtins", "__main__"):
        return qualname
    return f"{module}.{qualname}"


# Cached: the MRO walk is a tenth of what a failure costs (benchmarks/bench_worst_case_text.py
# --repeat 1000, "SELECT 1" failure: 0.029 ms cached, 0.032 ms not). Bounded, as classes made on
# the fly come and go.
@functools.lru_cache(maxsize=1024)
def _class_info(cls: type) -> _ClassInfo:
    """What the class alone says, read along its MRO."""
    error_type = _qualified_name(cls)
    http_in_text = error_type == "Exception"  # not any subclass of it
    rule: _Rule | None = None
    str_owner = ""
    try:
        for base in cls.__mro__:
            name = _qualified_name(base)
            if not str_owner and "__str__" in vars(base):
                str_owner = name
            rule = rule or _CLASS_RULES.get(name)
            http_in_text = http_in_text or name in _HTTP_IN_TEXT
    except Exception:
        rule, str_owner = None, ""
    try:
        class_sqlstate = _as_sqlstate(getattr(cls, "SQL_STATE", None))
    except Exception:
        class_sqlstate = None
    return _ClassInfo(error_type, rule, class_sqlstate, str_owner == _DRIVER_ERROR, http_in_text)


# --------------------------------------------------------------------------- extraction

_T = TypeVar("_T")


def _first(
    keys: tuple[str, ...], get: Callable[[str], object], convert: Callable[[object], _T | None]
) -> _T | None:
    """The first value ``get`` finds under ``keys`` that ``convert`` accepts."""
    for key in keys:
        value = get(key)
        if value is not None and (converted := convert(value)) is not None:
            return converted
    return None


def _get(obj: object, name: str) -> object:
    """``obj.name``, or None when it is missing or reading it fails."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def safe_message(exc: BaseException) -> str:
    """Return a message for ``exc`` without ever raising.

    Prefers the driver's ``message`` attribute, then ``str(exc)``, then the first string
    argument; falls back to the class name when all of them are empty or fail (a driver
    ``Error`` raised without a message makes ``str(exc)`` raise ``TypeError``).
    """
    cls: type = type(exc)  # a plain type: mypy takes type[BaseException] for unhashable
    try:
        info = _class_info(cls)
    except Exception:
        return "Exception"
    return _message(exc, info) or info.error_type.rpartition(".")[2]


def _message(exc: BaseException, info: _ClassInfo) -> str:
    """The exception's own message, or an empty string."""
    try:
        message = getattr(exc, "message", None)
        if isinstance(message, str) and message:
            return message
    except Exception:
        pass
    if not info.str_is_message:
        try:
            text = str(exc)
            if text:
                return text
        except Exception:
            pass
    try:
        args = exc.args
        if isinstance(args, tuple):
            return next((arg for arg in args if isinstance(arg, str) and arg), "")
    except Exception:
        pass
    return ""


def _instance_dict(exc: BaseException) -> dict[str, Any]:
    attrs = _get(exc, "__dict__")
    return attrs if isinstance(attrs, dict) else {}


def _linked(exc: BaseException, attrs: dict[str, Any]) -> list[BaseException]:
    """What ``exc`` links to: exceptions among its first args (the driver's RequestError keeps
    the cause in ``args[1]``), ``reason`` (urllib3), ``original_exception``, ``__cause__``, and
    ``__context__`` unless suppressed."""
    args = _get(exc, "args")
    candidates = list(args[:4]) if isinstance(args, tuple) else []
    candidates += [attrs.get("reason"), attrs.get("original_exception"), _get(exc, "__cause__")]
    if _get(exc, "__suppress_context__") is False:
        candidates.append(_get(exc, "__context__"))
    return [linked for linked in candidates if isinstance(linked, BaseException)]


def _read_sqlstate(attrs: dict[str, Any], info: _ClassInfo, text: str) -> str | None:
    context = attrs.get("context")
    if not isinstance(context, Mapping):
        context = {}
    found = (
        _first(_SQLSTATE_ATTRS, attrs.get, _as_sqlstate)
        or _first(_SQLSTATE_CONTEXT_KEYS, context.get, _as_sqlstate)
        or info.sqlstate
        or _sqlstate_in(text)
    )
    if found is None:
        diagnostic = context.get("diagnostic-info")
        found = _sqlstate_in(diagnostic) if isinstance(diagnostic, str) else None
    return found


def _read_http_status(attrs: dict[str, Any], text: str) -> int | None:
    context = attrs.get("context")
    response = attrs.get("response")
    found = (
        (_as_status(context.get("http-code")) if isinstance(context, Mapping) else None)
        or _first(_HTTP_STATUS_ATTRS, attrs.get, _as_status)
        or (
            _first(_HTTP_RESPONSE_ATTRS, lambda name: _get(response, name), _as_status)
            if response is not None
            else None
        )
    )
    return found or _status_in(text)


def _refined(rule: _Rule | None, exc: BaseException) -> _Rule | None:
    """``rule``, or a strong one when its ``refine`` attribute of ``exc`` has a verdict."""
    if rule is None or rule.refine is None:
        return rule
    name, verdicts = rule.refine
    value = _get(exc, name)
    verdict = verdicts.get(value) if isinstance(value, int) else None
    return rule if verdict is None else _Rule(verdict, _STRONG)


class _Facts:
    """Everything read once from one exception."""

    __slots__ = ("attrs", "exc", "http_status", "info", "message", "rule", "sqlstate", "text")

    def __init__(self, exc: BaseException, sqlstate: str | None = None) -> None:
        self.exc = exc
        cls: type = type(exc)  # a plain type: mypy takes type[BaseException] for unhashable
        info = self.info = _class_info(cls)
        attrs = self.attrs = _instance_dict(exc)
        # Empty when the exception has no message of its own: nothing to search then.
        self.message = _message(exc, info)
        # What every search reads: a message can echo a whole statement, the codes come first.
        text = self.text = self.message[:_SCAN_LIMIT]
        self.sqlstate = sqlstate or _read_sqlstate(attrs, info, text)
        self.http_status = _read_http_status(attrs, text if info.http_in_text else "")
        self.rule = _refined(info.rule, exc)

    def structured(self) -> _Verdict | None:
        """The class rule when strong, else the codes the exception carries."""
        if self.rule is not None and self.rule.mode == _STRONG:
            return self.rule.verdict
        code = self.attrs.get("code")
        return (
            (_KERNEL_CODES.get(code) if isinstance(code, str) else None)
            or _error_class_in(self.text)
            or (_sqlstate_verdict(self.sqlstate) if self.sqlstate is not None else None)
            or (classify_http_status(self.http_status) if self.http_status is not None else None)
        )


def _walk(items: list[_Facts]) -> Iterator[_Facts]:
    """Yield ``items``, appending the exceptions linked to them, breadth first, without repeats.

    Links are read only when every exception found so far has been yielded (what was read then
    gives ``ErrorInfo`` its codes), and at most ``_MAX_LINKED`` exceptions in all.
    """
    seen = {id(facts.exc) for facts in items}
    expanded = 0
    for index, facts in enumerate(items):  # a list iterator also sees what is appended later
        yield facts
        while index + 1 == len(items) and expanded < len(items) < _MAX_LINKED:
            source = items[expanded]
            expanded += 1
            for linked in _linked(source.exc, source.attrs):
                if id(linked) not in seen and len(items) < _MAX_LINKED:
                    seen.add(id(linked))
                    items.append(_Facts(linked))


def _decide(items: list[_Facts]) -> _Verdict:
    """The first decisive evidence among ``items`` and their links, in the module's order."""
    for facts in _walk(items):
        verdict = facts.structured()
        if verdict is not None:
            return verdict
    # Every link has been read by now.
    rules = [facts.rule for facts in items if facts.rule is not None]
    for rule in rules:
        if rule.mode == _DEFER:
            return rule.verdict
    for facts in items:
        verdict = _message_verdict(facts.text)
        if verdict is not None:
            return verdict
    return rules[0].verdict if rules else _UNKNOWN


def _from_cloudfetch(head: _Facts) -> bool:
    # Only the first exception is looked at: the driver's CloudFetch failures are raised inside
    # the downloader, so its traceback shows it, or its message says so.
    if head.info.error_type not in _DOWNLOADER_RAISES:
        return False
    if any(word in head.text for word in _CLOUDFETCH_WORDS):
        return True
    try:
        tb = head.exc.__traceback__
        for _ in range(_MAX_TRACEBACK_FRAMES):
            if tb is None:
                break
            module = tb.tb_frame.f_globals.get("__name__")
            if isinstance(module, str) and module.startswith(_CLOUDFETCH_MODULE):
                return True
            tb = tb.tb_next
    except Exception:
        pass
    return False


def _first_sqlstate(items: list[_Facts]) -> str | None:
    return next((facts.sqlstate for facts in items if facts.sqlstate is not None), None)


def _first_http_status(items: list[_Facts]) -> int | None:
    return next((facts.http_status for facts in items if facts.http_status is not None), None)


def _classify(exc: BaseException, sqlstate: str | None) -> ErrorInfo:
    head = _Facts(exc, sqlstate)
    items = [head]
    category, terminal = _decide(items)
    if head.attrs.get("retryable") is True:
        terminal = False
    if _from_cloudfetch(head):
        category = _C.CHUNK_DOWNLOAD_ERROR
    return ErrorInfo(
        error_type=head.info.error_type,
        category=category,
        terminal=terminal,
        # From the exceptions read to decide.
        sqlstate=_first_sqlstate(items),
        http_status=_first_http_status(items),
        message=head.message or head.info.error_type.rpartition(".")[2],
    )


# --------------------------------------------------------------------------- public API


def classify(exc: BaseException, *, sqlstate: str | None = None) -> ErrorInfo:
    """Classify ``exc``; never raises, whatever the exception does when inspected.

    ``sqlstate``: the SQLSTATE the protocol sent with the failure (the driver's exceptions do
    not keep it); it comes before whatever the exception itself carries.
    """
    try:
        return _classify(exc, _as_sqlstate(sqlstate) if sqlstate is not None else None)
    except Exception:
        try:
            error_type = _qualified_name(type(exc))
        except Exception:
            error_type = "Exception"
        return ErrorInfo(error_type, _C.UNKNOWN, False, None, None, safe_message(exc))


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by ``exc`` or an exception linked to it, if any.

    Looked up in attributes (``sql_state`` from the kernel backend), the driver's ``context``,
    the message (``SQLSTATE: 42P01``, as Databricks servers write it) and the diagnostic info.
    The Thrift backend drops the server's ``sqlState`` field from its exceptions; the hooks read
    it from the failing response and pass it to ``classify``.
    """
    try:
        return _first_sqlstate(list(_walk([_Facts(exc)])))
    except Exception:
        return None


def http_status_of(exc: BaseException) -> int | None:
    """The HTTP error status (400-599) tied to ``exc`` or an exception linked to it, if any."""
    try:
        return _first_http_status(list(_walk([_Facts(exc)])))
    except Exception:
        return None
