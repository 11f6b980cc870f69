"""Native query parameters (``TSparkParameter``) as Python values DuckDB can bind."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence
from typing import Any

from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import ttypes

_INTEGERS = frozenset({"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "LONG", "SHORT", "BYTE"})
_FLOATS = frozenset({"DOUBLE", "FLOAT", "REAL"})


def _convert(type_name: str | None, text: str | None, arguments: Sequence[Any] | None) -> Any:
    kind = (type_name or "STRING").upper().strip()
    base = kind.split("(", 1)[0].strip()
    if base == "ARRAY":
        return [_convert(a.type, a.value, getattr(a, "arguments", None)) for a in arguments or []]
    if base == "MAP":
        items = [_convert(a.type, a.value, getattr(a, "arguments", None)) for a in arguments or []]
        return dict(zip(items[0::2], items[1::2], strict=False))
    if text is None or base in {"VOID", "NULL"}:
        return None
    if base in _INTEGERS:
        return int(text)
    if base in _FLOATS:
        return float(text)
    if base == "BOOLEAN":
        return text.strip().lower() in {"true", "1"}
    if base == "DECIMAL":
        return decimal.Decimal(text)
    if base == "DATE":
        return datetime.date.fromisoformat(text.strip())
    if base in {"TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ"}:
        return datetime.datetime.fromisoformat(text.strip())
    return text


def parameter_value(parameter: ttypes.TSparkParameter) -> Any:
    """The Python value of one parameter."""
    value = parameter.value
    text = value.stringValue if value is not None else None
    if value is not None and text is None:
        if value.booleanValue is not None:
            return bool(value.booleanValue)
        if value.doubleValue is not None:
            return float(value.doubleValue)
    return _convert(parameter.type, text, getattr(parameter, "arguments", None))


def bind_parameters(
    parameters: Sequence[ttypes.TSparkParameter] | None,
) -> dict[str, Any] | list[Any] | None:
    """Named parameters as a dict (``:name`` markers), positional ones as a list (``?``)."""
    if not parameters:
        return None
    if all(p.name for p in parameters):
        return {str(p.name): parameter_value(p) for p in parameters}
    return [parameter_value(p) for p in parameters]
