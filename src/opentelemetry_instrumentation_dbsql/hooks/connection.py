"""Wrappers of ``databricks.sql.client.Connection``: open, close, commit, rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.driver_facts import connect_endpoint, read_facts
from opentelemetry_instrumentation_dbsql.endpoint import Endpoint
from opentelemetry_instrumentation_dbsql.hooks.adoption import (
    base_attributes,
    connection_state,
    make_state,
    should_record,
)
from opentelemetry_instrumentation_dbsql.hooks.context import SUPPRESS_HTTP_KEY
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.runtime import Runtime, active_runtime
from opentelemetry_instrumentation_dbsql.spans import AttributeValue, SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import (
    CONNECTION_STATE_ATTR,
    ConnectionState,
    closing_connection,
)

Wrapped = Callable[..., Any]


def connection_init(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``Connection.__init__``: the CREATE_SESSION span, state and Databricks export set-up."""
    runtime = active_runtime()
    if runtime is None or not is_instrumentation_enabled():
        return wrapped(*args, **kwargs)
    try:
        endpoint = connect_endpoint(args, kwargs)
        exporter = runtime.exporter
        call_kwargs = kwargs
        if exporter is not None:
            override = exporter.native_telemetry_kwargs(kwargs, runtime.options)
            if override:
                call_kwargs = dict(kwargs)
                call_kwargs.update(override)
        attributes = base_attributes(endpoint)
        attributes[attr.SPAN_ROLE] = attr.ROLE_CREATE_SESSION
        attributes[attr.DB_OPERATION_NAME] = "connect"
        attributes[attr.HTTP_PATH] = endpoint.http_path
        attributes[attr.BACKEND] = endpoint.backend
        if endpoint.warehouse_id:
            attributes[attr.WAREHOUSE_ID] = endpoint.warehouse_id
        if endpoint.catalog:
            attributes[attr.CATALOG] = endpoint.catalog
        if endpoint.schema:
            attributes[attr.SCHEMA] = endpoint.schema
        recorder = SpanRecorder(runtime, f"connect {endpoint.address}", attributes)
        ctx = recorder.context()
        if runtime.options.suppress_http_spans:
            ctx = otel_context.set_value(SUPPRESS_HTTP_KEY, True, ctx)
        token = otel_context.attach(ctx)
    except Exception as exc:
        log_failure_once("connect-begin", exc)
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **call_kwargs)
    except BaseException as exc:
        otel_context.detach(token)
        _connect_failed(runtime, recorder, endpoint, exc)
        raise
    otel_context.detach(token)
    _connect_ok(runtime, recorder, endpoint, instance, kwargs)
    return result


def _connect_ok(
    runtime: Runtime,
    recorder: SpanRecorder,
    endpoint: Endpoint,
    connection: Any,
    connect_kwargs: Mapping[str, Any],
) -> None:
    try:
        end_ns = time.time_ns()
        # Read once: the span and the Databricks records take the same facts.
        facts = read_facts(connection, connect_kwargs, endpoint)
        state = make_state(runtime, facts.endpoint, facts.session_id)
        recorder.set(attr.SESSION_ID, facts.session_id)
        recorder.set(attr.AUTH_MECH, facts.auth_mechanism)
        # The session's backend: the connector may open another one than the arguments asked.
        recorder.set(attr.BACKEND, facts.endpoint.backend)
        if runtime.exporter is not None:
            try:
                handle = runtime.exporter.register_connection(
                    connection, connect_kwargs, runtime.options, facts=facts
                )
                state.export_handle = handle
                if handle.export_possible:
                    runtime.want_processor()
            except Exception as exc:
                log_failure_once("export-register", exc)
        setattr(connection, CONNECTION_STATE_ATTR, state)
        recorder.end(end_ns)
        instruments = runtime.instruments
        instruments.connection_create_time.record(
            (end_ns - recorder.start_ns) / 1e9, state.metric_attributes
        )
        instruments.connection_count.add(1, _count_attributes(state))
        state.counted = True
    except Exception as exc:
        log_failure_once("connect-finish", exc)


