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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

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
_MAX_LINKED = 8
_MAX_TRACEBACK_FRAMES = 64


# --------------------------------------------------------------------------- HTTP status


def classify_http_status(status: int) -> tuple[ErrorCategory, bool]:
    """Map an HTTP status to ``(category, terminal)``; statuses below 400 give ``unknown``."""
    if not isinstance(status, int) or isinstance(status, bool) or status < 400 or status > 599:
        return _UNKNOWN
    verdict = _HTTP_EXACT.get(status)
    if verdict is not None:
        return verdict
    return _INVALID if status < 500 else _SERVER


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

# Statuses that only survive in message text: urllib3's ResponseError ("too many 503 error
# responses"), the CloudFetch downloader ("HTTP 403: ...") and staging operations
# ("... over HTTP was unsuccessful: 403-..."). Each pattern is tried right after a literal anchor
# found with str.find, which is much faster than a regex search over a long message.
_HTTP_ANCHORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("HTTP ", re.compile(r"(\d{3})\b")),
    ("too many ", re.compile(r"(\d{3}) error responses")),
    ("unsuccessful: ", re.compile(r"(\d{3})-")),
)


def _scan(text: str, anchors: tuple[tuple[str, re.Pattern[str]], ...]) -> str | None:
    """The first group of a pattern matching right after one of its anchors in ``text``."""
    for anchor, pattern in anchors:
        start = text.find(anchor, 0, _SCAN_LIMIT)
        while start >= 0:
            match = pattern.match(text, start + len(anchor))
            if match is not None:
                return match.group(1)
            start = text.find(anchor, start + 1, _SCAN_LIMIT)
    return None


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


# --------------------------------------------------------------------------- SQLSTATE

# A run of spaces matches in one way only (``\s*[:=]?\s*`` tried every split of it between the
# two ``\s*`` before failing: quadratic in the run's length).
_SQLSTATE_AFTER_KEY = re.compile(r"[\"']?\s*(?:[:=]\s*)?[\"']?([0-9A-Z]{5})(?![0-9A-Za-z])")
# The key is spelt SQLSTATE, SQLState, SqlState, sqlState, sqlstate, sql_state or SQL_STATE:
# find the "TATE"/"tate" tail, then check what precedes it; two passes over the text, not seven.
_SQLSTATE_KEY_HEADS = frozenset({"SQLS", "SqlS", "sqlS", "sqls", "ql_s", "QL_S"})
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
    verdict = _SQLSTATE_EXACT.get(sqlstate)
    if verdict is not None:
        return verdict
    return _SQLSTATE_CLASS.get(sqlstate[:2])


