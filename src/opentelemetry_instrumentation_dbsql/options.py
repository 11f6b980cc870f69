"""The options of ``DbsqlInstrumentor.instrument()`` and their environment variables.

Every option has an environment variable because ``opentelemetry-instrument`` calls
``instrument()`` without keyword arguments. Precedence: keyword argument, then environment
variable, then default. An invalid keyword raises ``ValueError`` naming the option and the
accepted values; an invalid environment variable is logged once as a warning and treated as
unset.

This is the one module that parses option values and reads these environment variables: the
aggregation processor and the Databricks exporter receive resolved values, and use the parsers
and the warn-once below for the values they are handed directly.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from opentelemetry_instrumentation_dbsql.statement_info import StatementFilter, StatementHook

_logger = logging.getLogger(__name__)

QueryTextMode = Literal["sanitized", "raw", "off"]
QUERY_TEXT_MODES: Final = ("sanitized", "raw", "off")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_UNSET = frozenset({"", "unset", "none"})
_BOOLEAN_VALUES: Final = "true | false (also 1 | 0, yes | no, on | off)"
_TRISTATE_VALUES: Final = "true | false (also 1 | 0, yes | no, on | off) | unset"


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: keyword, environment variable, default and meaning (the README table)."""

    keyword: str
    env_var: str
    default: Any
    accepted: str
    meaning: str


@dataclass(frozen=True, slots=True)
class InstrumentationOptions:
    """Resolved options of one instrumentation."""

    capture_query_text: QueryTextMode = "sanitized"
    capture_parameters: bool = False
    propagate_trace_context: bool = False
    suppress_http_spans: bool = True
    max_query_text_length: int = 2048
    enable_telemetry: bool | None = None
    force_enable_telemetry: bool = False
    keep_native_telemetry: bool = False
    aggregation_batch_size: int = 100
    aggregation_flush_interval: float = 5.0
    aggregation_max_statements: int = 10_000
    aggregation_idle_timeout: float = 1800.0
    exclude_statements: StatementFilter | None = None
    request_hook: StatementHook | None = None
    response_hook: StatementHook | None = None
    # OTEL_SEMCONV_STABILITY_OPT_IN=database/dup: the older attribute names beside the stable ones.
    semconv_dup: bool = False
    # The options whose value came from their environment variable. The export opt-in ranks an
    # instrument() keyword above an environment variable, so it needs to know which was which.
    from_environment: frozenset[str] = field(default=frozenset(), compare=False, repr=False)


OPTION_SPECS: Final[tuple[OptionSpec, ...]] = (
    OptionSpec(
        "capture_query_text",
        "OTEL_PYTHON_DBSQL_CAPTURE_QUERY_TEXT",
        "sanitized",
        "sanitized | raw | off",
        "db.query.text: literals replaced by ? (parameterized queries are kept as written), "
        "the text as written, or not recorded.",
    ),
    OptionSpec(
        "capture_parameters",
        "OTEL_PYTHON_DBSQL_CAPTURE_PARAMETERS",
        False,
        _BOOLEAN_VALUES,
        "Record bound parameter values as db.query.parameter.<key>.",
    ),
    OptionSpec(
        "propagate_trace_context",
        "OTEL_PYTHON_DBSQL_PROPAGATE_TRACE_CONTEXT",
        False,
        _BOOLEAN_VALUES,
        "Add the traceparent (and the statement tags) to each statement's Databricks query_tags.",
    ),
    OptionSpec(
        "suppress_http_spans",
        "OTEL_PYTHON_DBSQL_SUPPRESS_HTTP_SPANS",
        True,
        _BOOLEAN_VALUES,
        "Suppress urllib3 client spans for the driver's own HTTP calls.",
    ),
    OptionSpec(
        "max_query_text_length",
        "OTEL_PYTHON_DBSQL_MAX_QUERY_TEXT_LENGTH",
        2048,
        "integer 16 .. 1048576",
        "Longest db.query.text recorded; longer text is truncated.",
    ),
    OptionSpec(
        "enable_telemetry",
        "OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY",
        None,
        _TRISTATE_VALUES,
        "Databricks telemetry export: true = on when the server flag is on, false = off, "
        "unset = the server flag decides.",
    ),
    OptionSpec(
        "force_enable_telemetry",
        "OTEL_PYTHON_DBSQL_FORCE_ENABLE_TELEMETRY",
        False,
        _BOOLEAN_VALUES,
        "Databricks telemetry export on without asking the server.",
    ),
    OptionSpec(
        "keep_native_telemetry",
        "OTEL_PYTHON_DBSQL_KEEP_NATIVE_TELEMETRY",
        False,
        _BOOLEAN_VALUES,
        "Leave the connector's own telemetry on while this package exports.",
    ),
    OptionSpec(
        "aggregation_batch_size",
        "OTEL_PYTHON_DBSQL_AGGREGATION_BATCH_SIZE",
        100,
        "integer 1 .. 100000",
        "Statement records per batch handed to the record sink (the Databricks exporter).",
    ),
    OptionSpec(
        "aggregation_flush_interval",
        "OTEL_PYTHON_DBSQL_AGGREGATION_FLUSH_INTERVAL",
        5.0,
        "seconds 0.001 .. 86400",
        "Longest time a statement record waits before its batch is handed over.",
    ),
    OptionSpec(
        "aggregation_max_statements",
        "OTEL_PYTHON_DBSQL_AGGREGATION_MAX_STATEMENTS",
        10_000,
        "integer 1 .. 10000000",
        "Statements held open at once; beyond it the oldest is emitted as incomplete.",
    ),
    OptionSpec(
        "aggregation_idle_timeout",
        "OTEL_PYTHON_DBSQL_AGGREGATION_IDLE_TIMEOUT",
        1800.0,
        "seconds 0.001 .. 604800",
        "A statement with no activity for this long is emitted as incomplete.",
    ),
    OptionSpec(
        "exclude_statements",
        "OTEL_PYTHON_DBSQL_EXCLUDE_STATEMENTS",
        None,
        "regular expression | unset (keyword: also a list of exact texts and compiled patterns)",
        "Statements left out of spans and metrics (health checks such as SELECT 1): an exact "
        "text, or a pattern matching the whole text. Their Databricks records are kept.",
    ),
)

