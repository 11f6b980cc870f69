"""Options of the aggregation processor: defaults, accepted ranges, environment variables.

Precedence: an explicit argument, else the environment variable (read once, when the processor
is built), else the default. An invalid explicit value raises ``ValueError``; an invalid
environment variable is logged once as a warning and treated as unset.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

_logger = logging.getLogger(__name__)

ENV_BATCH_SIZE: Final = "OTEL_PYTHON_DBSQL_AGGREGATION_BATCH_SIZE"
ENV_FLUSH_INTERVAL: Final = "OTEL_PYTHON_DBSQL_AGGREGATION_FLUSH_INTERVAL"  # seconds
ENV_MAX_STATEMENTS: Final = "OTEL_PYTHON_DBSQL_AGGREGATION_MAX_STATEMENTS"
ENV_IDLE_TIMEOUT: Final = "OTEL_PYTHON_DBSQL_AGGREGATION_IDLE_TIMEOUT"  # seconds


@dataclass(frozen=True, slots=True)
class _IntOption:
    name: str
    default: int
    low: int
    high: int
    env: str | None


@dataclass(frozen=True, slots=True)
class _FloatOption:
    name: str
    default: float
    low: float
    high: float
    env: str | None


_BATCH = _IntOption("max_batch_size", 100, 1, 100_000, ENV_BATCH_SIZE)
_FLUSH = _FloatOption("flush_interval_s", 5.0, 0.001, 86_400.0, ENV_FLUSH_INTERVAL)
_MAX_LIVE = _IntOption("max_live_statements", 10_000, 1, 10_000_000, ENV_MAX_STATEMENTS)
_IDLE = _FloatOption("statement_idle_timeout_s", 1800.0, 0.001, 604_800.0, ENV_IDLE_TIMEOUT)
_QUEUE = _IntOption("max_queue_size", 2048, 1, 10_000_000, None)
_EXPORT_TIMEOUT = _FloatOption("export_timeout_s", 10.0, 0.001, 3600.0, None)

_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    """Resolved, validated options of a ``StatementAggregationProcessor``."""

    max_batch_size: int = _BATCH.default
    flush_interval_s: float = _FLUSH.default
    max_live_statements: int = _MAX_LIVE.default
    statement_idle_timeout_s: float = _IDLE.default
    max_queue_size: int = _QUEUE.default
    export_timeout_s: float = _EXPORT_TIMEOUT.default


def _range_text(low: float, high: float) -> str:
    return f"{low} <= value <= {high}"


def _check_int(option: _IntOption, value: object) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and option.low <= value <= option.high
    ):
        return value
    raise ValueError(
        f"{option.name} must be an int with {_range_text(option.low, option.high)}, got {value!r}"
    )


def _check_float(option: _FloatOption, value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number) and option.low <= number <= option.high:
            return number
    raise ValueError(
        f"{option.name} must be a number of seconds with"
        f" {_range_text(option.low, option.high)}, got {value!r}"
    )


def _warn_once(variable: str, raw: str, accepted: str) -> None:
    key = (variable, raw)
    if key in _warned:
        return
    _warned.add(key)
    _logger.warning(
        "Ignoring environment variable %s=%r: expected %s; using the default",
        variable,
        raw,
        accepted,
    )


def _env_int(option: _IntOption, environ: Mapping[str, str]) -> int | None:
    if option.env is None:
        return None
    raw = environ.get(option.env)
    if raw is None or not raw.strip():
        return None
    try:
        return _check_int(option, int(raw.strip()))
    except ValueError:
        _warn_once(option.env, raw, f"an integer with {_range_text(option.low, option.high)}")
        return None


def _env_float(option: _FloatOption, environ: Mapping[str, str]) -> float | None:
    if option.env is None:
        return None
    raw = environ.get(option.env)
    if raw is None or not raw.strip():
        return None
    try:
        return _check_float(option, float(raw.strip()))
    except ValueError:
        _warn_once(
            option.env, raw, f"a number of seconds with {_range_text(option.low, option.high)}"
        )
        return None


def _pick_int(option: _IntOption, explicit: int | None, environ: Mapping[str, str]) -> int:
    if explicit is not None:
        return _check_int(option, explicit)
    from_env = _env_int(option, environ)
    return option.default if from_env is None else from_env


def _pick_float(option: _FloatOption, explicit: float | None, environ: Mapping[str, str]) -> float:
    if explicit is not None:
        return _check_float(option, explicit)
    from_env = _env_float(option, environ)
    return option.default if from_env is None else from_env


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
    env = os.environ if environ is None else environ
    return AggregationConfig(
        max_batch_size=_pick_int(_BATCH, max_batch_size, env),
        flush_interval_s=_pick_float(_FLUSH, flush_interval_s, env),
        max_live_statements=_pick_int(_MAX_LIVE, max_live_statements, env),
        statement_idle_timeout_s=_pick_float(_IDLE, statement_idle_timeout_s, env),
        max_queue_size=_pick_int(_QUEUE, max_queue_size, env),
        export_timeout_s=_pick_float(_EXPORT_TIMEOUT, export_timeout_s, env),
    )
