"""The Statement Execution API handler: sessions, statements, polling, chunks and cancel.

The same engine, scripts and records as the Thrift service. A statement runs when it is
due: at once unless a script keeps it running (``running_polls`` GetStatement answers of
``RUNNING``, or ``completion_delay``). ExecuteStatement waits for a due statement at most
``min(wait_timeout, long_poll)`` and answers ``PENDING`` while it runs; GetStatement
long-polls like GetOperationStatus. Records use the Thrift state names (``FINISHED``,
``ERROR``, ``CANCELED``) so that both protocols can be checked the same way.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from opentelemetry_instrumentation_dbsql.testing.warehouse import sea_metadata
from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import ttypes
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import (
    Engine,
    EngineError,
    EngineSession,
    engine_error,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.parameters import bind_parameters
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import (
    Recorder,
    ServedStatement,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import FileStore
from opentelemetry_instrumentation_dbsql.testing.warehouse.scripting import (
    ScriptBook,
    StatementScript,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.sea_results import (
    LZ4_FRAME,
    ResultRequest,
    SeaResult,
    served_form,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.staging import VolumeStore, parse_staging

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, CLOSED = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELED",
    "CLOSED",
)
_RECORDED_STATES = {
    PENDING: "RUNNING",
    RUNNING: "RUNNING",
    SUCCEEDED: "FINISHED",
    FAILED: "ERROR",
    CANCELED: "CANCELED",
    CLOSED: "CLOSED",
}
_WAIT = re.compile(r"^\s*(\d+)\s*s\s*$")


class RestError(Exception):
    """A request the API refuses: answered with ``status`` and a Databricks error body."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error_code": self.error_code, "message": self.message}


@dataclass
class RestSession:
    """One REST session (its own DuckDB cursor, like a Thrift session)."""

    session_id: str
    engine: EngineSession
    statements: dict[str, RestStatement] = field(default_factory=dict)
    closed: bool = False


@dataclass
class RestStatement:
    """One statement and its progress."""

    statement_id: str
    session: RestSession
    sql: str
    request: ResultRequest
    params: dict[str, Any] | list[Any] | None = None
    script: StatementScript | None = None
    state: str = PENDING
    pending_polls: int = 0
    poll_delay: float = 0.0
    ready_at: float = 0.0
    completing: bool = False
    result: SeaResult | None = None
    error: EngineError | None = None
    modified_rows: int | None = None
    staging: bool = False  # a volume operation: its one row is the transfer to make
    closed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def running(self) -> bool:
        """Whether the statement has not reached a final state."""
        return self.state in (PENDING, RUNNING)


def error_code(error: EngineError) -> str:
    """The ``error_code`` of a failed statement's status, from its SQLSTATE class."""
    if error.sqlstate == "57014":
        return "CANCELLED"
    if error.sqlstate.startswith("XX"):
        return "INTERNAL_ERROR"
    return "BAD_REQUEST"


def wait_seconds(text: Any) -> float:
    """``wait_timeout`` (``"10s"``, ``"0s"``; default 10 s) in seconds."""
    if text is None:
        return 10.0
    match = _WAIT.match(str(text))
    if match is None:
        raise RestError(400, "INVALID_PARAMETER_VALUE", f"wait_timeout: {text!r}")
    return float(match.group(1))


def rest_parameters(items: Any) -> dict[str, Any] | list[Any] | None:
    """REST ``parameters`` (``name``, ``value``, ``type``) as values DuckDB binds."""
    if not items:
        return None
    if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
        raise RestError(400, "INVALID_PARAMETER_VALUE", "parameters must be a list of objects")
    # The Thrift parameter struct has the same three fields: reuse its conversion.
    return bind_parameters(
        [
            ttypes.TSparkParameter(
                name=p.get("name"),
                type=p.get("type"),
                value=(
                    ttypes.TSparkParameterValue(stringValue=str(p["value"]))
                    if p.get("value") is not None
                    else None
                ),
            )
            for p in items
        ]
    )