SPEC_BY_KEYWORD: Final = {spec.keyword: spec for spec in OPTION_SPECS}

# The accepted range of each numeric option; the aggregation processor's arguments share them.
NUMBER_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "max_query_text_length": (16, 1_048_576),
    "aggregation_batch_size": (1, 100_000),
    "aggregation_flush_interval": (0.001, 86_400.0),
    "aggregation_max_statements": (1, 10_000_000),
    "aggregation_idle_timeout": (0.001, 604_800.0),
}

# ----------------------------------------------------------------------------- warn once

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message % args`` as a warning the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    _logger.warning(message, *args)


def _reset_warnings() -> None:
    """Forget which keys were warned about (tests)."""
    with _warned_lock:
        _warned.clear()


# ----------------------------------------------------------------------------- parsers


class InvalidValue(ValueError):
    """A value outside the accepted set."""


def parse_bool(value: object) -> bool:
    """A bool, or one of the boolean strings (case and surrounding blanks ignored)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise InvalidValue(value)


def parse_tristate(value: object) -> bool | None:
    """``parse_bool``, with None, ``""``, ``"unset"`` and ``"none"`` read as unset (None)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _UNSET):
        return None
    return parse_bool(value)


def parse_int(value: object, low: float, high: float, *, strings: bool = True) -> int:
    """An integer (or, when ``strings``, its decimal text) with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, (int, str) if strings else int):
        raise InvalidValue(value)
    try:
        number = int(value)
    except ValueError:
        raise InvalidValue(value) from None
    if not low <= number <= high:
        raise InvalidValue(value)
    return number


def parse_float(value: object, low: float, high: float, *, strings: bool = True) -> float:
    """A number (or, when ``strings``, its text) with ``low <= value <= high``; never NaN."""
    kinds = (int, float, str) if strings else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidValue(value)
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InvalidValue(value) from None
    if not low <= number <= high:  # False for NaN
        raise InvalidValue(value)
    return number


def _parse_query_mode(value: object) -> QueryTextMode:
    if value is True:
        return "sanitized"
    if value is False:
        return "off"
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "sanitized":
            return "sanitized"
        if lowered == "raw":
            return "raw"
        if lowered == "off":
            return "off"
    raise InvalidValue(value)


def _int_in(keyword: str) -> Callable[[object], int]:
    low, high = NUMBER_RANGES[keyword]
    return lambda value: parse_int(value, low, high)


def _float_in(keyword: str) -> Callable[[object], float]:
    low, high = NUMBER_RANGES[keyword]
    return lambda value: parse_float(value, low, high)


def _parse_filter(value: object) -> StatementFilter | None:
    if value is None:
        return None
    if isinstance(value, StatementFilter):
        return value
    if isinstance(value, str):  # the environment variable: one pattern
        text = value.strip()
        if not text:
            return None
        try:
            return StatementFilter(patterns=(re.compile(text),))
        except re.error:
            raise InvalidValue from None
    if isinstance(value, re.Pattern):
        return StatementFilter(patterns=(value,))
    if isinstance(value, list | tuple | set | frozenset):
        try:
            return StatementFilter.of(value)
        except TypeError:
            raise InvalidValue from None
    raise InvalidValue


def _parse_hook(value: object) -> StatementHook | None:
    if value is None or callable(value):
        return value
    raise InvalidValue


# Options without an environment variable: a callable cannot be written in one.
_HOOK_KEYWORDS: Final = ("request_hook", "response_hook")
_HOOK_VALUES: Final = "a callable hook(span, info) | None"
_SEMCONV_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"


def _semconv_dup(environ: Mapping[str, str]) -> bool:
    tokens = {token.strip() for token in environ.get(_SEMCONV_OPT_IN, "").split(",")}
    return "database/dup" in tokens


_PARSERS: Final[Mapping[str, Callable[[object], Any]]] = {
    "capture_query_text": _parse_query_mode,
    "capture_parameters": parse_bool,
    "propagate_trace_context": parse_bool,
    "suppress_http_spans": parse_bool,
    "max_query_text_length": _int_in("max_query_text_length"),
    "enable_telemetry": parse_tristate,
    "force_enable_telemetry": parse_bool,
    "keep_native_telemetry": parse_bool,
    "aggregation_batch_size": _int_in("aggregation_batch_size"),
    "aggregation_flush_interval": _float_in("aggregation_flush_interval"),
    "aggregation_max_statements": _int_in("aggregation_max_statements"),
    "aggregation_idle_timeout": _float_in("aggregation_idle_timeout"),
    "exclude_statements": _parse_filter,
}

# ----------------------------------------------------------------------------- resolution

# Keywords that are not options of this package but reach ``instrument()``: the providers and the
# record sink it takes, the loader's own (``BaseInstrumentor.instrument`` pops ``skip_dep_check``
# and ``raise_exception_on_conflict``, which opentelemetry-instrument 0.53b0-0.56b0 passes), and
# ``uninstrument()``'s deadline.
PASSTHROUGH_KEYWORDS: Final = frozenset(
    {
        "tracer_provider",
        "meter_provider",
        "record_sink",
        "skip_dep_check",
        "raise_exception_on_conflict",
        "timeout_s",
    }
)


def _warn_unknown_keyword(key: str) -> None:
    """Warn once per keyword; distros pass options meant for other instrumentations."""
    known = [*SPEC_BY_KEYWORD, *_HOOK_KEYWORDS, *PASSTHROUGH_KEYWORDS]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    warn_once(f"keyword:{key}", "Ignoring unknown keyword %r of DbsqlInstrumentor%s", key, hint)


def _from_env(spec: OptionSpec, environ: Mapping[str, str]) -> tuple[bool, Any]:
    raw = environ.get(spec.env_var)
    if raw is None or raw.strip() == "":
        return False, None
    try:
        return True, _PARSERS[spec.keyword](raw)
    except InvalidValue:
        warn_once(
            spec.env_var,
            "Ignoring %s=%r: accepted values are %s",
            spec.env_var,
            raw,
            spec.accepted,
        )
        return False, None


def environment_value(keyword: str, environ: Mapping[str, str] | None = None) -> Any:
    """The parsed value of one option's environment variable; None when unset or invalid."""
    return _from_env(SPEC_BY_KEYWORD[keyword], os.environ if environ is None else environ)[1]


