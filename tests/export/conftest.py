"""Fixtures of the export tests: fresh local warehouses and fast sinks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.export.sink import DatabricksTelemetrySink, SinkConfig
from opentelemetry_instrumentation_dbsql.export.stats import ExportStats
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.export.helpers import FAST

SinkFactory = Callable[..., DatabricksTelemetrySink]


def _reset(warehouse: LocalWarehouse) -> None:
    warehouse.telemetry.clear_faults()
    warehouse.telemetry.reset()
    warehouse.feature_flags.configure()
    warehouse.feature_flags.reset()


@pytest.fixture(scope="session")
def shared_export_warehouse() -> Iterator[LocalWarehouse]:
    """One warehouse for the export tests (stopping one costs about a second).

    Every sink has its own clients, breakers and flag cache, so tests need no fresh host
    unless they use the driver's own telemetry, whose state is process-global per host.
    """
    with LocalWarehouse() as warehouse:
        yield warehouse


@pytest.fixture
def wh(shared_export_warehouse: LocalWarehouse) -> Iterator[LocalWarehouse]:
    """The shared warehouse with its flag and telemetry endpoints reset."""
    _reset(shared_export_warehouse)
    yield shared_export_warehouse
    _reset(shared_export_warehouse)


@pytest.fixture(scope="session")
def _shared_tls_warehouse() -> Iterator[LocalWarehouse]:
    with LocalWarehouse(tls=True) as warehouse:
        yield warehouse


@pytest.fixture
def tls_wh(_shared_tls_warehouse: LocalWarehouse) -> Iterator[LocalWarehouse]:
    """A shared HTTPS warehouse with a self-signed certificate, endpoints reset."""
    _reset(_shared_tls_warehouse)
    yield _shared_tls_warehouse
    _reset(_shared_tls_warehouse)


@pytest.fixture
def fresh_wh() -> Iterator[LocalWarehouse]:
    """A warehouse of its own: a fresh host for the driver's process-global telemetry state."""
    with LocalWarehouse() as warehouse:
        yield warehouse


@pytest.fixture
def make_sink() -> Iterator[SinkFactory]:
    """Build sinks with their own counters; all shut down afterwards."""
    sinks: list[DatabricksTelemetrySink] = []

    def factory(config: SinkConfig = FAST, **kwargs: Any) -> DatabricksTelemetrySink:
        sink = DatabricksTelemetrySink(
            config=config, stats=kwargs.pop("stats", None) or ExportStats(), **kwargs
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


@pytest.fixture
def closing(wh: LocalWarehouse) -> Iterator[list[Any]]:
    """Connections to close before the warehouse stops, whatever the test's outcome."""
    connections: list[Any] = []
    yield connections
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.close()
