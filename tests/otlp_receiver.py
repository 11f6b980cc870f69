"""A real OTLP/gRPC receiver for tests: records every trace, metric and log export request.

``OtlpReceiver`` serves the OTLP collector services (trace, metrics, logs) on 127.0.0.1 at an
ephemeral port. Each export request is kept as received (a protobuf message) under a lock; the
helpers flatten them into plain Python values::

    with OtlpReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.endpoint, insecure=True)
        ...
        receiver.wait_for(lambda: receiver.spans_named("SELECT orders"), timeout=10)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

AttributeValue = str | bool | int | float | bytes | list[Any] | dict[str, Any] | None
Attributes = dict[str, AttributeValue]

_SPAN_KINDS: Mapping[int, str] = {
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUS_CODES: Mapping[int, str] = {
    trace_pb2.Status.STATUS_CODE_UNSET: "UNSET",
    trace_pb2.Status.STATUS_CODE_OK: "OK",
    trace_pb2.Status.STATUS_CODE_ERROR: "ERROR",
}


def any_value(value: AnyValue) -> AttributeValue:
    """The Python value of an OTLP ``AnyValue``."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bytes_value":
        return value.bytes_value
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    raise ValueError(f"unknown AnyValue field {which!r}")


def attributes_of(key_values: Iterable[KeyValue]) -> Attributes:
    """OTLP ``KeyValue`` pairs as a plain dict."""
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass(frozen=True)
class ReceivedEvent:
    """A span event."""

    name: str
    time_unix_nano: int
    attributes: Attributes


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received, flattened."""

    name: str
    attributes: Attributes
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    status_code: str
    status_message: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    scope_name: str
    scope_version: str
    resource: Attributes
    events: tuple[ReceivedEvent, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e9


@dataclass(frozen=True)
class ReceivedPoint:
    """One metric data point as received, flattened.

    ``kind`` is ``"sum"``, ``"gauge"``, ``"histogram"``, ``"exponential_histogram"`` or
    ``"summary"``. ``value`` is set for sums and gauges; ``count``, ``sum`` and the buckets
    for histograms. ``monotonic`` and ``temporality`` are those of the metric (sums and
    histograms).
    """

    metric: str
    kind: str
    unit: str
    attributes: Attributes
    start_time_unix_nano: int
    time_unix_nano: int
    scope_name: str
    resource: Attributes
    value: float | int | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()
    monotonic: bool | None = None
    temporality: int | None = None


def _hex(raw: bytes) -> str:
    return raw.hex()


def _number(point: metrics_pb2.NumberDataPoint) -> float | int | None:
    which = point.WhichOneof("value")
    if which == "as_int":
        return point.as_int
    if which == "as_double":
        return point.as_double
    return None


def _points_of(
    metric: metrics_pb2.Metric, scope_name: str, resource: Attributes
) -> list[ReceivedPoint]:
    which = metric.WhichOneof("data")
    common: dict[str, Any] = {
        "metric": metric.name,
        "unit": metric.unit,
        "scope_name": scope_name,
        "resource": resource,
    }
    points: list[ReceivedPoint] = []
    if which in ("sum", "gauge"):
        data: Any = metric.sum if which == "sum" else metric.gauge
        monotonic = metric.sum.is_monotonic if which == "sum" else None
        temporality = metric.sum.aggregation_temporality if which == "sum" else None
        for number in data.data_points:
            points.append(
                ReceivedPoint(
                    kind=which,
                    attributes=attributes_of(number.attributes),
                    start_time_unix_nano=number.start_time_unix_nano,
                    time_unix_nano=number.time_unix_nano,
                    value=_number(number),
                    monotonic=monotonic,
                    temporality=temporality,
                    **common,
                )
            )
    elif which == "histogram":
        for hist in metric.histogram.data_points:
            points.append(
                ReceivedPoint(
                    kind="histogram",
                    attributes=attributes_of(hist.attributes),
                    start_time_unix_nano=hist.start_time_unix_nano,
                    time_unix_nano=hist.time_unix_nano,
                    count=hist.count,
                    sum=hist.sum if hist.HasField("sum") else None,
                    bucket_counts=tuple(hist.bucket_counts),
                    explicit_bounds=tuple(hist.explicit_bounds),
                    temporality=metric.histogram.aggregation_temporality,
                    **common,
                )
            )
    elif which == "exponential_histogram":
        for exp in metric.exponential_histogram.data_points:
            points.append(
                ReceivedPoint(
                    kind="exponential_histogram",
                    attributes=attributes_of(exp.attributes),
                    start_time_unix_nano=exp.start_time_unix_nano,
                    time_unix_nano=exp.time_unix_nano,
                    count=exp.count,
                    sum=exp.sum if exp.HasField("sum") else None,
                    temporality=metric.exponential_histogram.aggregation_temporality,
                    **common,
                )
            )
    elif which == "summary":
        for summary in metric.summary.data_points:
            points.append(
                ReceivedPoint(
                    kind="summary",
                    attributes=attributes_of(summary.attributes),
                    start_time_unix_nano=summary.start_time_unix_nano,
                    time_unix_nano=summary.time_unix_nano,
                    count=summary.count,
                    sum=summary.sum,
                    **common,
                )
            )
    return points


def _series_key(point: ReceivedPoint) -> tuple[str, str, str]:
    return (
        point.metric,
        repr(sorted(point.attributes.items())),
        repr(sorted(point.resource.items())),
    )


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver._record(self._receiver._trace_requests, request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._receiver._record(self._receiver._metric_requests, request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._receiver._record(self._receiver._log_requests, request)
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpReceiver:
    """An OTLP/gRPC server on 127.0.0.1 recording every export request (thread-safe)."""

    def __init__(self, host: str = "127.0.0.1", max_workers: int = 4) -> None:
        self._host = host
        self._max_workers = max_workers
        self._lock = threading.Condition()
        self._trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._log_requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self._server: Any = None
        self._port = 0

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        if self._server is not None:
            raise RuntimeError("receiver already started")
        server = grpc.server(ThreadPoolExecutor(max_workers=self._max_workers))
        # The generated registration functions are unannotated; typed here.
        registrations: list[tuple[Callable[[Any, Any], None], object]] = [
            (trace_service_pb2_grpc.add_TraceServiceServicer_to_server, _TraceService(self)),
            (
                metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
                _MetricsService(self),
            ),
            (logs_service_pb2_grpc.add_LogsServiceServicer_to_server, _LogsService(self)),
        ]
        for register, servicer in registrations:
            register(servicer, server)
        port = server.add_insecure_port(f"{self._host}:0")
        if not port:
            raise RuntimeError(f"could not bind an OTLP receiver on {self._host}")
        server.start()
        self._server = server
        self._port = int(port)
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace_s).wait(grace_s + 5.0)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """The URL to give an OTLP/gRPC exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://{self._host}:{self.port}"

    # --- recording -----------------------------------------------------------------------------
    def _record(self, requests: list[Any], request: Any) -> None:
        with self._lock:
            requests.append(request)
            self._lock.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._trace_requests.clear()
            self._metric_requests.clear()
            self._log_requests.clear()

    def trace_requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        with self._lock:
            return list(self._trace_requests)

    def metric_requests(self) -> list[metrics_service_pb2.ExportMetricsServiceRequest]:
        with self._lock:
            return list(self._metric_requests)

    def log_requests(self) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        with self._lock:
            return list(self._log_requests)

    # --- flattened views -----------------------------------------------------------------------
    def spans(self) -> list[ReceivedSpan]:
        """Every span received, in arrival order."""
        found: list[ReceivedSpan] = []
        for request in self.trace_requests():
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    scope = scope_spans.scope
                    for span in scope_spans.spans:
                        found.append(
                            ReceivedSpan(
                                name=span.name,
                                attributes=attributes_of(span.attributes),
                                trace_id=_hex(span.trace_id),
                                span_id=_hex(span.span_id),
                                parent_span_id=_hex(span.parent_span_id)
                                if span.parent_span_id
                                else None,
                                kind=_SPAN_KINDS.get(span.kind, str(span.kind)),
                                status_code=_STATUS_CODES.get(
                                    span.status.code, str(span.status.code)
                                ),
                                status_message=span.status.message,
                                start_time_unix_nano=span.start_time_unix_nano,
                                end_time_unix_nano=span.end_time_unix_nano,
                                scope_name=scope.name,
                                scope_version=scope.version,
                                resource=resource,
                                events=tuple(
                                    ReceivedEvent(
                                        event.name,
                                        event.time_unix_nano,
                                        attributes_of(event.attributes),
                                    )
                                    for event in span.events
                                ),
                            )
                        )
        return found

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans() if span.name == name]

    def spans_where(self, key: str, value: AttributeValue) -> list[ReceivedSpan]:
        """Spans whose attribute ``key`` equals ``value``."""
        return [span for span in self.spans() if span.attributes.get(key) == value]

    def metrics(self) -> dict[str, list[ReceivedPoint]]:
        """Metric name -> every data point received for it, in arrival order.

        With cumulative temporality each export repeats the running totals: use
        ``latest_metrics()`` for the final value of each series.
        """
        found: dict[str, list[ReceivedPoint]] = {}
        for request in self.metric_requests():
            for resource_metrics in request.resource_metrics:
                resource = attributes_of(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    scope_name = scope_metrics.scope.name
                    for metric in scope_metrics.metrics:
                        found.setdefault(metric.name, []).extend(
                            _points_of(metric, scope_name, resource)
                        )
        return found

    def latest_metrics(self) -> dict[str, list[ReceivedPoint]]:
        """Metric name -> the last point received for each series (attribute set, resource)."""
        latest: dict[tuple[str, str, str], ReceivedPoint] = {}
        for points in self.metrics().values():
            for point in points:
                key = _series_key(point)
                previous = latest.get(key)
                if previous is None or point.time_unix_nano >= previous.time_unix_nano:
                    latest[key] = point
        found: dict[str, list[ReceivedPoint]] = {}
        for point in latest.values():
            found.setdefault(point.metric, []).append(point)
        return found

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` is truthy (re-checked on every request and every 50 ms);
        returns its last truth value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._lock:
                self._lock.wait(min(remaining, 0.05))
