"""A forked child starts empty, with its own locks and worker, and keeps working."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from opentelemetry_instrumentation_dbsql import attributes as A

from .helpers import FileSink, HangingSink, direct_span, read_lines, statement_attrs

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def done_statement(sid: str):
    return direct_span(A.ROLE_STATEMENT, statement_attrs(sid, **{A.RESULT_OPEN: False}))


def wait_child(pid: int, timeout_s: float = 20.0) -> int:
    """The child's exit status; kills it and fails if it does not exit in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("forked child did not finish (deadlock?)")


def child_run(processor, path: str, prefix: str) -> int:
    """In the child: a fresh state, new spans, a flush that must succeed."""
    try:
        stats = processor.stats()
        if stats.live_statements or stats.queued_records or stats.records_emitted:
            return 3
        processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs(f"{prefix}-open")))
        for i in range(3):
            processor.on_end(done_statement(f"{prefix}-{i}"))
        if not processor.force_flush(5000):
            return 4
        if not processor.shutdown_with_timeout(5.0):
            return 5
        return 0
    except BaseException:
        return 6


def test_child_keeps_working_with_empty_state(make_processor, tmp_path: Path) -> None:
    path = str(tmp_path / "records.jsonl")
    processor = make_processor(FileSink(path), flush_interval_s=3600.0)
    processor.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("parent-open")))
    processor.on_end(done_statement("parent-0"))
    assert processor.force_flush(5000)
    pid = os.fork()
    if pid == 0:
        os._exit(child_run(processor, path, "child"))
    assert wait_child(pid) == 0
    lines = read_lines(path)
    child = [line for line in lines if line["pid"] == pid]
    assert sorted(line["statement_id"] for line in child) == [
        "child-0",
        "child-1",
        "child-2",
        "child-open",  # emitted incomplete by the child's shutdown, not the parent's state
    ]
    # the parent is untouched and still works
    assert processor.stats().live_statements == 1
    processor.on_end(done_statement("parent-1"))
    assert processor.force_flush(5000)
    parent = [line["statement_id"] for line in read_lines(path) if line["pid"] == os.getpid()]
    assert parent == ["parent-0", "parent-1"]


def test_fork_while_another_thread_holds_the_locks(make_processor, tmp_path: Path) -> None:
    path = str(tmp_path / "records.jsonl")
    processor = make_processor(FileSink(path), flush_interval_s=3600.0)
    processor.on_end(done_statement("warm-up"))  # worker running
    assert processor.force_flush(5000)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with processor._table._lock, processor._batcher._lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5.0)
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(child_run(processor, path, "locked"))
    finally:
        release.set()
        holder.join()
    assert wait_child(pid) == 0
    ids = sorted(line["statement_id"] for line in read_lines(path) if line["pid"] == pid)
    assert ids == ["locked-0", "locked-1", "locked-2", "locked-open"]


def test_fork_while_the_parent_worker_is_stuck_in_export(make_processor, tmp_path: Path) -> None:
    path = str(tmp_path / "records.jsonl")
    hanging = HangingSink()
    file_sink = FileSink(path)

    class ParentHangsChildWrites:
        def export(self, records):
            if os.getpid() == parent_pid:
                hanging.export(records)
            else:
                file_sink.export(records)

        def shutdown(self, timeout_s: float) -> None:
            pass

    parent_pid = os.getpid()
    processor = make_processor(ParentHangsChildWrites(), flush_interval_s=3600.0)
    processor.on_end(done_statement("stuck"))
    processor.force_flush(10)
    assert hanging.entered.wait(5.0)
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(child_run(processor, path, "fresh"))
        assert wait_child(pid) == 0
    finally:
        hanging.release()
    ids = sorted(line["statement_id"] for line in read_lines(path))
    assert ids == ["fresh-0", "fresh-1", "fresh-2", "fresh-open"]