def resolve_options(
    kwargs: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> InstrumentationOptions:
    """Resolve keyword options over environment variables over defaults.

    Raises ``ValueError`` for an invalid value of a known option; an unknown keyword is warned
    about once, naming it, and ignored.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in PASSTHROUGH_KEYWORDS:
            continue
        if key in _HOOK_KEYWORDS:
            try:
                values[key] = _parse_hook(value)
            except InvalidValue:
                raise ValueError(
                    f"invalid value {value!r} for option {key!r}: accepted values are "
                    f"{_HOOK_VALUES}"
                ) from None
            continue
        spec = SPEC_BY_KEYWORD.get(key)
        if spec is None:
            _warn_unknown_keyword(key)
            continue
        try:
            values[key] = _PARSERS[key](value)
        except InvalidValue:
            raise ValueError(
                f"invalid value {value!r} for option {key!r}: accepted values are {spec.accepted}"
            ) from None
    from_environment: set[str] = set()
    for spec in OPTION_SPECS:
        if spec.keyword in values:
            continue
        found, parsed = _from_env(spec, env)
        if found:
            values[spec.keyword] = parsed
            from_environment.add(spec.keyword)
    return InstrumentationOptions(
        **values, semconv_dup=_semconv_dup(env), from_environment=frozenset(from_environment)
    )
