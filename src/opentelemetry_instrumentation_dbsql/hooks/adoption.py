"""The instrumentation state of a driver connection: made at connect, or adopted for a
connection opened before ``instrument()``, and the per-call check whether to record."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.driver_facts import read_facts
from opentelemetry_instrumentation_dbsql.endpoint import Endpoint
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.runtime import Runtime, active_runtime
from opentelemetry_instrumentation_dbsql.spans import AttributeValue
from opentelemetry_instrumentation_dbsql.statement import CONNECTION_STATE_ATTR, ConnectionState


def base_attributes(endpoint: Endpoint) -> dict[str, AttributeValue]:
    """The attributes every span and metric of a connection carries."""
    attributes: dict[str, AttributeValue] = {
        attr.DB_SYSTEM_NAME: attr.DB_SYSTEM_VALUE,
        attr.SERVER_ADDRESS: endpoint.address,
        attr.SERVER_PORT: endpoint.port,
    }
    if endpoint.namespace:
        attributes[attr.DB_NAMESPACE] = endpoint.namespace
    return attributes


def make_state(runtime: Runtime, endpoint: Endpoint, session_id: str | None) -> ConnectionState:
    """The state an instrumented connection keeps."""
    # Metrics carry the same low-cardinality connection attributes as spans.
    metric_attributes = base_attributes(endpoint)
    return ConnectionState(
        runtime=runtime,
        endpoint=endpoint,
        session_id=session_id,
        base_attributes=base_attributes(endpoint),
        metric_attributes=metric_attributes,
        metric_key=tuple(sorted(metric_attributes.items())),
    )


def adopt_connection(connection: Any, runtime: Runtime) -> ConnectionState | None:
    """Instrument a connection that was opened before the instrumentation started."""
    try:
        facts = read_facts(connection, {})
        state = make_state(runtime, facts.endpoint, facts.session_id)
        setattr(connection, CONNECTION_STATE_ATTR, state)
        return state
    except Exception as exc:
        log_failure_once("adopt-connection", exc)
        return None


def connection_state(connection: object) -> ConnectionState | None:
    """The instrumentation state of a driver connection, adopting one opened before
    ``instrument()`` when the global instrumentation is on."""
    if connection is None:
        return None
    try:
        state = connection.__dict__.get(CONNECTION_STATE_ATTR)
    except AttributeError:
        return None
    if state is None or (state.runtime.global_enabled and state.runtime is not active_runtime()):
        # Not seen yet, or adopted by an earlier instrument() that has since been undone.
        runtime = active_runtime()
        if runtime is None:
            return None
        state = adopt_connection(connection, runtime)
        if state is None:
            return None
    if not state.enabled:
        return None
    return state


def export_active(state: ConnectionState) -> bool:
    """Whether Databricks telemetry may be exported for this connection."""
    handle = state.export_handle
    if handle is None:
        return False
    try:
        return handle.may_export
    except Exception:
        return False


def should_record(state: ConnectionState | None) -> bool:
    """Instrumentation on for this connection, somebody listening, and not suppressed."""
    # Cheapest first: with nobody listening (no SDK, no export) this is the whole cost of an
    # instrumented call.
    if state is None or not state.runtime.wants(export_active(state)):
        return False
    return is_instrumentation_enabled()
