"""The five-level opt-in priority over every input combination, from the values as given."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql import options
from opentelemetry_instrumentation_dbsql.export.opt_in import (
    ENV_ENABLE,
    ENV_FORCE,
    Decision,
    Switches,
    decide,
    decide_connection,
)
from opentelemetry_instrumentation_dbsql.options import resolve_options

VALUES: list[Any] = [None, True, False]
ENV_TEXT = {None: None, True: "true", False: "false"}


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    options._reset_warnings()


def expected(
    sources: list[tuple[str, Any, Any]],
) -> tuple[Decision, str]:
    """Oracle: the documented rule, written as a table walk."""
    blocked = False
    for origin, force, enable in sources:
        if force is True and not blocked:
            return Decision.FORCE_ON, f"{origin}:force"
        blocked = blocked or force is False
        if enable is not None:
            return (Decision.FLAG_DECIDES if enable else Decision.OFF), f"{origin}:enable"
    return Decision.FLAG_DECIDES, "default"


def given(force: Any, enable: Any) -> dict[str, Any]:
    """The keyword arguments that say ``force`` and ``enable`` (None: not passed)."""
    pairs = {"force_enable_telemetry": force, "enable_telemetry": enable}
    return {k: v for k, v in pairs.items() if v is not None}


def test_every_combination() -> None:
    """All 729 combinations of (force, enable) over the three inputs, each value parsed as a
    user gives it: connect() kwargs, instrument() keywords and environment variables."""
    pairs = list(itertools.product(VALUES, VALUES))
    checked = 0
    for kw, opts, env in itertools.product(pairs, pairs, pairs):
        environ = {
            k: v
            for k, v in {ENV_FORCE: ENV_TEXT[env[0]], ENV_ENABLE: ENV_TEXT[env[1]]}.items()
            if v is not None
        }
        got = decide_connection(given(*kw), resolve_options(given(*opts), environ))
        want, origin = expected(
            [("connect", kw[0], kw[1]), ("options", opts[0], opts[1]), ("env", env[0], env[1])]
        )
        case = f"connect={kw} options={opts} env={env}: {got}"
        assert got.decision is want, case
        if origin == "default":
            assert (got.decided_by, got.level) == ("default", 4), case
        else:
            where, which = origin.split(":")
            assert got.decided_by.startswith(where + ":"), case
            assert ("FORCE" in got.decided_by.upper()) == (which == "force"), case
            assert got.level == {Decision.FORCE_ON: 1, Decision.OFF: 2}.get(want, 3), case
        assert got.asks_server == (want is Decision.FLAG_DECIDES), case
        checked += 1
    assert checked == 729


def test_the_pure_rule_over_every_switch_combination() -> None:
    """``decide`` itself, on values already parsed: an explicit force=False at any input
    blocks a force from a less specific one."""
    switches = [Switches(force, enable) for force, enable in itertools.product(VALUES, VALUES)]
    for connect, keywords, environment in itertools.product(switches, switches, switches):
        got = decide(connect, keywords, environment)
        want, _ = expected(
            [
                ("connect", connect.force, connect.enable),
                ("options", keywords.force, keywords.enable),
                ("env", environment.force, environment.enable),
            ]
        )
        assert got.decision is want, (connect, keywords, environment)


def test_the_five_levels_named() -> None:
    forced = decide_connection({"force_enable_telemetry": True, "enable_telemetry": False}, None)
    assert forced.level == 1
    assert decide_connection({"enable_telemetry": False}, None).decision is Decision.OFF
    explicit = decide_connection({"enable_telemetry": True}, None)
    assert (explicit.decision, explicit.level) == (Decision.FLAG_DECIDES, 3)
    unset = decide_connection({}, None)
    assert (unset.decision, unset.level, unset.decided_by) == (Decision.FLAG_DECIDES, 4, "default")


def test_decided_by_names_the_keyword_or_the_variable() -> None:
    by_keyword = decide_connection({}, resolve_options({"enable_telemetry": False}, {}))
    assert by_keyword.decided_by == "options:enable_telemetry"
    by_env = decide_connection({}, resolve_options({}, {ENV_FORCE: "on"}))
    assert by_env.decided_by == f"env:{ENV_FORCE}"
    # A keyword hides its variable; the other variable still counts, below the keyword.
    mixed = resolve_options({"enable_telemetry": False}, {ENV_FORCE: "true", ENV_ENABLE: "true"})
    assert decide_connection({}, mixed).decided_by == "options:enable_telemetry"
    blocked = resolve_options({"force_enable_telemetry": False}, {ENV_FORCE: "true"})
    assert decide_connection({}, blocked).decided_by == "default"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("true", True),
        ("TRUE", True),
        (" false ", False),
        ("False", False),
        ("1", True),
        ("0", False),
        (True, True),
        (False, False),
        (None, None),
        ("", None),
    ],
)
def test_sqlalchemy_strings(raw: Any, parsed: bool | None) -> None:
    """SQLAlchemy URLs pass connect arguments as strings; they parse as the options do."""
    assert options.parse_tristate(raw) is parsed
    result = decide_connection({"enable_telemetry": raw}, None)
    if parsed is None:
        assert result.decided_by == "default"
    else:
        assert result.decision is (Decision.FLAG_DECIDES if parsed else Decision.OFF)


def test_invalid_env_warns_once_naming_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    environ = {ENV_ENABLE: "maybe", ENV_FORCE: "sure"}
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            result = decide_connection(None, resolve_options({}, environ))
    assert result.decided_by == "default"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert any(ENV_ENABLE in m for m in messages)
    assert any(ENV_FORCE in m for m in messages)


def test_invalid_kwarg_is_unset_named_once_and_the_next_input_decides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keywords = resolve_options({"enable_telemetry": False}, {})
    with caplog.at_level(logging.WARNING):
        for value in ("nope", "sure-secret-value", "nope"):
            result = decide_connection({"enable_telemetry": value}, keywords)
            assert (result.decision, result.decided_by) == (
                Decision.OFF,
                "options:enable_telemetry",
            )
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1
    assert "enable_telemetry" in messages[0]
    assert "secret" not in messages[0]  # only the name: a URL may carry more than meant
