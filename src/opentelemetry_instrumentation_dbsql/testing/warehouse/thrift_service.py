"""The TCLIService handler: sessions, statements, polling, paging and metadata calls."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse import metadata
from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import ttypes
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import (
    Engine,
    EngineError,
    StatementResult,
    engine_error,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.operations import (
    STATE_NAMES,
    ClientCapabilities,
    Operation,
    S,
    Session,
    error_status,
    failure,
    new_guid,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.parameters import bind_parameters
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import (
    Recorder,
    ServedFile,
    ServedStatement,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import (
    SUCCESS,
    ArrowOptions,
    FileStore,
    Page,
    ResultStream,
    empty_row_set,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.scripting import ScriptBook
from opentelemetry_instrumentation_dbsql.testing.warehouse.staging import VolumeStore, parse_staging

logger = logging.getLogger(__name__)

T = ttypes
_current = threading.local()
_Resp = TypeVar("_Resp")
_Method = Callable[["ThriftService", Any], _Resp]


def take_last_request() -> Any:
    """The request struct the service handled last on this thread, forgetting it."""
    request = getattr(_current, "request", None)
    _current.request = None
    return request


def _rpc(response_type: Callable[..., Any]) -> Callable[[_Method[_Resp]], _Method[_Resp]]:
    """Remember the request and turn unexpected failures into an ERROR_STATUS response."""

    def decorate(method: _Method[_Resp]) -> _Method[_Resp]:
        @functools.wraps(method)
        def wrapper(self: ThriftService, req: Any) -> _Resp:
            _current.request = req
            try:
                return method(self, req)
            except Exception as error:
                logger.exception("%s failed", method.__name__)
                resp: _Resp = response_type(status=failure(f"Internal error: {error!r}"))
                return resp

        return wrapper

    return decorate


_OPERATION_TYPES = {
    "ExecuteStatement": T.TOperationType.EXECUTE_STATEMENT,
    "GetCatalogs": T.TOperationType.GET_CATALOGS,
    "GetSchemas": T.TOperationType.GET_SCHEMAS,
    "GetTables": T.TOperationType.GET_TABLES,
    "GetColumns": T.TOperationType.GET_COLUMNS,
}


class ThriftService:
    """Implements the TCLIService RPCs the Databricks SQL driver uses."""

    def __init__(
        self,
        engine: Engine,
        scripts: ScriptBook,
        recorder: Recorder,
        files: FileStore,
        base_url: str,
        *,
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
        self._long_poll = long_poll
        self._link_ttl = link_ttl
        self._cloudfetch_min_rows = cloudfetch_min_rows
        self._lock = threading.Lock()
        self._sessions: dict[bytes, Session] = {}
        self._operations: dict[bytes, Operation] = {}
        self.sessions_opened = 0
        self.last_session_closed: float | None = None
        """``time.monotonic()`` of the latest CloseSession."""

    # -- lookup -------------------------------------------------------------------------------

    def _session(self, handle: Any) -> Session | None:
        guid = getattr(getattr(handle, "sessionId", None), "guid", None)
        with self._lock:
            session = self._sessions.get(guid) if isinstance(guid, bytes) else None
        return session if session is not None and not session.closed else None

    def _operation(self, handle: Any) -> Operation | None:
        guid = getattr(getattr(handle, "operationId", None), "guid", None)
        with self._lock:
            return self._operations.get(guid) if isinstance(guid, bytes) else None

    @property
    def open_sessions(self) -> int:
        """How many sessions are open."""
        with self._lock:
            return len(self._sessions)

    def close_all(self) -> None:
        """Close every session (the warehouse is stopping)."""
        with self._lock:
            sessions = list(self._sessions.values())
            operations = list(self._operations.values())
            self._sessions.clear()
            self._operations.clear()
        for op in operations:
            with op.cond:
                if op.running:
                    op.state = S.CANCELED_STATE
                op.closed = True
                op.cond.notify_all()
        for session in sessions:
            session.closed = True
            session.engine.close()

    # -- sessions ------------------------------------------------------------------------------

    @_rpc(T.TOpenSessionResp)
    def OpenSession(self, req: Any) -> Any:
        """Open a session in the requested catalog and schema (created if missing)."""
        namespace = req.initialNamespace
        catalog = namespace.catalogName if namespace else None
        schema = namespace.schemaName if namespace else None
        try:
            engine_session = self._engine.open_session(catalog, schema)
        except EngineError as error:
            return T.TOpenSessionResp(status=error_status(error))
        except Exception as error:
            return T.TOpenSessionResp(status=error_status(engine_error(error)))
        session = Session(
            guid=new_guid(),
            secret=new_guid(),
            engine=engine_session,
            configuration=dict(req.configuration or {}),
        )
        with self._lock:
            self._sessions[session.guid] = session
            self.sessions_opened += 1
        return T.TOpenSessionResp(
            status=SUCCESS,
            serverProtocolVersion=T.TProtocolVersion.SPARK_CLI_SERVICE_PROTOCOL_V8,
            sessionHandle=session.handle(),
            configuration={},
            initialNamespace=T.TNamespace(
                catalogName=engine_session.catalog, schemaName=engine_session.schema
            ),
            canUseMultipleCatalogs=True,
        )

    @_rpc(T.TCloseSessionResp)
    def CloseSession(self, req: Any) -> Any:
        """Close a session and its operations."""
        self.last_session_closed = time.monotonic()
        session = self._session(req.sessionHandle)
        if session is None:
            return T.TCloseSessionResp(status=SUCCESS)
        with self._lock:
            session.closed = True
            self._sessions.pop(session.guid, None)
            operations = list(session.operations.values())
            session.operations.clear()
            for op in operations:
                self._operations.pop(op.guid, None)
        for op in operations:
            self._close_operation(op, cancel=True)
        session.engine.close()
        return T.TCloseSessionResp(status=SUCCESS)

    # -- statements ----------------------------------------------------------------------------

    def _new_operation(self, session: Session, rpc: str, sql: str | None = None) -> Operation:
        op = Operation(
            guid=new_guid(),
            secret=new_guid(),
            session=session,
            operation_type=_OPERATION_TYPES[rpc],
            rpc=rpc,
            sql=sql,
        )
        with self._lock:
            self._operations[op.guid] = op
            session.operations[op.guid] = op
        return op

    def _served(self, op: Operation) -> None:
        self._recorder.start_statement(
            ServedStatement(
                statement_id=op.statement_id,
                session_id=op.session.session_id,
                operation=op.rpc,
                sql=op.sql,
                scripted=op.script is not None,
                started=op.started_ms / 1000.0,
            )
        )

    @_rpc(T.TExecuteStatementResp)
    def ExecuteStatement(self, req: Any) -> Any:
        """Start a statement; finished ones come back as direct results when asked."""
        session = self._session(req.sessionHandle)
        if session is None:
            return T.TExecuteStatementResp(
                status=failure("Invalid SessionHandle", T.TStatusCode.INVALID_HANDLE_STATUS)
            )
        sql = req.statement or ""
        op = self._new_operation(session, "ExecuteStatement", sql)
        taken = self._scripts.take(sql, op.statement_id)
        if taken is not None:
            op.script = taken[0]
        try:
            op.params = bind_parameters(req.parameters)
        except (ValueError, ArithmeticError) as error:
            op.error = EngineError(
                f"Invalid parameter value: {error}", "22023", "INVALID_PARAMETER_VALUE"
            )
        types = req.useArrowNativeTypes
        op.capabilities = ClientCapabilities(
            arrow=bool(req.canReadArrowResult),
            lz4=bool(req.canDecompressLZ4Result),
            download=bool(req.canDownloadResult),
            arrow_options=ArrowOptions(
                decimals=bool(types.decimalAsArrow) if types else False,
                timestamps=bool(types.timestampAsArrow) if types else False,
                complex_types=bool(types.complexTypesAsArrow) if types else False,
            ),
            row_limit=req.resultRowLimit if req.resultRowLimit else None,
        )
        now = time.monotonic()
        if op.script is not None:
            op.pending_polls = op.script.running_polls
            op.poll_delay = op.script.poll_delay
            op.ready_at = now + op.script.completion_delay
        self._served(op)
        self._advance(op, poll=False)
        resp = T.TExecuteStatementResp(status=SUCCESS, operationHandle=op.handle())
        if req.getDirectResults is not None:
            resp.directResults = self._direct_results(op, req.getDirectResults)
        if op.status_error and op.error is not None:
            resp.status = error_status(op.error)
        return resp

    def _direct_results(self, op: Operation, wanted: Any) -> Any:
        with op.cond:
            status = op.status()
            if op.state != S.FINISHED_STATE or op.result is None:
                return T.TSparkDirectResults(operationStatus=status)
            stream = op.result
            page_rows = (op.script.page_size if op.script else None) or wanted.maxRows or 0
            page = stream.next_page(page_rows)
            done = not page.has_more
            if done:
                op.closed = True
        self._record_page(op, page)
        self._recorder.update(op.statement_id, direct_results=True, closed=done)
        return T.TSparkDirectResults(
            operationStatus=status,
            resultSetMetadata=stream.metadata(),
            resultSet=T.TFetchResultsResp(
                status=SUCCESS, hasMoreRows=page.has_more, results=page.row_set
            ),
            closeOperation=T.TCloseOperationResp(status=SUCCESS) if done else None,
        )

    def _advance(self, op: Operation, poll: bool) -> None:
        """Move a running operation on; completes it (runs the SQL) once it is due."""
        with op.cond:
            while True:
                while op.completing:
                    op.cond.wait()
                if not op.running:
                    return
                if poll and op.pending_polls > 0:
                    op.pending_polls -= 1
                    if op.poll_delay > 0:
                        op.cond.wait(op.poll_delay)
                    return
                remaining = op.ready_at - time.monotonic()
                if remaining > 0:
                    if not poll:
                        return
                    op.cond.wait(min(remaining, self._long_poll))
                    if op.ready_at - time.monotonic() > 0:
                        return
                    continue
                if not poll and op.pending_polls > 0:
                    return
                op.completing = True
                break
        try:
            self._complete(op)
        finally:
            with op.cond:
                op.completing = False
                op.cond.notify_all()

    def _complete(self, op: Operation) -> None:
        script = op.script
        error = op.error
        result = None
        if error is None and script is not None and script.error is not None:
            error = EngineError(
                script.error,
                script.sqlstate or "XX000",
                "SCRIPTED_ERROR",
                sqlstate_in_message=script.sqlstate_in_message,
            )
        # Staging statements never reach the engine: their answer is a pre-signed URL.
        staging = parse_staging(op.sql or "") if self._volumes is not None else None
        if error is None and staging is not None and self._volumes is not None:
            table = self._volumes.issue(staging, op.statement_id, self._base_url)
            result = StatementResult(table, None, "staging")
        elif error is None:
            try:
                result = op.session.engine.execute(op.sql or "", op.params)
            except EngineError as failed:
                error = failed
        stream = None
        if result is not None and error is None:
            table = result.table
            limit = op.capabilities.row_limit
            if limit is not None and table.num_rows > limit:
                table = table.slice(0, limit)
            fmt, lz4 = self._format(op, table.num_rows)
            ttl = script.link_ttl if script and script.link_ttl is not None else self._link_ttl
            stream = ResultStream(
                table,
                fmt,
                lz4,
                statement_id=op.statement_id,
                arrow_options=op.capabilities.arrow_options,
                cloudfetch_files=script.cloudfetch_files if script else None,
                file_store=self._files,
                base_url=self._base_url,
                link_ttl=ttl,
                staging=staging is not None,
            )
        with op.cond:
            if not op.running:
                return
            op.completed_ms = int(time.time() * 1000)
            if error is not None:
                op.state = S.ERROR_STATE
                op.error = error
                op.status_error = bool(
                    script is not None
                    and script.error is not None
                    and script.error_style == "status"
                )
            else:
                op.state = S.FINISHED_STATE
                op.result = stream
                op.modified_rows = result.modified_rows if result is not None else None
        self._recorder.update(
            op.statement_id,
            state=STATE_NAMES[op.state],
            finished=time.time(),
            result_format=stream.result_format if stream else None,
            lz4=stream.lz4 if stream else False,
            rows=stream.total_rows if stream else 0,
            modified_rows=op.modified_rows,
            sqlstate=error.sqlstate if error else None,
            error_message=error.display_message if error else None,
            files=_served_files(stream),
        )

    def _format(self, op: Operation, rows: int) -> tuple[str, bool]:
        caps = op.capabilities
        script = op.script
        fmt = script.result_format if script and script.result_format else None
        if fmt is None:
            if not caps.arrow:
                fmt = "columnar"
            elif caps.download and rows > self._cloudfetch_min_rows:
                fmt = "cloudfetch"
            else:
                fmt = "arrow"
        lz4 = script.lz4 if script and script.lz4 is not None else caps.lz4
        return fmt, lz4

    def _record_page(self, op: Operation, page: Page) -> None:
        if page.rows > 0 or page.links:
            self._recorder.add_page(op.statement_id, page.rows)

    @_rpc(T.TGetOperationStatusResp)
    def GetOperationStatus(self, req: Any) -> Any:
        """Report (and advance) a statement's state; long-polls scripted delays."""
        op = self._operation(req.operationHandle)
        if op is None:
            return T.TGetOperationStatusResp(
                status=failure("Invalid OperationHandle", T.TStatusCode.INVALID_HANDLE_STATUS)
            )
        self._recorder.add_poll(op.statement_id)
        self._advance(op, poll=True)
        with op.cond:
            return op.status()

    @_rpc(T.TGetResultSetMetadataResp)
    def GetResultSetMetadata(self, req: Any) -> Any:
        """Describe a finished result: schema, format, LZ4, Arrow schema."""
        op = self._operation(req.operationHandle)
        if op is None:
            return T.TGetResultSetMetadataResp(
                status=failure("Invalid OperationHandle", T.TStatusCode.INVALID_HANDLE_STATUS)
            )
        with op.cond:
            if op.result is not None:
                return op.result.metadata()
            if op.error is not None:
                return T.TGetResultSetMetadataResp(status=error_status(op.error))
        return _empty_metadata()

    @_rpc(T.TFetchResultsResp)
    def FetchResults(self, req: Any) -> Any:
        """Hand out the next page of rows (or CloudFetch links)."""
        op = self._operation(req.operationHandle)
        if op is None:
            return T.TFetchResultsResp(
                status=failure("Invalid OperationHandle", T.TStatusCode.INVALID_HANDLE_STATUS)
            )
        with op.cond:
            if op.error is not None:
                return T.TFetchResultsResp(status=error_status(op.error))
            stream = op.result
            if stream is None:
                return T.TFetchResultsResp(
                    status=SUCCESS,
                    hasMoreRows=False,
                    results=empty_row_set(),
                    resultSetMetadata=_empty_metadata() if req.includeResultSetMetadata else None,
                )
            page_rows = (op.script.page_size if op.script else None) or req.maxRows or 0
            page = stream.next_page(page_rows)
            meta = stream.metadata() if req.includeResultSetMetadata else None
        self._record_page(op, page)
        return T.TFetchResultsResp(
            status=SUCCESS, hasMoreRows=page.has_more, results=page.row_set, resultSetMetadata=meta
        )

    def _close_operation(self, op: Operation, cancel: bool) -> None:
        with op.cond:
            if op.running and cancel:
                op.state = S.CANCELED_STATE
            op.closed = True
            op.result = None
            op.cond.notify_all()
        self._recorder.update(op.statement_id, closed=True, state=STATE_NAMES[op.state])

    @_rpc(T.TCloseOperationResp)
    def CloseOperation(self, req: Any) -> Any:
        """Forget an operation (cancelling it if still running)."""
        op = self._operation(req.operationHandle)
        if op is not None:
            self._close_operation(op, cancel=True)
            with self._lock:
                self._operations.pop(op.guid, None)
                op.session.operations.pop(op.guid, None)
        return T.TCloseOperationResp(status=SUCCESS)

    @_rpc(T.TCancelOperationResp)
    def CancelOperation(self, req: Any) -> Any:
        """Move a running operation to CANCELED_STATE."""
        op = self._operation(req.operationHandle)
        if op is None:
            return T.TCancelOperationResp(
                status=failure("Invalid OperationHandle", T.TStatusCode.INVALID_HANDLE_STATUS)
            )
        with op.cond:
            cancelled = op.running
            executing = op.completing
            if cancelled:
                op.state = S.CANCELED_STATE
                op.completed_ms = int(time.time() * 1000)
                op.cond.notify_all()
        if cancelled and executing:
            op.session.engine.interrupt()
        if cancelled:
            self._recorder.update(
                op.statement_id, state="CANCELED", cancelled=True, finished=time.time()
            )
        return T.TCancelOperationResp(status=SUCCESS)

    # -- metadata ------------------------------------------------------------------------------

    def _metadata_call(self, rpc: str, req: Any, build: Callable[[], Any]) -> Any:
        response_type = getattr(T, f"T{rpc}Resp")
        session = self._session(req.sessionHandle)
        if session is None:
            return response_type(
                status=failure("Invalid SessionHandle", T.TStatusCode.INVALID_HANDLE_STATUS)
            )
        op = self._new_operation(session, rpc)
        self._served(op)
        try:
            table = build()
        except EngineError as error:
            table, op.error = None, error
        except Exception as error:
            table, op.error = None, engine_error(error)
        with op.cond:
            op.completed_ms = int(time.time() * 1000)
            if op.error is not None:
                op.state = S.ERROR_STATE
            else:
                op.state = S.FINISHED_STATE
                op.result = ResultStream(table, "columnar", False, statement_id=op.statement_id)
        self._recorder.update(
            op.statement_id,
            state=STATE_NAMES[op.state],
            finished=time.time(),
            result_format="columnar" if op.result else None,
            rows=op.result.total_rows if op.result else 0,
            sqlstate=op.error.sqlstate if op.error else None,
            error_message=op.error.display_message if op.error else None,
        )
        resp = response_type(status=SUCCESS, operationHandle=op.handle())
        if req.getDirectResults is not None:
            resp.directResults = self._direct_results(op, req.getDirectResults)
        return resp

    @_rpc(T.TGetCatalogsResp)
    def GetCatalogs(self, req: Any) -> Any:
        """List catalogs (``TABLE_CAT``)."""
        return self._metadata_call("GetCatalogs", req, lambda: metadata.catalogs(self._engine))

    @_rpc(T.TGetSchemasResp)
    def GetSchemas(self, req: Any) -> Any:
        """List schemas matching the patterns."""
        return self._metadata_call(
            "GetSchemas",
            req,
            lambda: metadata.schemas(self._engine, req.catalogName, req.schemaName),
        )

    @_rpc(T.TGetTablesResp)
    def GetTables(self, req: Any) -> Any:
        """List tables and views matching the patterns."""
        return self._metadata_call(
            "GetTables",
            req,
            lambda: metadata.tables(
                self._engine, req.catalogName, req.schemaName, req.tableName, req.tableTypes
            ),
        )

    @_rpc(T.TGetColumnsResp)
    def GetColumns(self, req: Any) -> Any:
        """List columns matching the patterns."""
        return self._metadata_call(
            "GetColumns",
            req,
            lambda: metadata.columns(
                self._engine, req.catalogName, req.schemaName, req.tableName, req.columnName
            ),
        )

    @_rpc(T.TGetInfoResp)
    def GetInfo(self, req: Any) -> Any:
        """Answer server information requests."""
        value = {
            T.TGetInfoType.CLI_DBMS_NAME: "Databricks SQL (local warehouse)",
            T.TGetInfoType.CLI_SERVER_NAME: "local-warehouse",
            T.TGetInfoType.CLI_DBMS_VER: "0.1",
        }.get(req.infoType, "")
        return T.TGetInfoResp(status=SUCCESS, infoValue=T.TGetInfoValue(stringValue=value))


def _served_files(stream: ResultStream | None) -> list[ServedFile]:
    if stream is None:
        return []
    return [
        ServedFile(
            f.index,
            f.start_row,
            f.row_count,
            len(f.data),
            f.uncompressed_bytes,
            url=stream.file_url(f),
        )
        for f in stream.files
    ]


def _empty_metadata() -> Any:
    return T.TGetResultSetMetadataResp(
        status=SUCCESS,
        schema=T.TTableSchema(columns=[]),
        resultFormat=T.TSparkRowSetType.COLUMN_BASED_SET,
        lz4Compressed=False,
        arrowSchema=bytes(pa.schema([]).serialize().to_pybytes()),
        isStagingOperation=False,
    )
