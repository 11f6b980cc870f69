"""Wrappers of ``databricks.sql.client.Cursor``: statements, batches, async, metadata, fetches,
cancel and close."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry_instrumentation_dbsql import attributes as attr
from opentelemetry_instrumentation_dbsql.hooks.adoption import connection_state, should_record
from opentelemetry_instrumentation_dbsql.hooks.context import enter_context, exit_context
from opentelemetry_instrumentation_dbsql.hooks.lifecycle import (
    begin_statement,
    finish_result,
    finish_statement_failed,
    finish_statement_ok,
    modified_rows,
    statement_id_for,
)
from opentelemetry_instrumentation_dbsql.hooks.query_tags import query_tags_with_context
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import command_of, statement_id_of
from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.spans import AttributeValue, SpanRecorder
from opentelemetry_instrumentation_dbsql.statement import (
    ASYNC_TRACKER_ATTR,
    RESULT_TRACKER_ATTR,
    RUNNING_TRACKER_ATTR,
    ConnectionState,
    StatementTracker,
    current_batch,
    current_statement,
)

Wrapped = Callable[..., Any]
_MAX_BATCH_EVENTS = 1000

_METADATA = {
    "catalogs": ("LIST_CATALOGS", "catalogs"),
    "schemas": ("LIST_SCHEMAS", "schemas"),
    "tables": ("LIST_TABLES", "tables"),
    "columns": ("LIST_COLUMNS", "columns"),
}


@dataclass(slots=True)
class _Call:
    """One traced driver call: its statement, the kwargs to call with, and what to undo."""

    tracker: StatementTracker
    kwargs: Any
    undo: Callable[[], None] = lambda: None


def _traced(
    kind: str,
    wrapped: Wrapped,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: Any,
    *,
    begin: Callable[[], _Call],
    done: Callable[[StatementTracker], None],
) -> Any:
    """Run a driver call inside its STATEMENT span: ``begin`` makes the statement (any failure
    there leaves the call untraced), ``done`` runs after success; failures end the span."""
    try:
        call = begin()
        if kind != "async-result":  # that statement began in execute_async
            # The driver replaces the cursor's command id once the server answers: until then
            # (and for good if the call fails first) it is the previous statement's.
            call.tracker.prior_command = command_of(instance)
        tokens = enter_context(call.tracker.statement_recorder, call.tracker)
    except Exception as exc:
        log_failure_once(kind + "-begin", exc)
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **call.kwargs)
    except BaseException as exc:
        exit_context(tokens)
        call.undo()
        finish_statement_failed(call.tracker, instance, exc)
        raise
    exit_context(tokens)
    call.undo()
    done(call.tracker)
    return result


def _argument(args: tuple[Any, ...], kwargs: Any, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


class CursorHooks:
    """The cursor wrappers; ``supports_query_tags`` says whether ``execute`` takes query_tags."""

    def __init__(self, *, supports_query_tags: bool) -> None:
        self.supports_query_tags = supports_query_tags

    # --- execute -----------------------------------------------------------------------------
    def execute(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        """``Cursor.execute``: one STATEMENT span; nested calls from executemany are folded."""
        batch = current_batch.get()
        if batch is not None:
            return _batch_member(batch, wrapped, instance, args, kwargs)
        state = connection_state(getattr(instance, "connection", None))
        if state is None or not should_record(state):
            return wrapped(*args, **kwargs)

        def begin() -> _Call:
            call = self._begin_execute(state, instance, args, kwargs, is_async=False)
            _set_running(instance, call.tracker)
            call.undo = lambda: _set_running(instance, None)
            return call

        return _traced(
            "execute",
            wrapped,
            instance,
            args,
            kwargs,
            begin=begin,
            done=lambda tracker: finish_statement_ok(tracker, instance),
        )

    def _begin_execute(
        self,
        state: ConnectionState,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: Any,
        *,
        is_async: bool,
    ) -> _Call:
        """The statement of ``execute`` / ``execute_async`` and the kwargs to call them with
        (``query_tags`` is their 5th / 4th positional argument)."""
        if getattr(instance, ASYNC_TRACKER_ATTR, None) is not None:
            _abandon_async(instance)
        tracker = begin_statement(
            state,
            operation=_argument(args, kwargs, 0, "operation"),
            parameters=_argument(args, kwargs, 1, "parameters"),
            operation_type="EXECUTE_STATEMENT",
            statement_type="QUERY",
            is_async=is_async,
            method="execute_async" if is_async else "execute",
        )
        return _Call(tracker, self._with_tags(tracker, args, kwargs, 4 if is_async else 5))

    def _with_tags(
        self, tracker: StatementTracker, args: tuple[Any, ...], kwargs: Any, position: int
    ) -> Any:
        """kwargs with the traceparent in ``query_tags`` (the ``position``-th argument)."""
        if not (tracker.runtime.options.propagate_trace_context and self.supports_query_tags):
            return kwargs
        if len(args) >= position:
            return kwargs
        tags = query_tags_with_context(tracker, kwargs.get("query_tags"))
        if tags is None:
            return kwargs
        updated = dict(kwargs)
        updated["query_tags"] = tags
        return updated

    # --- executemany -------------------------------------------------------------------------
    def executemany(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        """``Cursor.executemany``: ONE span for the whole batch."""
        state = connection_state(getattr(instance, "connection", None))
        if current_batch.get() is not None or state is None or not should_record(state):
            return wrapped(*args, **kwargs)

        def begin() -> _Call:
            _abandon_async(instance)
            seq = _argument(args, kwargs, 1, "seq_of_parameters")
            try:
                size = len(seq)
            except Exception:
                size = -1
            tracker = begin_statement(
                state,
                operation=_argument(args, kwargs, 0, "operation"),
                parameters=True,  # batches are parameterized by definition
                operation_type="EXECUTE_STATEMENT",
                statement_type="QUERY",
                extra={attr.DB_OPERATION_BATCH_SIZE: size} if size >= 2 else None,
                batch=size >= 2,
                method="executemany",
            )
            token = current_batch.set(tracker)
            return _Call(tracker, kwargs, lambda: current_batch.reset(token))

        return _traced(
            "executemany",
            wrapped,
            instance,
            args,
            kwargs,
            begin=begin,
            done=lambda tracker: finish_statement_ok(tracker, instance),
        )

    # --- async -------------------------------------------------------------------------------
    def execute_async(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        """``Cursor.execute_async``: the span stays open until the result is collected."""
        state = connection_state(getattr(instance, "connection", None))
        if state is None or not should_record(state):
            return wrapped(*args, **kwargs)

        def begin() -> _Call:
            return self._begin_execute(state, instance, args, kwargs, is_async=True)

        def keep_open(tracker: StatementTracker) -> None:
            try:
                setattr(instance, ASYNC_TRACKER_ATTR, tracker)
            except Exception as exc:
                log_failure_once("async-attach", exc)

        return _traced("async", wrapped, instance, args, kwargs, begin=begin, done=keep_open)

    def get_query_state(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        """``Cursor.get_query_state``: polls count toward the pending async statement."""
        tracker = _async_tracker(instance)
        if tracker is None:
            return wrapped(*args, **kwargs)
        token = current_statement.set(tracker)
        try:
            return wrapped(*args, **kwargs)
        finally:
            current_statement.reset(token)

    def get_async_execution_result(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        """``Cursor.get_async_execution_result``: ends the async statement's span."""
        tracker = _async_tracker(instance)
        if tracker is None:
            return wrapped(*args, **kwargs)
        return _traced(
            "async-result",
            wrapped,
            instance,
            args,
            kwargs,
            begin=lambda: _Call(tracker, kwargs, lambda: _clear_async(instance)),
            done=lambda done: finish_statement_ok(done, instance),
        )

    # --- metadata ----------------------------------------------------------------------------
    def metadata(self, method: str) -> Callable[..., Any]:
        """A wrapper for one of ``catalogs``, ``schemas``, ``tables``, ``columns``."""
        operation_type, operation_name = _METADATA[method]

        def wrapper(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
            state = connection_state(getattr(instance, "connection", None))
            if current_batch.get() is not None or state is None or not should_record(state):
                return wrapped(*args, **kwargs)

            def begin() -> _Call:
                _abandon_async(instance)
                tracker = begin_statement(
                    state,
                    operation=None,
                    parameters=None,
                    operation_type=operation_type,
                    statement_type="METADATA",
                    method_name=operation_name,
                    method=method,
                )
                return _Call(tracker, kwargs)

            return _traced(
                "metadata",
                wrapped,
                instance,
                args,
                kwargs,
                begin=begin,
                done=lambda tracker: finish_statement_ok(tracker, instance),
            )

        return wrapper

    # --- fetches -----------------------------------------------------------------------------
    def fetch(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        """Bulk fetches: time spent, inside the RESULT span (no span of their own)."""
        tracker = _result_tracker(instance)
        if tracker is None:
            return wrapped(*args, **kwargs)
        try:
            recorder = tracker.ensure_result_recorder()
            tokens = enter_context(recorder, tracker)
            started = time.perf_counter_ns()
        except Exception as exc:
            log_failure_once("fetch-begin", exc)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            exit_context(tokens)
            _fetch_failed(recorder, exc)
            raise
        exit_context(tokens)
        tracker.fetch_calls += 1
        tracker.fetch_ns += time.perf_counter_ns() - started
        return result

    # --- cancel and close --------------------------------------------------------------------
    def cancel(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        """``Cursor.cancel``: a CANCEL span; the statement is marked cancelled."""
        state = connection_state(getattr(instance, "connection", None))
        if not should_record(state):
            return wrapped(*args, **kwargs)
        assert state is not None
        try:
            target = _running_tracker(instance) or _async_tracker(instance)
            if target is not None:
                target.cancelled = True
            attributes = dict(state.base_attributes)
            attributes[attr.SPAN_ROLE] = attr.ROLE_CANCEL
            attributes[attr.DB_OPERATION_NAME] = "cancel"
            statement_id = (
                statement_id_for(target, instance)
                if target is not None
                else statement_id_of(instance)
            )
            if statement_id is not None:
                attributes[attr.STATEMENT_ID] = statement_id
            parent = target.statement_recorder.context() if target is not None else None
            recorder = SpanRecorder(
                state.runtime,
                "cancel " + (state.endpoint.namespace or "databricks"),
                attributes,
                parent=parent,
            )
            recorder.set(attr.SESSION_ID, state.session_id)
        except Exception as exc:
            log_failure_once("cancel-begin", exc)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            recorder.record_error(exc)
            recorder.end()
            raise
        recorder.end()
        return result

    def close(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        """``Cursor.close``: an async statement never collected ends here."""
        _abandon_async(instance)
        return wrapped(*args, **kwargs)


def _fetch_failed(recorder: SpanRecorder, exc: BaseException) -> None:
    try:
        recorder.record_error(exc)
    except Exception as inner:
        log_failure_once("fetch-fail", inner)


def _batch_member(
    batch: StatementTracker, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
) -> Any:
    """One execute() inside executemany: no span of its own, an event on the batch span.

    The last member's statement id is the batch span's own (its result stays open); a failing
    member's error is the span's error. Modified rows add up to the batch's total.
    """
    started = time.perf_counter_ns()
    result = wrapped(*args, **kwargs)
    _batch_event(batch, instance, started)
    return result


def _batch_event(batch: StatementTracker, instance: Any, started: int) -> None:
    try:
        event: dict[str, AttributeValue] = {
            attr.STATEMENT_ID: _safe_query_id(instance) or "",
            attr.BATCH_LATENCY_MS: (time.perf_counter_ns() - started) // 1_000_000,
        }
        modified = modified_rows(batch, getattr(instance, "active_result_set", None))
        if modified is not None:
            event[attr.ROWS_MODIFIED] = modified
            batch.batch_modified = (batch.batch_modified or 0) + modified
        if batch.batch_events < _MAX_BATCH_EVENTS:
            batch.statement_recorder.add_event(attr.EVENT_BATCH_STATEMENT, event)
            batch.batch_events += 1
    except Exception as inner:
        log_failure_once("batch-event", inner)


def _safe_query_id(instance: Any) -> str | None:
    return statement_id_of(instance)


def _set_running(instance: Any, tracker: StatementTracker | None) -> None:
    try:
        setattr(instance, RUNNING_TRACKER_ATTR, tracker)
    except Exception as exc:
        log_failure_once("running-attach", exc)


def _running_tracker(instance: Any) -> StatementTracker | None:
    value = getattr(instance, RUNNING_TRACKER_ATTR, None)
    return value if isinstance(value, StatementTracker) else None


def _async_tracker(instance: Any) -> StatementTracker | None:
    value = getattr(instance, ASYNC_TRACKER_ATTR, None)
    return value if isinstance(value, StatementTracker) else None


def _clear_async(instance: Any) -> None:
    try:
        setattr(instance, ASYNC_TRACKER_ATTR, None)
    except Exception as exc:
        log_failure_once("async-clear", exc)


def _abandon_async(instance: Any) -> None:
    """An async statement whose result was never collected ends when the cursor moves on."""
    tracker = _async_tracker(instance)
    if tracker is None:
        return
    _clear_async(instance)
    try:
        recorder = tracker.statement_recorder
        recorder.set(attr.STATEMENT_ID, _safe_query_id(instance))
        recorder.set(attr.SESSION_ID, tracker.connection.session_id)
        recorder.set(attr.CANCELLED, tracker.cancelled or None)
        recorder.set(attr.POLL_COUNT, tracker.poll_count)
        tracker.result_done = True
        recorder.end()
    except Exception as exc:
        log_failure_once("async-abandon", exc)


def _result_tracker(instance: Any) -> StatementTracker | None:
    result_set = getattr(instance, "active_result_set", None)
    if result_set is None:
        return None
    value = getattr(result_set, RESULT_TRACKER_ATTR, None)
    if isinstance(value, StatementTracker) and not value.result_done:
        return value
    return None


def finish_result_of(result_set: Any, reason: str) -> None:
    """Complete the statement whose result set this is (used by the result-set hooks)."""
    value = getattr(result_set, RESULT_TRACKER_ATTR, None)
    if isinstance(value, StatementTracker):
        finish_result(value, result_set, reason)
