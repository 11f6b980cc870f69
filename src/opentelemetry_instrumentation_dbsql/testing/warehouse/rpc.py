"""Thrift over HTTP: one POST per RPC, decoded with the driver's own generated code."""

from __future__ import annotations

import time
from typing import Any

from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolAccelerated
from thrift.transport.TTransport import TMemoryBuffer

from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import TCLIService
from opentelemetry_instrumentation_dbsql.testing.warehouse.faults import FaultPlan
from opentelemetry_instrumentation_dbsql.testing.warehouse.records import Recorder, RpcRecord
from opentelemetry_instrumentation_dbsql.testing.warehouse.thrift_service import (
    ThriftService,
    take_last_request,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.wire import Reply, Request

THRIFT_CONTENT_TYPE = "application/x-thrift"


def rpc_name(body: bytes) -> str:
    """The RPC name in a binary-protocol message header; raises on a malformed body."""
    name, _, _ = TBinaryProtocol(TMemoryBuffer(body)).readMessageBegin()
    return str(name)


def decode_request(name: str, body: bytes) -> Any:
    """The request struct of an RPC message, or None when it cannot be decoded."""
    args_type = getattr(TCLIService, f"{name}_args", None)
    if args_type is None:
        return None
    try:
        protocol = TBinaryProtocol(TMemoryBuffer(body))
        protocol.readMessageBegin()
        args = args_type()
        args.read(protocol)
        return args.req
    except Exception:
        return None


class ThriftEndpoint:
    """Answers Thrift POSTs through ``TCLIService.Processor``, with fault injection."""

    def __init__(self, service: ThriftService, faults: FaultPlan, recorder: Recorder) -> None:
        self._processor = TCLIService.Processor(service)
        self._faults = faults
        self._recorder = recorder

    def handle(self, request: Request) -> Reply:
        """Process one RPC POST."""
        started = time.time()
        clock = time.perf_counter()
        try:
            name = rpc_name(request.body)
        except Exception:
            return Reply(status=400, body=b"malformed Thrift message")
        fault = self._faults.take(name)
        if fault is not None and (fault.status is not None or fault.reset):
            if fault.delay > 0:
                time.sleep(fault.delay)
            status = 0 if fault.reset else int(fault.status or 500)
            self._recorder.add_rpc(
                RpcRecord(
                    name,
                    decode_request(name, request.body),
                    started,
                    time.perf_counter() - clock,
                    status,
                )
            )
            return Reply(status=status, headers=dict(fault.headers), reset=fault.reset)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        take_last_request()
        inbound = TMemoryBuffer(request.body)
        outbound = TMemoryBuffer()
        try:
            self._processor.process(
                TBinaryProtocolAccelerated(inbound), TBinaryProtocolAccelerated(outbound)
            )
        except Exception:
            self._recorder.add_rpc(RpcRecord(name, None, started, time.perf_counter() - clock, 400))
            return Reply(status=400, body=b"malformed Thrift message")
        self._recorder.add_rpc(
            RpcRecord(name, take_last_request(), started, time.perf_counter() - clock, 200)
        )
        return Reply(
            status=200,
            body=outbound.getvalue(),
            headers={"Content-Type": THRIFT_CONTENT_TYPE},
        )