def _as_sqlstate(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip().upper()
        if _SQLSTATE_VALID.fullmatch(value):
            return value
    return None


# --------------------------------------------------------------------------- error classes

_ERROR_CLASS_AFTER_BRACKET = re.compile(r"([A-Z][A-Z0-9_]{3,})(?:\.[A-Z0-9_]+)*\]")

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


_ERROR_CLASS_SEEN: dict[str, _Verdict | None] = {}


def _error_class_verdict(name: str) -> _Verdict | None:
    try:
        return _ERROR_CLASS_SEEN[name]
    except KeyError:
        pass
    verdict = _ERROR_CLASS_EXACT.get(name)
    if verdict is None:
        verdict = next((v for prefix, v in _ERROR_CLASS_PREFIX if name.startswith(prefix)), None)
    if verdict is None:
        verdict = next((v for suffix, v in _ERROR_CLASS_SUFFIX if name.endswith(suffix)), None)
    if len(_ERROR_CLASS_SEEN) >= 1024:
        _ERROR_CLASS_SEEN.clear()
    _ERROR_CLASS_SEEN[name] = verdict
    return verdict


def _error_class_in(text: str) -> _Verdict | None:
    start = text.find("[", 0, _SCAN_LIMIT)
    while start >= 0:
        match = _ERROR_CLASS_AFTER_BRACKET.match(text, start + 1)
        if match is not None:
            verdict = _error_class_verdict(match.group(1))
            if verdict is not None:
                return verdict
        start = text.find("[", start + 1, _SCAN_LIMIT)
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

# Free-text fallbacks, in priority order, matched against the lower-cased head of a message.
_MESSAGE_SCAN_LIMIT = 1024
_MESSAGE_KEYWORDS: tuple[tuple[tuple[str, ...], _Verdict], ...] = (
    (("too many requests", "rate limit", "rate-limit", "ratelimit", "throttl"), _RATE_LIMIT),
    (
        (
            "unauthorized",
            "unauthorised",
            "unauthenticated",
            "invalid access token",
            "invalid token",
            "invalid bearer token",
            "token expired",
            "token has expired",
            "authentication failed",
            "authentication required",
            "authentication error",
            "invalid credentials",
        ),
        _AUTH,
    ),
    (
        (
            "permission denied",
            "access denied",
            "forbidden",
            "not authorized",
            "not authorised",
            "insufficient privilege",
            "insufficient permission",
        ),
        _PERMISSION,
    ),
    (("timed out", "timeout", "time out", "deadline exceeded"), _TIMEOUT),
    (
        (
            "cancelled",
            "canceled",
            "cancelling",
            "canceling",
            "cancellation",
            "interrupted",
            "closed server side",
        ),
        _CANCELLED,
    ),
    (
        (
            "connection refused",
            "connection reset",
            "connection aborted",
            "connection closed",
            "connection error",
            "connection failed",
            "failed to establish a new connection",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no route to host",
            "network is unreachable",
            "broken pipe",
            "remote end closed",
            "eof occurred",
        ),
        _CONNECTION,
    ),
    # Thrift INVALID_HANDLE_STATUS: the session or operation no longer exists on the server.
    (
        (
            "invalid sessionhandle",
            "invalid session handle",
            "invalid operationhandle",
            "invalid operation handle",
        ),
        _NOT_FOUND,
    ),
    (
        (
            "not found",
            "does not exist",
            "cannot be found",
            "no such table",
            "no such file",
            "no such schema",
        ),
        _NOT_FOUND,
    ),
    (("syntax error", "parse error", "mismatched input", "parseexception"), _SYNTAX),
    (("not supported", "unsupported", "not implemented"), _NOT_SUPPORTED),
    (("out of memory", "quota exceeded", "resource exhausted", "no space left"), _RESOURCE),
    (("internal error", "internal server error", "service unavailable", "bad gateway"), _SERVER),
)


def _message_verdict(message: str) -> _Verdict | None:
    text = message[:_MESSAGE_SCAN_LIMIT].lower()
    for keywords, verdict in _MESSAGE_KEYWORDS:
        for keyword in keywords:
            if keyword in text:
                return verdict
    return None


_CLOUDFETCH_WORDS = ("CloudFetch", "cloudfetch", "Cloudfetch", "cloudFetch", "Cloud Fetch")
_CLOUDFETCH_MODULE = "databricks.sql.cloudfetch"


# --------------------------------------------------------------------------- class rules

_STRONG = 0  # the class alone decides
_DEFER = 1  # a default, unless a linked exception says more
_WEAK = 2  # a last resort, after message patterns


class _Rule(NamedTuple):
    verdict: _Verdict
    mode: int
    refine: Callable[[BaseException], _Verdict | None] | None = None


def _refine_oserror(exc: BaseException) -> _Verdict | None:
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        return None
    return _ERRNO.get(code)


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


def _refine_transport(exc: BaseException) -> _Verdict | None:
    # thrift TTransportException.type: NOT_OPEN=1, TIMED_OUT=3, END_OF_FILE=4
    kind = getattr(exc, "type", None)
    if kind == 3:
        return _TIMEOUT
    if kind in (1, 4):
        return _CONNECTION
    return None


def _refine_application(exc: BaseException) -> _Verdict | None:
    # thrift TApplicationException.type: UNKNOWN_METHOD=1
    return _NOT_SUPPORTED if getattr(exc, "type", None) == 1 else None


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
    "thrift.transport.TTransport.TTransportException": _Rule(_CONNECTION, _WEAK, _refine_transport),
    "thrift.Thrift.TApplicationException": _Rule(_SERVER, _WEAK, _refine_application),
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
    "OSError": _Rule(_CONNECTION, _WEAK, _refine_oserror),
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


class _ClassInfo(NamedTuple):
    error_type: str
    rule: _Rule | None
    sqlstate: str | None
    str_is_message: bool
    """``str(exc)`` is the driver's ``Error.__str__``, which only returns ``exc.message``."""
    http_in_text: bool
    """Whether messages of this class may quote an HTTP status (see ``_HTTP_ANCHORS``)."""
    raised_by_downloader: bool
    """Whether the CloudFetch downloader lets this class escape (worth a traceback walk)."""


# What the CloudFetch downloader lets escape: the driver's RequestError (from its HTTP client) and
# Error (expired link), and whatever lz4 raises while decompressing.
_DOWNLOADER_RAISES = frozenset(
    {"databricks.sql.exc.RequestError", "databricks.sql.exc.Error", "Exception", "RuntimeError"}
)
_DRIVER_ERROR = "databricks.sql.exc.Error"
# Classes whose messages quote HTTP statuses: the driver's own HTTP failures and staging
# operations, urllib3's retry errors, and the bare Exception the CloudFetch downloader raises.
_HTTP_IN_TEXT = frozenset(
    {
        "databricks.sql.exc.OperationalError",
        _DRIVER_ERROR,
        "urllib3.exceptions.HTTPError",
        "Exception",
    }
)

_CLASS_CACHE: dict[type, _ClassInfo] = {}
_CLASS_CACHE_MAX = 1024


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


def _class_info(cls: type) -> _ClassInfo:
    info = _CLASS_CACHE.get(cls)
    if info is not None:
        return info
    rule: _Rule | None = None
    str_owner = ""
    http_in_text = False
    try:
        for position, base in enumerate(cls.__mro__):
            name = _qualified_name(base)
            if not str_owner and "__str__" in vars(base):
                str_owner = name
            if rule is None:
                rule = _CLASS_RULES.get(name)
            # A bare Exception only counts when it is the class itself.
            if name in _HTTP_IN_TEXT and (name != "Exception" or position == 0):
                http_in_text = True
    except Exception:
        rule, str_owner = None, ""
    try:
        class_sqlstate = _as_sqlstate(getattr(cls, "SQL_STATE", None))
    except Exception:
        class_sqlstate = None
    error_type = _qualified_name(cls)
    info = _ClassInfo(
        error_type,
        rule,
        class_sqlstate,
        str_owner == _DRIVER_ERROR,
        http_in_text,
        error_type in _DOWNLOADER_RAISES,
    )
    if len(_CLASS_CACHE) >= _CLASS_CACHE_MAX:
        # Classes created on the fly must not grow the cache without bound.
        _CLASS_CACHE.clear()
    _CLASS_CACHE[cls] = info
    return info


# --------------------------------------------------------------------------- extraction


def safe_message(exc: BaseException) -> str:
    """Return a message for ``exc`` without ever raising.

    Prefers the driver's ``message`` attribute, then ``str(exc)``, then the first string
    argument; falls back to the class name when all of them are empty or fail (a driver
    ``Error`` raised without a message makes ``str(exc)`` raise ``TypeError``).
    """
    try:
        info = _class_info(type(exc))
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
            for arg in args:
                if isinstance(arg, str) and arg:
                    return arg
    except Exception:
        pass
    return ""


def _instance_dict(exc: BaseException) -> dict[str, Any]:
    try:
        attrs = exc.__dict__
    except Exception:
        return {}
    return attrs if isinstance(attrs, dict) else {}


def _linked(exc: BaseException, attrs: dict[str, Any]) -> list[BaseException]:
    found: list[BaseException] = []
    try:
        args = exc.args
        if isinstance(args, tuple):
            found.extend(arg for arg in args[:4] if isinstance(arg, BaseException))
    except Exception:
        pass
    if attrs:
        for name in ("reason", "original_exception"):
            value = attrs.get(name)
            if isinstance(value, BaseException):
                found.append(value)
    try:
        cause = exc.__cause__
        if isinstance(cause, BaseException):
            found.append(cause)
        context = exc.__context__
        if isinstance(context, BaseException) and not exc.__suppress_context__:
            found.append(context)
    except Exception:
        pass
    return found


def _read_sqlstate(attrs: dict[str, Any], info: _ClassInfo, text: str) -> str | None:
    context: Any = None
    if attrs:
        for name in _SQLSTATE_ATTRS:
            value = attrs.get(name)
            if value is not None and (value := _as_sqlstate(value)) is not None:
                return value
        context = attrs.get("context")
        if isinstance(context, Mapping) and context:
            for key in _SQLSTATE_CONTEXT_KEYS:
                value = context.get(key)
                if value is not None and (value := _as_sqlstate(value)) is not None:
                    return value
        else:
            context = None
    if info.sqlstate is not None:
        return info.sqlstate
    found = _sqlstate_in(text) if text else None
    if found is None and context is not None:
        diagnostic = context.get("diagnostic-info")
        if isinstance(diagnostic, str):
            found = _sqlstate_in(diagnostic)
    return found


def _read_http_status(attrs: dict[str, Any], text: str) -> int | None:
    if attrs:
        context = attrs.get("context")
        if isinstance(context, Mapping):
            value = context.get("http-code")
            if value is not None and (status := _as_status(value)) is not None:
                return status
        for name in ("http_status", "status_code", "status", "code"):
            value = attrs.get(name)
            if value is not None and (status := _as_status(value)) is not None:
                return status
        response = attrs.get("response")
        if response is not None:
            for name in ("status", "status_code"):
                try:
                    status = _as_status(getattr(response, name, None))
                except Exception:
                    status = None
                if status is not None:
                    return status
    if "HTTP " in text or "too many " in text or "unsuccessful: " in text:
        return _as_status(_scan(text, _HTTP_ANCHORS))
    return None


class _Facts:
    """Everything read once from one exception."""

    __slots__ = ("attrs", "exc", "http_status", "info", "message", "sqlstate", "text")

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        info = self.info = _class_info(type(exc))
        attrs = self.attrs = _instance_dict(exc)
        # Empty when the exception has no message of its own: nothing to search then.
        message = self.message = _message(exc, info)
        # What every search reads: a message can echo a whole statement, the codes come first.
        text = self.text = message[:_SCAN_LIMIT]
        self.sqlstate = _read_sqlstate(attrs, info, text)
        self.http_status = _read_http_status(attrs, text if info.http_in_text else "")

    def structured(self) -> _Verdict | None:
        """The class rule when strong, else the codes the exception carries."""
        rule = self.info.rule
        if rule is not None:
            if rule.mode == _STRONG:
                return _apply(rule, self.exc)
            if rule.refine is not None:
                refined = rule.refine(self.exc)
                if refined is not None:
                    return refined
        attrs = self.attrs
        if attrs:
            code = attrs.get("code")
            if isinstance(code, str):
                verdict = _KERNEL_CODES.get(code)
                if verdict is not None:
                    return verdict
        text = self.text
        if text:
            verdict = _error_class_in(text)
            if verdict is not None:
                return verdict
        if self.sqlstate is not None:
            verdict = _sqlstate_verdict(self.sqlstate)
            if verdict is not None:
                return verdict
        if self.http_status is not None:
            return classify_http_status(self.http_status)
        return None


def _apply(rule: _Rule, exc: BaseException) -> _Verdict:
    if rule.refine is not None:
        refined = rule.refine(exc)
        if refined is not None:
            return refined
    return rule.verdict


def _sqlstate_in(text: str) -> str | None:
    for tail in ("TATE", "tate"):
        start = text.find(tail, 4, _SCAN_LIMIT)
        while start >= 0:
            if text[start - 4 : start] in _SQLSTATE_KEY_HEADS:
                match = _SQLSTATE_AFTER_KEY.match(text, start + 4)
                if match is not None:
                    return match.group(1)
            start = text.find(tail, start + 1, _SCAN_LIMIT)
    return None


class _Chain:
    """``exc`` first, then the exceptions linked to it, breadth first, without repeats.

    Links are read only when an earlier exception did not settle the question.
    """

    __slots__ = ("_expanded", "_seen", "items")

    def __init__(self, exc: BaseException) -> None:
        self.items = [_Facts(exc)]
        self._seen = {id(exc)}
        self._expanded = 0

    def at(self, index: int) -> _Facts | None:
        items = self.items
        if index < len(items):
            return items[index]
        while index >= len(items) and self._expanded < len(items) < _MAX_LINKED:
            facts = items[self._expanded]
            self._expanded += 1
            for linked in _linked(facts.exc, facts.attrs):
                if id(linked) not in self._seen and len(items) < _MAX_LINKED:
                    self._seen.add(id(linked))
                    items.append(_Facts(linked))
        return items[index] if index < len(items) else None

    def read_all(self) -> list[_Facts]:
        self.at(_MAX_LINKED)
        return self.items

    def sqlstate(self) -> str | None:
        """The first SQLSTATE among the exceptions read so far."""
        for facts in self.items:
            if facts.sqlstate is not None:
                return facts.sqlstate
        return None

    def http_status(self) -> int | None:
        """The first HTTP status among the exceptions read so far."""
        for facts in self.items:
            if facts.http_status is not None:
                return facts.http_status
        return None


def _from_cloudfetch(chain: _Chain) -> bool:
    # Only the first exception is looked at: the driver's CloudFetch failures are raised inside
    # the downloader, so its traceback shows it, or its message says so.
    head = chain.items[0]
    if not head.info.raised_by_downloader:
        return False
    if any(word in head.text for word in _CLOUDFETCH_WORDS):
        return True
    try:
        tb = head.exc.__traceback__
        frames = 0
        while tb is not None and frames < _MAX_TRACEBACK_FRAMES:
            module = tb.tb_frame.f_globals.get("__name__")
            if isinstance(module, str) and module.startswith(_CLOUDFETCH_MODULE):
                return True
            tb = tb.tb_next
            frames += 1
    except Exception:
        pass
    return False


def _decide(chain: _Chain) -> _Verdict:
    index = 0
    facts: _Facts | None = chain.items[0]
    while facts is not None:
        verdict = facts.structured()
        if verdict is not None:
            return verdict
        index += 1
        facts = chain.at(index)
    items = chain.items  # every link has been read by now
    for facts in items:
        rule = facts.info.rule
        if rule is not None and rule.mode == _DEFER:
            return _apply(rule, facts.exc)
    for facts in items:
        if facts.text:
            verdict = _message_verdict(facts.text)
            if verdict is not None:
                return verdict
    for facts in items:
        rule = facts.info.rule
        if rule is not None:
            return _apply(rule, facts.exc)
    return _UNKNOWN


def _classify(exc: BaseException, sqlstate: str | None) -> ErrorInfo:
    chain = _Chain(exc)
    if sqlstate is not None:
        chain.items[0].sqlstate = sqlstate
    category, terminal = _decide(chain)
    head = chain.items[0]
    if head.attrs and head.attrs.get("retryable") is True:
        terminal = False
    if category is not _C.CHUNK_DOWNLOAD_ERROR and _from_cloudfetch(chain):
        category = _C.CHUNK_DOWNLOAD_ERROR
    return ErrorInfo(
        error_type=head.info.error_type,
        category=category,
        terminal=terminal,
        sqlstate=chain.sqlstate(),
        http_status=chain.http_status(),
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
        chain = _Chain(exc)
        chain.read_all()
        return chain.sqlstate()
    except Exception:
        return None


def http_status_of(exc: BaseException) -> int | None:
    """The HTTP error status (400-599) tied to ``exc`` or an exception linked to it, if any."""
    try:
        chain = _Chain(exc)
        chain.read_all()
        return chain.http_status()
    except Exception:
        return None