def _count_attributes(state: ConnectionState) -> dict[str, AttributeValue]:
    attributes = dict(state.metric_attributes)
    attributes["db.client.connection.state"] = "used"
    attributes["db.client.connection.pool.name"] = (
        f"{state.endpoint.address}:{state.endpoint.port}{state.endpoint.http_path}"
    )
    return attributes


def _connect_failed(
    runtime: Runtime, recorder: SpanRecorder, endpoint: Endpoint, exc: BaseException
) -> None:
    try:
        info = recorder.record_error(exc)
        recorder.end()
        attributes = base_attributes(endpoint)
        attributes[attr.ERROR_TYPE] = info.error_type
        runtime.instruments.connection_create_time.record(
            (time.time_ns() - recorder.start_ns) / 1e9, attributes
        )
    except Exception as inner:
        log_failure_once("connect-fail", inner)


def connection_close(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``Connection.close``: the DELETE_SESSION span; open results complete inside it."""
    state = connection_state(instance)
    if state is None or state.closed:
        _uncount_disabled(instance)
        return wrapped(*args, **kwargs)
    state.closed = True
    recording = should_record(state)
    try:
        recorder: SpanRecorder | None = None
        if recording:
            attributes = dict(state.base_attributes)
            attributes[attr.SPAN_ROLE] = attr.ROLE_DELETE_SESSION
            attributes[attr.DB_OPERATION_NAME] = "close"
            recorder = SpanRecorder(state.runtime, f"close {state.endpoint.address}", attributes)
            recorder.set(attr.SESSION_ID, state.session_id)
        token = closing_connection.set(True)
    except Exception as exc:
        log_failure_once("close-begin", exc)
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        closing_connection.reset(token)
        _close_done(state, recorder, exc)
        raise
    closing_connection.reset(token)
    _close_done(state, recorder, None)
    return result


def _uncount_disabled(connection: Any) -> None:
    """A connection whose instrumentation was switched off still leaves the open count."""
    try:
        state = connection.__dict__.get(CONNECTION_STATE_ATTR)
        if isinstance(state, ConnectionState) and state.counted and not state.closed:
            state.closed = True
            state.counted = False
            state.runtime.instruments.connection_count.add(-1, _count_attributes(state))
    except Exception as exc:
        log_failure_once("close-uncount", exc)


def _close_done(
    state: ConnectionState, recorder: SpanRecorder | None, exc: BaseException | None
) -> None:
    try:
        if recorder is not None:
            if exc is not None:
                recorder.record_error(exc)
            recorder.end()
        if state.counted:
            state.counted = False
            state.runtime.instruments.connection_count.add(-1, _count_attributes(state))
        handle = state.export_handle
        exporter = state.runtime.exporter
        if handle is not None and exporter is not None:
            state.export_handle = None
            exporter.unregister_connection(handle)
    except Exception as inner:
        log_failure_once("close-finish", inner)


def transaction(operation: str) -> Callable[..., Any]:
    """A wrapper for ``Connection.commit`` / ``rollback``: a span, no statement record."""

    def wrapper(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        state = connection_state(instance)
        if not should_record(state):
            return wrapped(*args, **kwargs)
        assert state is not None
        try:
            attributes = dict(state.base_attributes)
            attributes[attr.SPAN_ROLE] = attr.ROLE_TRANSACTION
            attributes[attr.DB_OPERATION_NAME] = operation
            target = state.endpoint.namespace or state.endpoint.address
            recorder = SpanRecorder(state.runtime, f"{operation} {target}", attributes)
            started = recorder.start_ns
        except Exception as exc:
            log_failure_once("transaction-begin", exc)
            return wrapped(*args, **kwargs)
        error_type: str | None = None
        try:
            return wrapped(*args, **kwargs)
        except BaseException as exc:
            try:
                error_type = recorder.record_error(exc).error_type
            except Exception as inner:
                log_failure_once("transaction-fail", inner)
            raise
        finally:
            try:
                recorder.end()
                metric_attributes = dict(state.metric_attributes)
                metric_attributes[attr.DB_OPERATION_NAME] = operation
                if error_type is not None:
                    metric_attributes[attr.ERROR_TYPE] = error_type
                state.runtime.instruments.operation_duration.record(
                    (time.time_ns() - started) / 1e9, metric_attributes
                )
            except Exception as inner:
                log_failure_once("transaction-end", inner)

    return wrapper
