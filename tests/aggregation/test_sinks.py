"""The ready-made sinks."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import (
    CollectingSink,
    LoggingSink,
    RecordSink,
)

from .helpers import direct_span, session_attrs, statement_attrs


def test_sinks_implement_the_protocol() -> None:
    assert isinstance(CollectingSink(), RecordSink)
    assert isinstance(LoggingSink(), RecordSink)


def test_collecting_sink_wait_for_times_out_and_wakes_up() -> None:
    sink = CollectingSink()
    start = time.monotonic()
    assert not sink.wait_for(lambda records: len(records) > 0, 0.1)
    assert 0.09 <= time.monotonic() - start < 1.0
    timer = threading.Timer(0.05, sink.export, args=([object()],))  # type: ignore[list-item]
    timer.start()
    assert sink.wait_for(lambda records: len(records) == 1, 5.0)
    assert sink.batch_sizes == [1]
    sink.clear()
    assert sink.records == []


def test_logging_sink_logs_each_record(make_processor, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.records")
    processor = make_processor(LoggingSink(logger, logging.INFO), flush_interval_s=3600.0)
    with caplog.at_level(logging.INFO, logger="test.records"):
        processor.on_end(direct_span(A.ROLE_CREATE_SESSION, session_attrs()))
        processor.on_end(
            direct_span(A.ROLE_STATEMENT, statement_attrs("log-1", **{A.RESULT_OPEN: False}))
        )
        assert processor.force_flush(5000)
    messages = [r.getMessage() for r in caplog.records if r.name == "test.records"]
    assert len(messages) == 2
    assert "ConnectionRecord" in messages[0]
    assert "log-1" in messages[1]
