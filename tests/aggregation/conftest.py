"""Fixtures of the aggregation tests: a real SDK TracerProvider with the processor attached."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import Tracer, TracerProvider

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import (
    CollectingSink,
    StatementAggregationProcessor,
)

MakeProcessor = Callable[..., StatementAggregationProcessor]


@pytest.fixture
def make_processor() -> Iterator[MakeProcessor]:
    """Build processors; every one is shut down (bounded) after the test."""
    built: list[StatementAggregationProcessor] = []

    def make(sink: Any, **options: Any) -> StatementAggregationProcessor:
        processor = StatementAggregationProcessor(sink, **options)
        built.append(processor)
        return processor

    yield make
    for processor in built:
        processor.shutdown_with_timeout(2.0)
        # Never silent: after shutdown every emitted record was exported or counted as dropped.
        stats = processor.stats()
        assert stats.queued_records == 0
        assert stats.live_statements == 0
        assert stats.records_emitted == stats.records_exported + stats.records_dropped, stats


@pytest.fixture
def sink() -> CollectingSink:
    return CollectingSink()


@pytest.fixture
def processor(make_processor: MakeProcessor, sink: CollectingSink) -> StatementAggregationProcessor:
    """A processor with a long flush interval: tests flush explicitly."""
    return make_processor(sink, flush_interval_s=60.0)


@pytest.fixture
def provider(processor: StatementAggregationProcessor) -> Iterator[TracerProvider]:
    tp = TracerProvider(shutdown_on_exit=False)
    tp.add_span_processor(processor)
    yield tp


@pytest.fixture
def tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer(A.INSTRUMENTATION_SCOPE)