class SeaService:
    """Implements the REST calls the driver's SEA backend and the kernel make."""

    def __init__(
        self,
        engine: Engine,
        scripts: ScriptBook,
        recorder: Recorder,
        files: FileStore,
        base_url: str,
        *,
        warehouse_id: str,
        long_poll: float = 0.1,
        link_ttl: float = 900.0,
        cloudfetch_min_rows: int = 100_000,
        volumes: VolumeStore | None = None,
    ) -> None:
        self._engine = engine
        self._volumes = volumes
        self._scripts = scripts
        self._recorder = recorder
        self._files = files
        self._base_url = base_url
        self._warehouse_id = warehouse_id
        self._long_poll = long_poll
        self._link_ttl = link_ttl
        self._cloudfetch_min_rows = cloudfetch_min_rows
        self._lock = threading.Lock()
        self._sessions: dict[str, RestSession] = {}
        self._statements: dict[str, RestStatement] = {}

    # -- lookup -------------------------------------------------------------------------------

    def _session(self, session_id: Any) -> RestSession:
        with self._lock:
            session = self._sessions.get(str(session_id))
        if session is None or session.closed:
            raise RestError(404, "NOT_FOUND", f"Session {session_id} does not exist.")
        return session

    def _statement(self, statement_id: str) -> RestStatement:
        with self._lock:
            statement = self._statements.get(statement_id)
        if statement is None:
            raise RestError(404, "NOT_FOUND", f"Statement {statement_id} does not exist.")
        return statement

    def _check_warehouse(self, body: dict[str, Any]) -> None:
        warehouse = body.get("warehouse_id")
        if warehouse is not None and warehouse != self._warehouse_id:
            raise RestError(404, "NOT_FOUND", f"Warehouse {warehouse} does not exist.")

    def close_all(self) -> None:
        """Close every session (the warehouse is stopping)."""
        with self._lock:
            sessions = list(self._sessions.values())
            statements = list(self._statements.values())
            self._sessions.clear()
            self._statements.clear()
        for statement in statements:
            with statement.cond:
                if statement.running:
                    statement.state = CANCELED
                statement.closed = True
                statement.cond.notify_all()
        for session in sessions:
            session.closed = True
            session.engine.close()

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /sessions: open a session in the requested catalog and schema."""
        self._check_warehouse(body)
        try:
            engine_session = self._engine.open_session(body.get("catalog"), body.get("schema"))
        except EngineError as error:
            raise RestError(400, "BAD_REQUEST", error.display_message) from error
        except Exception as error:
            raise RestError(400, "BAD_REQUEST", engine_error(error).display_message) from error
        session = RestSession(str(uuid.uuid4()), engine_session)
        with self._lock:
            self._sessions[session.session_id] = session
        return {"session_id": session.session_id}

    def delete_session(self, session_id: str) -> dict[str, Any]:
        """DELETE /sessions/{id}: close a session and its statements."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                raise RestError(404, "NOT_FOUND", f"Session {session_id} does not exist.")
            session.closed = True
            statements = list(session.statements.values())
            session.statements.clear()
        for statement in statements:
            self._close(statement)
        session.engine.close()
        return {}

    # -- statements ----------------------------------------------------------------------------

    def execute(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /statements: start a statement and wait for it as ``wait_timeout`` says."""
        self._check_warehouse(body)
        session = self._session(body.get("session_id"))
        sql = str(body.get("statement") or "")
        wait = wait_seconds(body.get("wait_timeout"))
        limit = body.get("row_limit")
        request = ResultRequest(
            format=str(body.get("format") or "JSON_ARRAY"),
            disposition=str(body.get("disposition") or "INLINE"),
            lz4=body.get("result_compression") == LZ4_FRAME,
            row_limit=int(limit) if limit else None,
        )
        statement = RestStatement(str(uuid.uuid4()), session, sql, request)
        taken = self._scripts.take(sql, statement.statement_id)
        if taken is not None:
            statement.script = taken[0]
        try:
            statement.params = rest_parameters(body.get("parameters"))
        except (ValueError, ArithmeticError) as error:
            statement.error = EngineError(
                f"Invalid parameter value: {error}", "22023", "INVALID_PARAMETER_VALUE"
            )
        if statement.script is not None:
            statement.pending_polls = statement.script.running_polls
            statement.poll_delay = statement.script.poll_delay
            statement.ready_at = time.monotonic() + statement.script.completion_delay
        with self._lock:
            self._statements[statement.statement_id] = statement
            session.statements[statement.statement_id] = statement
        self._recorder.start_statement(
            ServedStatement(
                statement_id=statement.statement_id,
                session_id=session.session_id,
                operation="ExecuteStatement",
                sql=sql,
                scripted=statement.script is not None,
                started=time.time(),
                protocol="rest",
            )
        )
        self._advance(statement, poll=False, wait=min(wait, self._long_poll))
        response = self._response(statement)
        if "manifest" in response:
            self._recorder.update(statement.statement_id, direct_results=True)
        return response

    def get_statement(self, statement_id: str) -> dict[str, Any]:
        """GET /statements/{id}: the state (advanced by this poll) and, once done, the result."""
        statement = self._statement(statement_id)
        self._recorder.add_poll(statement_id)
        self._advance(statement, poll=True, wait=self._long_poll)
        with statement.cond:
            if statement.state == PENDING:
                statement.state = RUNNING
        return self._response(statement)

    def get_chunk(self, statement_id: str, chunk_index: int) -> dict[str, Any]:
        """GET /statements/{id}/result/chunks/{n}: the data or links of chunk ``n`` on."""
        statement = self._statement(statement_id)
        with statement.cond:
            result = statement.result if statement.state == SUCCEEDED else None
        if result is None:
            raise RestError(
                400, "BAD_REQUEST", f"Statement {statement_id} has no result available."
            )
        try:
            page, rows = result.page(chunk_index)
        except IndexError:
            raise RestError(
                400, "INVALID_PARAMETER_VALUE", f"Chunk index {chunk_index} is out of range."
            ) from None
        self._recorder.add_page(statement_id, rows)
        return page

    def cancel(self, statement_id: str) -> dict[str, Any]:
        """POST /statements/{id}/cancel: move a running statement to CANCELED."""
        statement = self._statement(statement_id)
        with statement.cond:
            cancelled = statement.running
            executing = statement.completing
            if cancelled:
                statement.state = CANCELED
                statement.cond.notify_all()
        if cancelled and executing:
            statement.session.engine.interrupt()
        if cancelled:
            self._recorder.update(
                statement_id, state="CANCELED", cancelled=True, finished=time.time()
            )
        return {}

    def close(self, statement_id: str) -> dict[str, Any]:
        """DELETE /statements/{id}: close a statement (cancelling it if still running)."""
        statement = self._statement(statement_id)
        with self._lock:
            statement.session.statements.pop(statement_id, None)
        self._close(statement)
        return {}

    def _close(self, statement: RestStatement) -> None:
        # A closed statement stays known: GetStatement answers CLOSED, and cancel or close
        # again is a no-op (clients close and then cancel a failed statement).
        with statement.cond:
            if statement.closed:
                return
            if statement.running:
                statement.state = CANCELED
            recorded = _RECORDED_STATES[statement.state]
            statement.state = CLOSED
            statement.closed = True
            statement.result = None
            statement.cond.notify_all()
        self._recorder.update(statement.statement_id, closed=True, state=recorded)

    # -- progress ------------------------------------------------------------------------------

    def _advance(self, statement: RestStatement, poll: bool, wait: float) -> None:
        """Move a running statement on; runs its SQL once it is due (long-polling ``wait``)."""
        with statement.cond:
            while True:
                while statement.completing:
                    statement.cond.wait()
                if not statement.running:
                    return
                if statement.pending_polls > 0:
                    if poll:
                        statement.pending_polls -= 1
                        if statement.poll_delay > 0:
                            statement.cond.wait(statement.poll_delay)
                    return
                remaining = statement.ready_at - time.monotonic()
                if remaining > 0:
                    statement.cond.wait(min(remaining, wait))
                    if statement.ready_at - time.monotonic() > 0:
                        return
                    continue
                statement.completing = True
                break
        try:
            self._complete(statement)
        finally:
            with statement.cond:
                statement.completing = False
                statement.cond.notify_all()

    def _run(self, statement: RestStatement) -> tuple[Any, int | None]:
        """The result table and modified rows (metadata SHOW commands: from the catalog;
        staging statements: the pre-signed URL, as over Thrift)."""
        staging = parse_staging(statement.sql) if self._volumes is not None else None
        if staging is not None and self._volumes is not None:
            statement.staging = True
            return self._volumes.issue(staging, statement.statement_id, self._base_url), None
        table = sea_metadata.answer(self._engine, statement.sql)
        if table is not None:
            return table, None
        result = statement.session.engine.execute(statement.sql, statement.params)
        return result.table, result.modified_rows

    def _complete(self, statement: RestStatement) -> None:
        script = statement.script
        error = statement.error
        table: Any = None
        modified: int | None = None
        if error is None and script is not None and script.error is not None:
            error = EngineError(
                script.error,
                script.sqlstate or "XX000",
                "SCRIPTED_ERROR",
                sqlstate_in_message=script.sqlstate_in_message,
            )
        if error is None:
            try:
                table, modified = self._run(statement)
            except EngineError as failed:
                error = failed
            except Exception as failed:
                error = engine_error(failed)
        result = None
        if table is not None and error is None:
            result = self._result(statement, table)
        with statement.cond:
            if not statement.running:
                return
            if error is not None:
                statement.state = FAILED
                statement.error = error
            else:
                statement.state = SUCCEEDED
                statement.result = result
                statement.modified_rows = modified
        self._recorder.update(
            statement.statement_id,
            state=_RECORDED_STATES[statement.state],
            finished=time.time(),
            result_format=result.form if result else None,
            lz4=result.lz4 if result else False,
            rows=result.total_rows if result else 0,
            modified_rows=modified,
            sqlstate=error.sqlstate if error else None,
            error_message=error.display_message if error else None,
            files=result.served_files() if result else [],
        )

    def _result(self, statement: RestStatement, table: Any) -> SeaResult:
        request, script = statement.request, statement.script
        truncated = False
        if request.row_limit is not None and table.num_rows > request.row_limit:
            table, truncated = table.slice(0, request.row_limit), True
        form = (script.result_format if script else None) or served_form(
            request, table.num_rows, self._cloudfetch_min_rows
        )
        lz4 = script.lz4 if script and script.lz4 is not None else request.lz4
        ttl = script.link_ttl if script and script.link_ttl is not None else self._link_ttl
        return SeaResult(
            table,
            form,
            lz4,
            statement_id=statement.statement_id,
            truncated=truncated,
            volume_operation=statement.staging,
            chunk_rows=script.page_size if script else None,
            links_per_page_rows=script.page_size if script else None,
            cloudfetch_files=script.cloudfetch_files if script else None,
            file_store=self._files,
            base_url=self._base_url,
            link_ttl=ttl,
        )

    # -- answers -------------------------------------------------------------------------------

    def _response(self, statement: RestStatement) -> dict[str, Any]:
        """The statement response: status, and manifest and first chunk once SUCCEEDED."""
        with statement.cond:
            if statement.state == FAILED and statement.error is not None:
                script = statement.script
                if script is not None and script.error_style == "status":
                    raise RestError(400, "BAD_REQUEST", statement.error.display_message)
            status = self._status(statement)
            response: dict[str, Any] = {"statement_id": statement.statement_id, "status": status}
            result = statement.result if statement.state == SUCCEEDED else None
        if result is not None:
            response["manifest"] = result.manifest()
            page, rows = result.page(0)
            response["result"] = page
            if rows > 0 or "external_links" in page:
                self._recorder.add_page(statement.statement_id, rows)
        return response

    def _status(self, statement: RestStatement) -> dict[str, Any]:
        status: dict[str, Any] = {"state": statement.state}
        error = statement.error
        if statement.state == FAILED and error is not None:
            status["error"] = {"error_code": error_code(error), "message": error.display_message}
            status["sql_state"] = error.sqlstate
        if statement.state == SUCCEEDED and statement.modified_rows is not None:
            status["num_modified_rows"] = statement.modified_rows
        return status
