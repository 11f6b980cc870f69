"""Whether a connection's telemetry is exported: the five-level opt-in priority.

Levels, first match wins: (1) force-enable -> on, no flag fetch; (2) enable false -> off, no
flag fetch; (3) enable true -> on when the server flag is on; (4) enable unset -> the server
flag decides; (5) flag unavailable or false -> off (resolved later, by the flag cache).

Inputs, most specific first: the ``databricks.sql.connect`` kwargs, the ``instrument()``
options, the environment. The most specific input that says something decides; within one
input the levels above apply (force before enable). An explicit ``force_enable_telemetry=False``
also stops a less specific input from forcing. ``enable`` is a tri-state: unset is not false.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

logger = logging.getLogger(__name__)

ENV_ENABLE = "OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY"
ENV_FORCE = "OTEL_PYTHON_DBSQL_FORCE_ENABLE_TELEMETRY"
KW_ENABLE = "enable_telemetry"
KW_FORCE = "force_enable_telemetry"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


class Decision(str, Enum):
    """The outcome for one connection."""

    FORCE_ON = "force_on"
    OFF = "off"
    FLAG_DECIDES = "flag_decides"


@dataclass(frozen=True, slots=True)
class OptInDecision:
    """A decision, the input that made it (``"connect:enable_telemetry"``, ..., ``"default"``),
    and the priority level (1-4) that applied."""

    decision: Decision
    decided_by: str
    level: int

    @property
    def asks_server(self) -> bool:
        """True when the server flag must be fetched."""
        return self.decision is Decision.FLAG_DECIDES


class InvalidBoolean(ValueError):
    """A value that is neither a bool nor a recognised boolean string."""


def parse_tristate(value: Any) -> bool | None:
    """``True``/``False``/``None`` from a bool, None, or a boolean string; raises otherwise."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "":
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidBoolean(value)


def _warn_once(name: str, value: Any) -> None:
    key = (name, repr(value)[:64])
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    # Only the name: the value might be something the user did not mean to log.
    logger.warning("Ignoring %s: not a boolean (expected true or false); treated as unset", name)


def _reset_warnings() -> None:
    """Forget which invalid values were warned about (tests)."""
    with _warned_lock:
        _warned.clear()


def _read(source: Mapping[str, Any] | None, key: str, label: str) -> bool | None:
    if source is None:
        return None
    try:
        return parse_tristate(source.get(key))
    except InvalidBoolean:
        _warn_once(label, source.get(key))
        return None


def decide(
    connect_kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None = None,
) -> OptInDecision:
    """Apply the priority to the three inputs. Pure apart from the warning on invalid values."""
    env = os.environ if environ is None else environ
    sources: list[tuple[str, bool | None, bool | None]] = [
        (
            "connect",
            _read(connect_kwargs, KW_FORCE, KW_FORCE),
            _read(connect_kwargs, KW_ENABLE, KW_ENABLE),
        ),
        (
            "options",
            _read(options, KW_FORCE, KW_FORCE),
            _read(options, KW_ENABLE, KW_ENABLE),
        ),
        ("env", _read(env, ENV_FORCE, ENV_FORCE), _read(env, ENV_ENABLE, ENV_ENABLE)),
    ]
    force_blocked = False
    for origin, force, enable in sources:
        force_key = ENV_FORCE if origin == "env" else KW_FORCE
        enable_key = ENV_ENABLE if origin == "env" else KW_ENABLE
        if force is True and not force_blocked:
            return OptInDecision(Decision.FORCE_ON, f"{origin}:{force_key}", 1)
        if force is False:
            force_blocked = True
        if enable is False:
            return OptInDecision(Decision.OFF, f"{origin}:{enable_key}", 2)
        if enable is True:
            return OptInDecision(Decision.FLAG_DECIDES, f"{origin}:{enable_key}", 3)
    return OptInDecision(Decision.FLAG_DECIDES, "default", 4)
