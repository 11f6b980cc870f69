"""Tolerant readers of span attribute values: a value of the wrong type counts as absent."""

from __future__ import annotations

import math
from collections.abc import Mapping

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation.records import ErrorRecord

Attrs = Mapping[str, object]

_NS_PER_MS = 1_000_000


def as_str(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if type(value) is str and value else None


def as_bool(value: object) -> bool | None:
    """A real bool, else None (no truthiness of other types)."""
    return value if type(value) is bool else None


def as_count(value: object) -> int | None:
    """A non-negative int (a finite float is rounded), else None."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and math.isfinite(value) and value >= 0:
        return round(value)
    return None


def count(attrs: Attrs | None, name: str) -> int | None:
    """``as_count`` of one attribute of a possibly absent mapping."""
    return None if attrs is None else as_count(attrs.get(name))


def first_count(first: Attrs | None, second: Attrs | None, name: str) -> int | None:
    """The attribute from ``first``, else from ``second``."""
    value = count(first, name)
    return count(second, name) if value is None else value


def sum_counts(first: Attrs | None, second: Attrs | None, name: str) -> int | None:
    """The sum of the attribute over both mappings; None when neither has it."""
    a = count(first, name)
    b = count(second, name)
    if a is None:
        return b
    return a if b is None else a + b


def max_count(first: Attrs | None, second: Attrs | None, name: str) -> int | None:
    """The larger of the attribute over both mappings; None when neither has it."""
    a = count(first, name)
    b = count(second, name)
    if a is None:
        return b
    return a if b is None else max(a, b)


def first_str(first: Attrs | None, second: Attrs | None, name: str) -> str | None:
    """The string attribute from ``first``, else from ``second``."""
    value = None if first is None else as_str(first.get(name))
    if value is None and second is not None:
        value = as_str(second.get(name))
    return value


def first_bool(first: Attrs | None, second: Attrs | None, name: str) -> bool | None:
    """The bool attribute from ``first``, else from ``second``."""
    value = None if first is None else as_bool(first.get(name))
    if value is None and second is not None:
        value = as_bool(second.get(name))
    return value


def port(attrs: Attrs | None) -> int | None:
    """``server.port`` when it is a valid port number."""
    if attrs is None:
        return None
    value = attrs.get(A.SERVER_PORT)
    return value if type(value) is int and 0 < value < 65536 else None


def duration_ms(start_ns: object, end_ns: object) -> int | None:
    """Span duration in whole milliseconds (rounded); None when a timestamp is missing."""
    if type(start_ns) is not int or type(end_ns) is not int:
        return None
    return max(0, (end_ns - start_ns + _NS_PER_MS // 2) // _NS_PER_MS)


def error(attrs: Attrs | None) -> ErrorRecord | None:
    """The error described by ``error.type`` and its companions, if ``error.type`` is set."""
    if attrs is None:
        return None
    error_type = as_str(attrs.get(A.ERROR_TYPE))
    if error_type is None:
        return None
    return ErrorRecord(
        error_type=error_type,
        category=as_str(attrs.get(A.ERROR_CATEGORY)) or "unknown",
        terminal=attrs.get(A.ERROR_TERMINAL) is True,
        sqlstate=as_str(attrs.get(A.DB_RESPONSE_STATUS_CODE)),
    )


def is_terminal(attrs: Attrs | None) -> bool:
    """True when the mapping reports a terminal error."""
    return attrs is not None and attrs.get(A.ERROR_TERMINAL) is True
