"""Whether a connection's telemetry is exported: the five-level opt-in priority.

Levels, first match wins: (1) force-enable -> on, no flag fetch; (2) enable false -> off, no
flag fetch; (3) enable true -> on when the server flag is on; (4) enable unset -> the server
flag decides; (5) flag unavailable or false -> off (resolved later, by the flag cache).

Inputs, most specific first: the ``databricks.sql.connect`` kwargs, the ``instrument()``
keywords, the environment variables (the last two resolved by ``options.py``). The most specific
input that says something decides; within one input the levels above apply (force before
enable). An explicit ``force_enable_telemetry=False`` also stops a less specific input from
forcing. ``enable`` is a tri-state: unset is not false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from opentelemetry_instrumentation_dbsql.options import (
    SPEC_BY_KEYWORD,
    InstrumentationOptions,
    InvalidValue,
    parse_tristate,
    warn_once,
)

KW_ENABLE = "enable_telemetry"
KW_FORCE = "force_enable_telemetry"
ENV_ENABLE = SPEC_BY_KEYWORD[KW_ENABLE].env_var
ENV_FORCE = SPEC_BY_KEYWORD[KW_FORCE].env_var


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


@dataclass(frozen=True, slots=True)
class Switches:
    """What one input says about ``force_enable_telemetry`` and ``enable_telemetry``; None where
    it says nothing."""

    force: bool | None = None
    enable: bool | None = None


_SILENT = Switches()


def _connect_value(connect_kwargs: Mapping[str, Any], key: str) -> bool | None:
    try:
        return parse_tristate(connect_kwargs.get(key))
    except InvalidValue:
        # Only the name: the value might be something the user did not mean to log.
        warn_once(
            f"connect:{key}",
            "Ignoring %s: not a boolean (expected true or false); treated as unset",
            key,
        )
        return None


def connect_switches(connect_kwargs: Mapping[str, Any] | None) -> Switches:
    """The ``databricks.sql.connect`` kwargs (SQLAlchemy URLs pass strings) as ``Switches``;
    an invalid value is warned about once, by name, and read as unset."""
    if not connect_kwargs:
        return _SILENT
    return Switches(
        _connect_value(connect_kwargs, KW_FORCE), _connect_value(connect_kwargs, KW_ENABLE)
    )


def option_switches(options: InstrumentationOptions | None) -> tuple[Switches, Switches]:
    """``(instrument() keywords, environment variables)`` of resolved options.

    ``force_enable_telemetry=False`` not from the environment is the default or an explicit
    keyword; either way it is read as unset here, and then no environment value of it exists
    to be blocked (a keyword hides its variable).
    """
    if options is None:
        return _SILENT, _SILENT
    env = options.from_environment
    force, enable = options.force_enable_telemetry, options.enable_telemetry
    keywords = Switches(
        force=True if force and KW_FORCE not in env else None,
        enable=None if KW_ENABLE in env else enable,
    )
    environment = Switches(
        force=force if KW_FORCE in env else None,
        enable=enable if KW_ENABLE in env else None,
    )
    return keywords, environment


def decide(
    connect: Switches, keywords: Switches = _SILENT, environment: Switches = _SILENT
) -> OptInDecision:
    """Apply the priority to the three inputs, most specific first. Pure."""
    sources = (
        ("connect", connect, KW_FORCE, KW_ENABLE),
        ("options", keywords, KW_FORCE, KW_ENABLE),
        ("env", environment, ENV_FORCE, ENV_ENABLE),
    )
    force_blocked = False
    for origin, switches, force_key, enable_key in sources:
        if switches.force is True and not force_blocked:
            return OptInDecision(Decision.FORCE_ON, f"{origin}:{force_key}", 1)
        if switches.force is False:
            force_blocked = True
        if switches.enable is False:
            return OptInDecision(Decision.OFF, f"{origin}:{enable_key}", 2)
        if switches.enable is True:
            return OptInDecision(Decision.FLAG_DECIDES, f"{origin}:{enable_key}", 3)
    return OptInDecision(Decision.FLAG_DECIDES, "default", 4)


def decide_connection(
    connect_kwargs: Mapping[str, Any] | None, options: InstrumentationOptions | None
) -> OptInDecision:
    """The decision for one connection: its ``connect()`` kwargs over the resolved options."""
    return decide(connect_switches(connect_kwargs), *option_switches(options))
