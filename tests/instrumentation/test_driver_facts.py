"""Spans and Databricks records describe a connection with the same facts.

The real driver connects to the local warehouse with each kind of authentication it can use
there; the CREATE_SESSION span and every exported event must name the same auth mechanism and
backend. The oldest connector release keeps its facts elsewhere (no ``Connection.session``),
so the same test run there checks that layout too.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import databricks.sql
import pytest
from databricks.sql.auth.authenticators import CredentialsProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.driver_facts import read_facts
from opentelemetry_instrumentation_dbsql.export.connection_params import connection_params
from opentelemetry_instrumentation_dbsql.export.wire_format import mode_for_backend
from opentelemetry_instrumentation_dbsql.statement import CONNECTION_STATE_ATTR
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.conftest import every_backend
from tests.export.helpers import wait_for


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its package is missing too
        return False


# Releases before 4.1 keep host, port and auth on the connection and forget the http path,
# catalog and schema once connected.
LEGACY_LAYOUT = not _has_module("databricks.sql.session")


class BearerCredentials(CredentialsProvider):
    """An application's own credentials provider: a fixed bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_type(self) -> str:
        return "custom"

    def __call__(self, *args: Any, **kwargs: Any) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Bearer {self.token}"}


def _access_token(warehouse: LocalWarehouse) -> dict[str, Any]:
    return {}  # connect_kwargs() passes the warehouse's token as access_token


def _credentials_provider(warehouse: LocalWarehouse) -> dict[str, Any]:
    # Taken before the access token, which connect_kwargs() passes too.
    return {"credentials_provider": BearerCredentials(warehouse.access_token)}


@pytest.fixture
def spans() -> Iterator[tuple[DbsqlInstrumentor, InMemorySpanExporter]]:
    """The instrumentor with the Databricks export (no record sink) and in-memory spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DbsqlInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # a singleton: start uninstrumented
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor, exporter
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    provider.shutdown()


def _create_session_span(exporter: InMemorySpanExporter, session_id: str) -> ReadableSpan:
    (span,) = [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get(attr.SPAN_ROLE) == attr.ROLE_CREATE_SESSION
        and (s.attributes or {}).get(attr.SESSION_ID) == session_id
    ]
    return span


@every_backend
@pytest.mark.parametrize(
    ("auth", "mechanism"),
    [(_access_token, "PAT"), (_credentials_provider, "OTHER")],
    ids=["access_token", "credentials_provider"],
)
def test_span_and_records_name_the_same_auth_mechanism(
    warehouse: LocalWarehouse,
    spans: tuple[DbsqlInstrumentor, InMemorySpanExporter],
    auth: Callable[[LocalWarehouse], dict[str, Any]],
    mechanism: str,
    backend: str,
) -> None:
    if backend == "kernel":
        mechanism = "PAT"  # given a token too, the kernel authenticates with the token
    instrumentor, exporter = spans
    kwargs = warehouse.connect_kwargs(
        force_enable_telemetry=True,  # exported whatever the flag says
        _retry_stop_after_attempts_count=1,
        **auth(warehouse),
    )
    with databricks.sql.connect(**kwargs) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 AS n")
            cursor.fetchall()
        session_id = str(conn.get_session_id_hex())
    instrumentor.uninstrument()  # flushes

    def events() -> list[dict[str, Any]]:
        return [e for e in warehouse.telemetry.events() if e.get("session_id") == session_id]

    # CREATE_SESSION, the statement, DELETE_SESSION.
    assert wait_for(lambda: len(events()) >= 3)
    span = _create_session_span(exporter, session_id)
    attributes = span.attributes or {}
    assert attributes.get(attr.AUTH_MECH) == mechanism
    params = [e["driver_connection_params"] for e in events()]
    assert {p.get("auth_mech") for p in params} == {mechanism}
    assert attributes[attr.BACKEND] == backend
    assert {p.get("mode") for p in params} == {mode_for_backend(backend)}
    assert {p.get("mode") for p in params} == {"THRIFT" if backend == "thrift" else "SEA"}
    assert {p.get("http_path") for p in params} == {attributes[attr.HTTP_PATH]}


@every_backend
def test_a_connection_opened_before_instrumenting_has_the_same_endpoint(
    warehouse: LocalWarehouse, backend: str
) -> None:
    kwargs = warehouse.connect_kwargs(_retry_stop_after_attempts_count=1)
    early = databricks.sql.connect(**kwargs)
    instrumentor = DbsqlInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # a singleton: start uninstrumented
        instrumentor.uninstrument()
    try:
        instrumentor.instrument_connection(early)
        adopted = getattr(early, CONNECTION_STATE_ATTR).endpoint
        instrumentor.instrument()
        with databricks.sql.connect(**kwargs) as late:
            endpoint = getattr(late, CONNECTION_STATE_ATTR).endpoint
        assert (adopted.address, adopted.port, adopted.backend) == (
            endpoint.address,
            endpoint.port,
            backend,
        )
        if not LEGACY_LAYOUT:
            assert adopted == endpoint
    finally:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        early.close()


def test_no_auth_provider_is_no_mechanism() -> None:
    # The kernel backend without an access token leaves the session without an auth provider
    # (the kernel authenticates itself); the connector then reports no mechanism.
    session = SimpleNamespace(
        host="adb-1.2.azuredatabricks.net",
        port=443,
        http_path="/sql/1.0/warehouses/abc",
        use_kernel=True,
        auth_provider=None,
    )
    facts = read_facts(SimpleNamespace(session=session), {})
    assert facts.auth_mechanism is None
    params = connection_params(facts)
    assert params.auth_mech is None
    assert facts.auth_flow is None
    # Spans name the kernel; on the wire it is SEA, the protocol it talks (as it says itself).
    assert facts.endpoint.backend == "kernel"
    assert params.mode == "SEA"
