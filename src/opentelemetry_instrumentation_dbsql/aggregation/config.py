"""Options of the aggregation processor: defaults and accepted ranges.

Four of them are also options of ``instrument()`` and share its defaults, ranges and
environment variables (``options.py``). Precedence: an explicit argument, else the environment
variable as ``options.py`` parses it (an invalid one is warned about once per process and
treated as unset), else the default. An invalid explicit value raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from opentelemetry_instrumentation_dbsql.options import (
    NUMBER_RANGES,
    SPEC_BY_KEYWORD,
    InstrumentationOptions,
    InvalidValue,
    environment_value,
    parse_float,
    parse_int,
)

ENV_BATCH_SIZE: Final = SPEC_BY_KEYWORD["aggregation_batch_size"].env_var
ENV_FLUSH_INTERVAL: Final = SPEC_BY_KEYWORD["aggregation_flush_interval"].env_var  # seconds
ENV_MAX_STATEMENTS: Final = SPEC_BY_KEYWORD["aggregation_max_statements"].env_var
ENV_IDLE_TIMEOUT: Final = SPEC_BY_KEYWORD["aggregation_idle_timeout"].env_var  # seconds

_SHARED_DEFAULTS: Final = InstrumentationOptions()


@dataclass(frozen=True, slots=True)
class _Option:
    name: str
    low: float
    high: float
    keyword: str | None = None  # the instrument() option it shares its environment variable with


def _shared(name: str, keyword: str) -> _Option:
    low, high = NUMBER_RANGES[keyword]
    return _Option(name, low, high, keyword)


_BATCH = _shared("max_batch_size", "aggregation_batch_size")
_FLUSH = _shared("flush_interval_s", "aggregation_flush_interval")
_MAX_LIVE = _shared("max_live_statements", "aggregation_max_statements")
_IDLE = _shared("statement_idle_timeout_s", "aggregation_idle_timeout")
_QUEUE = _Option("max_queue_size", 1, 10_000_000)
_EXPORT_TIMEOUT = _Option("export_timeout_s", 0.001, 3600.0)


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    """Resolved, validated options of a ``StatementAggregationProcessor``."""

    max_batch_size: int = _SHARED_DEFAULTS.aggregation_batch_size
    flush_interval_s: float = _SHARED_DEFAULTS.aggregation_flush_interval
    max_live_statements: int = _SHARED_DEFAULTS.aggregation_max_statements
    statement_idle_timeout_s: float = _SHARED_DEFAULTS.aggregation_idle_timeout
    max_queue_size: int = 2048
    export_timeout_s: float = 10.0


_DEFAULTS: Final = AggregationConfig()


def _invalid(option: _Option, kind: str, value: object) -> ValueError:
    return ValueError(
        f"{option.name} must be {kind} with {option.low} <= value <= {option.high}, got {value!r}"
    )


def _unset(option: _Option, environ: Mapping[str, str] | None) -> object:
    """The environment variable's value if ``option`` has one and it is valid, else the default."""
    from_env = None if option.keyword is None else environment_value(option.keyword, environ)
    return getattr(_DEFAULTS, option.name) if from_env is None else from_env


# Explicit arguments are numbers only (``strings=False``): they are code, not configuration text.


def _pick_int(option: _Option, explicit: int | None, environ: Mapping[str, str] | None) -> int:
    value = _unset(option, environ) if explicit is None else explicit
    try:
        return parse_int(value, option.low, option.high, strings=False)
    except InvalidValue:
        raise _invalid(option, "an int", value) from None


def _pick_float(
    option: _Option, explicit: float | None, environ: Mapping[str, str] | None
) -> float:
    value = _unset(option, environ) if explicit is None else explicit
    try:
        return parse_float(value, option.low, option.high, strings=False)
    except InvalidValue:
        raise _invalid(option, "a number of seconds", value) from None


def resolve_config(
    *,
    max_batch_size: int | None = None,
    flush_interval_s: float | None = None,
    max_live_statements: int | None = None,
    statement_idle_timeout_s: float | None = None,
    max_queue_size: int | None = None,
    export_timeout_s: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> AggregationConfig:
    """Validate explicit options and fill the others from ``environ`` (default ``os.environ``).

    Raises ``ValueError`` naming the option and its accepted range for an invalid explicit value.
    """
    return AggregationConfig(
        max_batch_size=_pick_int(_BATCH, max_batch_size, environ),
        flush_interval_s=_pick_float(_FLUSH, flush_interval_s, environ),
        max_live_statements=_pick_int(_MAX_LIVE, max_live_statements, environ),
        statement_idle_timeout_s=_pick_float(_IDLE, statement_idle_timeout_s, environ),
        max_queue_size=_pick_int(_QUEUE, max_queue_size, environ),
        export_timeout_s=_pick_float(_EXPORT_TIMEOUT, export_timeout_s, environ),
    )
