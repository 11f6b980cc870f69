"""Sessions and operations: the state each Thrift handle stands for."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import ttypes
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import EngineError, EngineSession
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import ArrowOptions, ResultStream
from opentelemetry_instrumentation_dbsql.testing.warehouse.scripting import StatementScript

S = ttypes.TOperationState
RUNNING_STATES = frozenset({S.INITIALIZED_STATE, S.PENDING_STATE, S.RUNNING_STATE})
STATE_NAMES = {
    S.INITIALIZED_STATE: "INITIALIZED",
    S.RUNNING_STATE: "RUNNING",
    S.FINISHED_STATE: "FINISHED",
    S.CANCELED_STATE: "CANCELED",
    S.CLOSED_STATE: "CLOSED",
    S.ERROR_STATE: "ERROR",
    S.UKNOWN_STATE: "UNKNOWN",
    S.PENDING_STATE: "PENDING",
    S.TIMEDOUT_STATE: "TIMEDOUT",
}


def new_guid() -> bytes:
    """A fresh 16-byte handle guid."""
    return uuid.uuid4().bytes


def guid_text(guid: bytes) -> str:
    """The UUID string the driver shows for a guid (``cursor.query_id``, session id)."""
    return str(uuid.UUID(bytes=guid))


@dataclass
class Session:
    """One open Thrift session."""

    guid: bytes
    secret: bytes
    engine: EngineSession
    configuration: dict[str, str]
    operations: dict[bytes, Operation] = field(default_factory=dict)
    closed: bool = False

    @property
    def session_id(self) -> str:
        """The session id as the driver shows it."""
        return guid_text(self.guid)

    def handle(self) -> ttypes.TSessionHandle:
        """The Thrift handle of this session."""
        return ttypes.TSessionHandle(
            sessionId=ttypes.THandleIdentifier(guid=self.guid, secret=self.secret),
            serverProtocolVersion=ttypes.TProtocolVersion.SPARK_CLI_SERVICE_PROTOCOL_V8,
        )


@dataclass(frozen=True)
class ClientCapabilities:
    """What the client said it can read, from TExecuteStatementReq."""

    arrow: bool = False
    lz4: bool = False
    download: bool = False
    arrow_options: ArrowOptions = field(default_factory=ArrowOptions)
    row_limit: int | None = None


@dataclass
class Operation:
    """One statement or metadata call and its progress."""

    guid: bytes
    secret: bytes
    session: Session
    operation_type: int
    rpc: str
    sql: str | None = None
    params: dict[str, Any] | list[Any] | None = None
    script: StatementScript | None = None
    capabilities: ClientCapabilities = field(default_factory=ClientCapabilities)
    state: int = S.RUNNING_STATE
    pending_polls: int = 0
    poll_delay: float = 0.0
    ready_at: float = 0.0
    completing: bool = False
    result: ResultStream | None = None
    error: EngineError | None = None
    status_error: bool = False
    modified_rows: int | None = None
    closed: bool = False
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    completed_ms: int | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def statement_id(self) -> str:
        """The statement id as the driver shows it (``cursor.query_id``)."""
        return guid_text(self.guid)

    def handle(self) -> ttypes.TOperationHandle:
        """The Thrift handle of this operation."""
        return ttypes.TOperationHandle(
            operationId=ttypes.THandleIdentifier(guid=self.guid, secret=self.secret),
            operationType=self.operation_type,
            hasResultSet=True,
        )

    @property
    def running(self) -> bool:
        """Whether the operation has not reached a final state."""
        return self.state in RUNNING_STATES

    def status(self) -> ttypes.TGetOperationStatusResp:
        """The ``TGetOperationStatusResp`` for the current state."""
        status = ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS)
        resp = ttypes.TGetOperationStatusResp(
            status=status,
            operationState=self.state,
            hasResultSet=True,
            operationStarted=self.started_ms,
            operationCompleted=self.completed_ms,
            numModifiedRows=self.modified_rows,
        )
        if self.error is not None and self.state == S.ERROR_STATE:
            resp.sqlState = self.error.sqlstate
            resp.errorCode = 0
            resp.errorMessage = self.error.display_message
            resp.displayMessage = self.error.display_message
            resp.diagnosticInfo = f"{self.error.error_class}: {self.error.message}"
            if self.status_error:
                resp.status = error_status(self.error)
        return resp


def error_status(error: EngineError) -> ttypes.TStatus:
    """An ERROR_STATUS ``TStatus`` carrying ``error``."""
    return ttypes.TStatus(
        statusCode=ttypes.TStatusCode.ERROR_STATUS,
        sqlState=error.sqlstate,
        errorCode=0,
        errorMessage=error.display_message,
        displayMessage=error.display_message,
    )


def failure(message: str, code: int = ttypes.TStatusCode.ERROR_STATUS) -> ttypes.TStatus:
    """A failing ``TStatus`` for protocol-level problems (unknown handle, bad request)."""
    return ttypes.TStatus(statusCode=code, errorMessage=message, displayMessage=message)
