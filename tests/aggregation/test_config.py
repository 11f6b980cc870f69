"""Options of the processor: explicit values, environment variables (parsed by ``options.py``),
validation."""

from __future__ import annotations

import logging

import pytest

from opentelemetry_instrumentation_dbsql import options
from opentelemetry_instrumentation_dbsql.aggregation import (
    ENV_BATCH_SIZE,
    ENV_FLUSH_INTERVAL,
    ENV_IDLE_TIMEOUT,
    ENV_MAX_STATEMENTS,
    AggregationConfig,
    CollectingSink,
    StatementAggregationProcessor,
)
from opentelemetry_instrumentation_dbsql.aggregation.config import resolve_config
from opentelemetry_instrumentation_dbsql.options import resolve_options

ENV_NAMES = (ENV_BATCH_SIZE, ENV_FLUSH_INTERVAL, ENV_IDLE_TIMEOUT, ENV_MAX_STATEMENTS)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    options._reset_warnings()


def test_defaults() -> None:
    assert resolve_config() == AggregationConfig(
        max_batch_size=100,
        flush_interval_s=5.0,
        max_live_statements=10_000,
        statement_idle_timeout_s=1800.0,
        max_queue_size=2048,
        export_timeout_s=10.0,
    )


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BATCH_SIZE, "50")
    monkeypatch.setenv(ENV_FLUSH_INTERVAL, "2.5")
    monkeypatch.setenv(ENV_MAX_STATEMENTS, " 300 ")
    monkeypatch.setenv(ENV_IDLE_TIMEOUT, "60")
    processor = StatementAggregationProcessor(CollectingSink())
    try:
        assert processor.config.max_batch_size == 50
        assert processor.config.flush_interval_s == 2.5
        assert processor.config.max_live_statements == 300
        assert processor.config.statement_idle_timeout_s == 60.0
    finally:
        processor.shutdown_with_timeout(1.0)


def test_explicit_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BATCH_SIZE, "50")
    assert resolve_config(max_batch_size=7).max_batch_size == 7


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_batch_size", 0),
        ("max_batch_size", 1.5),
        ("max_batch_size", True),
        ("max_batch_size", "10"),
        ("flush_interval_s", 0),
        ("flush_interval_s", -1.0),
        ("flush_interval_s", float("nan")),
        ("flush_interval_s", float("inf")),
        ("max_live_statements", 0),
        ("statement_idle_timeout_s", 0.0),
        ("max_queue_size", -3),
        ("export_timeout_s", 0),
    ],
)
def test_invalid_explicit_values_raise_with_name_and_range(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option) as info:
        StatementAggregationProcessor(CollectingSink(), **{option: value})  # type: ignore[arg-type]
    assert "<= value <=" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        (ENV_BATCH_SIZE, "lots"),
        (ENV_BATCH_SIZE, "0"),
        (ENV_FLUSH_INTERVAL, "-1"),
        (ENV_FLUSH_INTERVAL, "nan"),
        (ENV_MAX_STATEMENTS, "1.5"),
        (ENV_IDLE_TIMEOUT, "forever"),
    ],
)
def test_invalid_environment_value_warns_once_and_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, raw: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with caplog.at_level(logging.WARNING):
        first = resolve_config()
        second = resolve_config()
        # instrument() resolves the same variable: still the one warning.
        resolve_options({})
    assert first == second == AggregationConfig()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert variable in warnings[0].getMessage()


def test_shares_the_instrument_options_ranges_and_defaults() -> None:
    """The four shared options accept what instrument() accepts, and default alike."""
    shared = resolve_options({}, {})
    assert resolve_config(environ={}) == AggregationConfig(
        max_batch_size=shared.aggregation_batch_size,
        flush_interval_s=shared.aggregation_flush_interval,
        max_live_statements=shared.aggregation_max_statements,
        statement_idle_timeout_s=shared.aggregation_idle_timeout,
    )
    edges = {
        ENV_BATCH_SIZE: ("100000", "100001"),
        ENV_FLUSH_INTERVAL: ("0.001", "0.0009"),
        ENV_MAX_STATEMENTS: ("10000000", "10000001"),
        ENV_IDLE_TIMEOUT: ("604800", "604800.5"),
    }
    for variable, (edge, beyond) in edges.items():
        assert resolve_config(environ={variable: edge}) != AggregationConfig(), variable
        assert resolve_config(environ={variable: beyond}) == AggregationConfig(), variable
        with pytest.raises(ValueError):
            resolve_options({_keyword(variable): beyond}, {})


def _keyword(variable: str) -> str:
    (spec,) = [s for s in options.OPTION_SPECS if s.env_var == variable]
    return spec.keyword
