"""The connector's SEA backend (``use_sea=True``, REST Statement Execution API) against the local
warehouse, which serves the Thrift protocol only.

Connecting with ``use_sea=True`` gets as far as the SEA session request
(``POST /api/2.0/sql/sessions``); the warehouse answers 404 and the driver raises
``RequestError``. So no SEA statement can run here: what is tested is that the instrumentation
leaves the SEA code path's failure exactly as the driver raises it, and records it on a
CREATE_SESSION span with ``databricks.backend = "sea"``.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Iterator
from typing import Any

import databricks.sql
import pytest
import wrapt
from databricks.sql.client import Connection
from databricks.sql.exc import RequestError
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.conftest import Telemetry, make_telemetry

SESSION_REQUEST = ("POST", "/api/2.0/sql/sessions")

# The driver's Connection.__del__ trips over the half-built connection of a failed connect
# (AttributeError: no attribute 'session'), with or without instrumentation.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _sea_kwargs(warehouse: LocalWarehouse) -> dict[str, Any]:
    kwargs = warehouse.connect_kwargs(use_sea=True)
    # SEA builds its base URL as "<server_hostname>:<_port>": the origin without the port.
    kwargs["server_hostname"] = f"http://{warehouse.host}"
    return kwargs


def _connect_error(warehouse: LocalWarehouse) -> BaseException:
    with pytest.raises(Exception) as caught:
        databricks.sql.connect(**_sea_kwargs(warehouse))
    gc.collect()  # the driver's __del__ noise happens here, inside this test
    return caught.value


def _innermost_frame(exc: BaseException) -> str:
    return traceback.extract_tb(exc.__traceback__)[-1].filename


def _shape(exc: BaseException) -> tuple[Any, ...]:
    """What a caller can see of a driver exception."""
    cause = exc.__cause__
    return (
        type(exc),
        str(exc),
        exc.args[:1],
        type(cause) if cause is not None else None,
        getattr(exc, "context", None),
        _innermost_frame(exc),
    )


@pytest.fixture
def uninstrumented() -> Iterator[None]:
    init = vars(Connection)["__init__"]
    assert not isinstance(init, wrapt.FunctionWrapper), "driver still instrumented"
    yield


def test_sea_session_creation_is_not_served_by_the_local_warehouse(
    warehouse: LocalWarehouse, uninstrumented: None
) -> None:
    error = _connect_error(warehouse)
    assert isinstance(error, RequestError)
    assert "404" in str(error)
    requests = [(r.method, r.path, r.status) for r in warehouse.http_requests]
    assert requests == [(*SESSION_REQUEST, 404)]
    assert warehouse.rpcs == []  # no Thrift call: the SEA path was taken


def test_instrumentation_passes_the_sea_error_through_and_records_it(
    warehouse: LocalWarehouse, uninstrumented: None
) -> None:
    baseline = _connect_error(warehouse)
    warehouse.reset_records()

    telemetry: Telemetry = make_telemetry()
    try:
        assert isinstance(vars(Connection)["__init__"], wrapt.FunctionWrapper)
        instrumented = _connect_error(warehouse)
    finally:
        telemetry.instrumentor.uninstrument()
        telemetry.tracer_provider.shutdown()

    # The very failure the driver raises without instrumentation, raised from driver code.
    assert _shape(instrumented) == _shape(baseline)
    assert "opentelemetry_instrumentation_dbsql" not in _innermost_frame(instrumented)
    assert [(r.method, r.path) for r in warehouse.http_requests] == [SESSION_REQUEST]

    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.ERROR
    assert attributes["databricks.span.role"] == "CREATE_SESSION"
    assert attributes["databricks.backend"] == "sea"
    assert attributes["error.type"] == "databricks.sql.exc.RequestError"
    assert attributes["server.address"] == warehouse.host
    assert attributes["server.port"] == warehouse.port
    assert attributes["databricks.warehouse.id"] == warehouse.warehouse_id
    assert "databricks.session.id" not in attributes
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"] == "databricks.sql.exc.RequestError"
    # The failed connect still counts in the connection-time histogram, with its error type.
    (point,) = telemetry.metrics()["db.client.connection.create_time"]
    assert point.count == 1
    assert point.attributes["error.type"] == "databricks.sql.exc.RequestError"
    assert "db.client.connection.count" not in telemetry.metrics()


def test_thrift_is_the_backend_of_a_plain_connect(
    warehouse: LocalWarehouse, telemetry: Telemetry
) -> None:
    """For contrast: the default backend, which the rest of the suite covers, is Thrift."""
    with databricks.sql.connect(**warehouse.connect_kwargs()) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchall()[0][0] == 1
    (span,) = telemetry.spans_by_role("CREATE_SESSION")
    assert dict(span.attributes or {})["databricks.backend"] == "thrift"
    assert "OpenSession" in warehouse.rpc_names()
