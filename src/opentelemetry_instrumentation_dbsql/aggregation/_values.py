"""Tolerant readers of span attribute values: a value of the wrong type counts as absent."""

from __future__ import annotations

import math
from collections.abc import Mapping

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation.records import ErrorRecord

Attrs = Mapping[str, object]


def plain(attributes: object) -> Attrs | None:
    """The plain dict behind an SDK attribute mapping, else the mapping itself.

    ``BoundedAttributes`` implements ``get`` in Python and pays for a raised ``KeyError`` on
    every absent key; most of the attributes the processor asks for are absent on any one
    span. ``benchmarks/bench_shortcuts.py``: 68 reads cost 2.2 us through the dict, 24.6 us
    through the mapping (x11). The SDK makes the mapping immutable when the span ends, so
    reading the dict behind it afterwards is safe. Anything unexpected falls back to the public
    mapping.
    """
    if type(attributes) is dict:
        return attributes
    if type(attributes) is BoundedAttributes:
        inner = getattr(attributes, "_dict", None)
        if type(inner) is dict:
            return inner
    if isinstance(attributes, Mapping):
        return attributes
    return None


def span_attributes(span: ReadableSpan) -> Attrs | None:
    """The attributes of an ended span, read through ``plain`` when it is an SDK ReadableSpan."""
    if type(span) is ReadableSpan:
        return plain(getattr(span, "_attributes", None)) or {}
    return plain(span.attributes)


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


def either(first: int | None, second: int | None) -> int | None:
    """``first`` unless it is None."""
    return second if first is None else first


def add(first: int | None, second: int | None) -> int | None:
    """The sum; None when both are None."""
    if first is None:
        return second
    return first if second is None else first + second


def larger(first: int | None, second: int | None) -> int | None:
    """The larger; None when both are None."""
    if first is None:
        return second
    return first if second is None or first >= second else second


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
