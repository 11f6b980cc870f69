"""Staging (volume) operations: the HTTP transfer behind ``PUT``, ``GET`` and ``REMOVE``.

The server answers a staging statement with a pre-signed URL; inside ``execute()`` the driver
then uploads, downloads or deletes the file there itself (``Cursor._handle_staging_put``,
``_put_stream``, ``_get``, ``_remove``). Each of those calls becomes a ``VOLUME_TRANSFER``
span, a child of the statement's span, and names the operation on the statement (which its
Databricks record reads). The HTTP status and sizes come from the one request the transfer
sends through ``connection.http_client`` (``UnifiedHttpClient.request``); releases that send it
another way lose only those details.

Never recorded: the pre-signed URL (it grants access to the file) and the local file path.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import statement_id_of
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.spans import AttributeValue, SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import StatementTracker, current_statement

Wrapped = Callable[..., Any]

_HTTP_METHODS = {
    attr.VOLUME_UPLOAD: "PUT",
    attr.VOLUME_DOWNLOAD: "GET",
    attr.VOLUME_DELETE: "DELETE",
}


class _Transfer:
    """One transfer in progress: its span (None when no span is recorded) and what the HTTP
    request showed."""

    __slots__ = ("direction", "recorded_request", "recorder", "status")

    def __init__(self, direction: str, recorder: SpanRecorder | None) -> None:
        self.direction = direction
        self.recorder = recorder
        self.status: int | None = None
        self.recorded_request = False


# The transfer this thread's driver call is making, for the HTTP client hook.
_current_transfer: ContextVar[_Transfer | None] = ContextVar(
    "opentelemetry_instrumentation_dbsql_volume_transfer", default=None
)


def transfer(direction: str, operation: str, *, stream: bool = False) -> Wrapped:
    """The wrapper of one ``Cursor._handle_staging_*`` method: ``direction`` is upload,
    download or delete, ``operation`` the statement's PUT, GET or REMOVE."""

    def wrapper(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        tracker = current_statement.get()
        if tracker is None:
            return wrapped(*args, **kwargs)
        try:
            state = _begin(tracker, instance, direction, operation, stream)
            recorder = state.recorder
            context_token = None if recorder is None else otel_context.attach(recorder.context())
            transfer_token = _current_transfer.set(state)
        except Exception as exc:
            log_failure_once("volume-begin", exc)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _exit(transfer_token, context_token)
            _failed(state, exc)
            raise
        _exit(transfer_token, context_token)
        _done(state)
        return result

    return wrapper


def _begin(
    tracker: StatementTracker, cursor: Any, direction: str, operation: str, stream: bool
) -> _Transfer:
    # On the statement whether or not spans are recorded: its Databricks record reads it.
    tracker.statement_recorder.set(attr.VOLUME_OPERATION, operation)
    runtime = tracker.runtime
    if tracker.excluded or not runtime.tracing_on():
        return _Transfer(direction, None)
    attributes: dict[str, AttributeValue] = {
        attr.DB_SYSTEM_NAME: attr.DB_SYSTEM_VALUE,
        attr.SPAN_ROLE: attr.ROLE_VOLUME_TRANSFER,
        attr.VOLUME_OPERATION: operation,
        attr.VOLUME_DIRECTION: direction,
        attr.HTTP_REQUEST_METHOD: _HTTP_METHODS[direction],
    }
    if stream:
        attributes[attr.VOLUME_STREAM] = True
    statement_id = statement_id_of(cursor)
    if statement_id is not None:
        attributes[attr.STATEMENT_ID] = statement_id
    recorder = SpanRecorder(
        runtime,
        "volume " + direction,
        attributes,
        parent=tracker.statement_recorder.context(),
        kind=SpanKind.CLIENT,
    )
    return _Transfer(direction, recorder)


def _exit(transfer_token: Any, context_token: object) -> None:
    try:
        _current_transfer.reset(transfer_token)
        if context_token is not None:
            otel_context.detach(context_token)  # type: ignore[arg-type]
    except Exception as exc:
        log_failure_once("volume-exit", exc)


def _done(state: _Transfer) -> None:
    recorder = state.recorder
    if recorder is None:
        return
    try:
        recorder.set(attr.HTTP_RESPONSE_STATUS_CODE, state.status)
        recorder.end()
    except Exception as exc:
        log_failure_once("volume-finish", exc)


def _failed(state: _Transfer, exc: BaseException) -> None:
    recorder = state.recorder
    if recorder is None:
        return
    try:
        recorder.set(attr.HTTP_RESPONSE_STATUS_CODE, state.status)
        recorder.record_error(exc)
        recorder.end()
    except Exception as inner:
        log_failure_once("volume-fail", inner)


def http_request(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``UnifiedHttpClient.request``: for a volume transfer only, its status and sizes. The
    URL argument is never read."""
    state = _current_transfer.get()
    if state is None or state.recorded_request:
        return wrapped(*args, **kwargs)
    # The transfer is the method's one request; any later one (the driver's own telemetry,
    # say) is not.
    state.recorded_request = True
    recorder = state.recorder
    if recorder is not None and state.direction == attr.VOLUME_UPLOAD:
        try:
            # Sent whatever the answer: a rejected upload still crossed the network.
            body = kwargs.get("body")
            if isinstance(body, bytes | bytearray | memoryview):
                recorder.set(attr.VOLUME_BYTES, len(body))
        except Exception as exc:
            log_failure_once("volume-request", exc)
    response = wrapped(*args, **kwargs)
    _note_response(state, response)
    return response


def _note_response(state: _Transfer, response: Any) -> None:
    try:
        status = getattr(response, "status", None)
        if type(status) is not int:
            return
        state.status = status
        recorder = state.recorder
        if recorder is not None and state.direction == attr.VOLUME_DOWNLOAD and status < 400:
            # The driver writes exactly these bytes to the local file.
            data = getattr(response, "data", None)
            if isinstance(data, bytes | bytearray | memoryview):
                recorder.set(attr.VOLUME_BYTES, len(data))
    except Exception as exc:
        log_failure_once("volume-response", exc)
