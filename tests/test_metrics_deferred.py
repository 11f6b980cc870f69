"""Deferred histogram records: recorded when the SDK collects, bounded while nobody does."""

from __future__ import annotations

from typing import Any

from opentelemetry.context import get_current
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from opentelemetry_instrumentation_dbsql.metrics import DeferredRecords, Instruments


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_buffered_records_land_in_the_next_collection() -> None:
    reader = InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[reader]).get_meter("t"))
    attributes = {"db.system.name": "databricks"}
    for value in (0.5, 1.5, 2.5):
        instruments.deferred.record(
            instruments.operation_duration, value, attributes, get_current()
        )
    (point,) = _points(reader, "db.client.operation.duration")
    assert point.count == 3
    assert point.sum == 4.5
    assert dict(point.attributes) == attributes


def test_a_full_buffer_is_recorded_by_the_caller() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    histogram = meter.create_histogram("h")
    deferred = DeferredRecords(limit=4)
    for _ in range(10):
        deferred.record(histogram, 1.0, {}, get_current())
        assert len(deferred._buffer) < 4  # never more than the limit is held
    (point,) = _points(reader, "h")
    assert point.count == 8  # two full buffers recorded; the last two wait for a drain
    deferred.drain()
    (point,) = _points(reader, "h")
    assert point.count == 10
