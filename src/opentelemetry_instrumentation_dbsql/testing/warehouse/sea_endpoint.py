"""The Statement Execution API over HTTP: routing, JSON, fault injection and call records.

Each REST call gets an RPC-like name, recorded in the same log as Thrift RPCs (with
``protocol="rest"``) and usable with :meth:`LocalWarehouse.fault_rpc`:

=====================================================  ==========================
``POST   /api/2.0/sql/sessions``                       ``CreateSession``
``DELETE /api/2.0/sql/sessions/{id}``                  ``DeleteSession``
``POST   /api/2.0/sql/statements``                     ``ExecuteStatement``
``GET    /api/2.0/sql/statements/{id}``                ``GetStatement``
``GET    /api/2.0/sql/statements/{id}/result/chunks/{n}``  ``GetStatementResultChunk``
``POST   /api/2.0/sql/statements/{id}/cancel``         ``CancelStatement``
``DELETE /api/2.0/sql/statements/{id}``                ``CloseStatement``
=====================================================  ==========================
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from opentelemetry_instrumentation_dbsql.testing.warehouse.faults import FaultPlan
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import Recorder, RpcRecord
from opentelemetry_instrumentation_dbsql.testing.warehouse.sea_service import (
    RestError,
    SeaService,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.wire import Reply, Request, json_reply

logger = logging.getLogger(__name__)

SEA_PREFIX = "/api/2.0/sql/"
_ID = r"(?P<id>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/api/2\.0/sql/sessions$"), "CreateSession"),
    ("DELETE", re.compile(rf"^/api/2\.0/sql/sessions/{_ID}$"), "DeleteSession"),
    ("POST", re.compile(r"^/api/2\.0/sql/statements$"), "ExecuteStatement"),
    ("GET", re.compile(rf"^/api/2\.0/sql/statements/{_ID}$"), "GetStatement"),
    (
        "GET",
        re.compile(rf"^/api/2\.0/sql/statements/{_ID}/result/chunks/(?P<chunk>\d+)$"),
        "GetStatementResultChunk",
    ),
    ("POST", re.compile(rf"^/api/2\.0/sql/statements/{_ID}/cancel$"), "CancelStatement"),
    ("DELETE", re.compile(rf"^/api/2\.0/sql/statements/{_ID}$"), "CloseStatement"),
]


def call_name(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The call name and path parameters of a REST request, or None if it is not one."""
    path = urlsplit(path).path.rstrip("/")
    for route_method, pattern, name in _ROUTES:
        match = pattern.match(path) if method == route_method else None
        if match is not None:
            return name, match.groupdict()
    return None


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    data = json.loads(request.body)
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    return data


class SeaEndpoint:
    """Answers REST calls through :class:`SeaService`, with fault injection and records."""

    def __init__(self, service: SeaService, faults: FaultPlan, recorder: Recorder) -> None:
        self._service = service
        self._faults = faults
        self._recorder = recorder

    def handles(self, request: Request) -> bool:
        """Whether ``request`` is a Statement Execution API path."""
        return urlsplit(request.path).path.startswith(SEA_PREFIX)

    def handle(self, request: Request) -> Reply:
        """Answer one REST call."""
        started = time.time()
        clock = time.perf_counter()
        routed = call_name(request.method, request.path)
        if routed is None:
            return json_reply({"error_code": "ENDPOINT_NOT_FOUND", "message": "no such API"}, 404)
        name, params = routed
        try:
            body = _body(request)
        except ValueError:
            reply = json_reply({"error_code": "MALFORMED_REQUEST", "message": "bad JSON"}, 400)
            self._record(name, {**params}, started, clock, reply.status)
            return reply
        # The kernel adds ``?row_offset=`` to chunk calls: recorded, not needed to answer.
        recorded = {**body, **dict(parse_qsl(urlsplit(request.path).query)), **params}
        fault = self._faults.take(name)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and (fault.status is not None or fault.reset):
            status = 0 if fault.reset else int(fault.status or 500)
            self._record(name, recorded, started, clock, status)
            return Reply(status=status, headers=dict(fault.headers), reset=fault.reset)
        try:
            answer = self._call(name, params, body)
            reply = json_reply(answer)
        except RestError as error:
            reply = json_reply(error.body(), error.status)
        except Exception as error:
            logger.exception("%s failed", name)
            reply = json_reply({"error_code": "INTERNAL_ERROR", "message": repr(error)}, 500)
        self._record(name, recorded, started, clock, reply.status)
        return reply

    def _call(self, name: str, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        service = self._service
        calls: dict[str, Callable[[], dict[str, Any]]] = {
            "CreateSession": lambda: service.create_session(body),
            "DeleteSession": lambda: service.delete_session(params["id"]),
            "ExecuteStatement": lambda: service.execute(body),
            "GetStatement": lambda: service.get_statement(params["id"]),
            "GetStatementResultChunk": lambda: service.get_chunk(
                params["id"], int(params["chunk"])
            ),
            "CancelStatement": lambda: service.cancel(params["id"]),
            "CloseStatement": lambda: service.close(params["id"]),
        }
        return calls[name]()

    def _record(
        self, name: str, request: dict[str, Any], started: float, clock: float, status: int
    ) -> None:
        self._recorder.add_rpc(
            RpcRecord(name, request, started, time.perf_counter() - clock, status, "rest")
        )
