"""Fixtures for the local warehouse's own tests: a fresh warehouse and driver connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import databricks.sql
import pytest

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

# Connections that are expected to fail should fail fast instead of retrying for minutes.
FAST_FAIL = {"_retry_stop_after_attempts_count": 1, "_retry_stop_after_attempts_duration": 2.0}


@pytest.fixture
def warehouse() -> Iterator[LocalWarehouse]:
    """A fresh warehouse per test (a fresh host: no driver caches shared between tests)."""
    with LocalWarehouse() as wh:
        yield wh


@pytest.fixture
def connect(warehouse: LocalWarehouse) -> Iterator[Callable[..., Any]]:
    """Open real driver connections to ``warehouse``; all are closed after the test."""
    opened: list[Any] = []

    def open_connection(**kwargs: Any) -> Any:
        connection = databricks.sql.connect(**warehouse.connect_kwargs(**kwargs))
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        if connection.open:
            connection.close()
