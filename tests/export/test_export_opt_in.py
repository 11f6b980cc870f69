"""The five-level opt-in priority as a pure function, over every input combination."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.export import opt_in
from opentelemetry_instrumentation_dbsql.export.opt_in import Decision, decide

VALUES: list[Any] = [None, True, False]
ENV_TEXT = {None: None, True: "true", False: "false"}


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


def test_every_combination() -> None:
    """All 729 combinations of (force, enable) over the three inputs."""
    pairs = list(itertools.product(VALUES, VALUES))
    checked = 0
    for kw, opts, env in itertools.product(pairs, pairs, pairs):
        connect_kwargs = {"force_enable_telemetry": kw[0], "enable_telemetry": kw[1]}
        options = {"force_enable_telemetry": opts[0], "enable_telemetry": opts[1]}
        environ = {
            k: v
            for k, v in {
                opt_in.ENV_FORCE: ENV_TEXT[env[0]],
                opt_in.ENV_ENABLE: ENV_TEXT[env[1]],
            }.items()
            if v is not None
        }
        got = decide(connect_kwargs, options, environ)
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


def test_the_five_levels_named() -> None:
    assert decide({"force_enable_telemetry": True, "enable_telemetry": False}, None, {}).level == 1
    assert decide({"enable_telemetry": False}, None, {}).decision is Decision.OFF
    explicit = decide({"enable_telemetry": True}, None, {})
    assert (explicit.decision, explicit.level) == (Decision.FLAG_DECIDES, 3)
    unset = decide({}, None, {})
    assert (unset.decision, unset.level, unset.decided_by) == (Decision.FLAG_DECIDES, 4, "default")


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
    """SQLAlchemy URLs pass connect arguments as strings."""
    assert opt_in.parse_tristate(raw) is parsed
    result = decide({"enable_telemetry": raw}, None, {})
    if parsed is None:
        assert result.decided_by == "default"
    else:
        assert result.decision is (Decision.FLAG_DECIDES if parsed else Decision.OFF)


def test_invalid_env_warns_once_naming_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    opt_in._reset_warnings()
    environ = {opt_in.ENV_ENABLE: "maybe", opt_in.ENV_FORCE: "sure-secret-value"}
    with caplog.at_level(logging.WARNING, logger=opt_in.__name__):
        for _ in range(5):
            result = decide(None, None, environ)
    assert result.decided_by == "default"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert any(opt_in.ENV_ENABLE in m for m in messages)
    assert any(opt_in.ENV_FORCE in m for m in messages)
    assert not any("sure-secret-value" in m for m in messages)


def test_invalid_kwarg_is_unset_and_the_next_input_decides() -> None:
    opt_in._reset_warnings()
    result = decide({"enable_telemetry": "nope"}, {"enable_telemetry": False}, {})
    assert (result.decision, result.decided_by) == (Decision.OFF, "options:enable_telemetry")
