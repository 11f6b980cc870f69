"""Fixtures of the export tests: fresh local warehouses and fast sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink, SinkConfig
from opentelemetry_instrumentation_dbsql.export.stats import ExportStats
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.export.helpers import FAST

SinkFactory = Callable[..., DatabricksTelemetrySink]


@pytest.fixture
def wh() -> Iterator[LocalWarehouse]:
    """A fresh warehouse: a fresh host for the driver's and the exporter's per-host state."""
    with LocalWarehouse() as warehouse:
        yield warehouse


@pytest.fixture
def make_sink() -> Iterator[SinkFactory]:
    """Build sinks with their own counters and no environment; all shut down afterwards."""
    sinks: list[DatabricksTelemetrySink] = []

    def factory(
        config: SinkConfig = FAST, environ: dict[str, str] | None = None, **kwargs: Any
    ) -> DatabricksTelemetrySink:
        sink = DatabricksTelemetrySink(
            config=config,
            stats=kwargs.pop("stats", None) or ExportStats(),
            environ={} if environ is None else environ,
            **kwargs,
        )
        sinks.append(sink)
        return sink

    yield factory
    for sink in sinks:
        sink.shutdown(1.0)


@pytest.fixture
def sink(make_sink: SinkFactory) -> DatabricksTelemetrySink:
    """A fast sink."""
    return make_sink()
