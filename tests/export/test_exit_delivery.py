"""Interpreter exit with connections left open: every pending record is delivered in time.

Each test runs a real interpreter that instruments the real driver, runs statements against the
local warehouse started here, and exits without closing anything. The exit hook must close the
open statements, flush the aggregation batches into the sink, and have the sink send them,
within the 5 s exit budget, whichever of it and the SDK's own exit hook runs first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from opentelemetry_instrumentation_dbsql.process_events import EXIT_BUDGET_S
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.export.helpers import session_events, session_payloads, wait_for

N = 30
# A bound on behaviour (the exit does not wait for the hung endpoint beyond its budget), not a
# speed target: interpreter teardown and a loaded machine come on top of the budget. An exit that
# waits out the client's 10 s batch deadline instead (the SDK's hook first, its 30 s default
# passed down to the sink) stays above it.
SLACK_S = 4.0
REPORT = "REPORT "

SCRIPT = r"""
import json, logging, os, sys, time

logging.basicConfig(level=logging.WARNING, format="LOG %(name)s: %(message)s")
cfg = json.loads(sys.argv[1])
KEEP = []  # connections and cursors stay open until the interpreter exits


def report(**fields):
    print("REPORT " + json.dumps({"pid": os.getpid(), **fields}), flush=True)


from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

if cfg["sdk"] == "before":  # the SDK's exit hook is registered first, so it runs last
    trace.set_tracer_provider(TracerProvider())

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

kwargs = {}
if cfg["record_sink"]:

    class FileSink:
        def __init__(self, path):
            self.path = path

        def write(self, rows):
            with open(self.path, "a") as f:
                for row in rows:
                    f.write(json.dumps({"pid": os.getpid(), **row}) + "\n")

        def export(self, records):
            self.write([{"kind": type(r).__name__,
                         "statement_id": getattr(r, "statement_id", None),
                         "session_id": r.session_id} for r in records])

        def shutdown(self, timeout_s):
            self.write([{"kind": "shutdown"}])

    kwargs["record_sink"] = FileSink(cfg["record_sink"])
DbsqlInstrumentor().instrument(**kwargs)

if cfg["sdk"] == "after":  # the SDK's exit hook is registered last, so it runs first
    trace.set_tracer_provider(TracerProvider())

import databricks.sql
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import statement_id_of


def work(tag):
    conn = databricks.sql.connect(**cfg["connect"])
    session = conn.get_session_id_hex()
    report(event="connected", tag=tag, session=session)
    if cfg["wait_for_go"]:
        sys.stdin.readline()
    cursor = conn.cursor()
    ids = []
    for i in range(cfg["n"]):
        cursor.execute(f"SELECT {i} AS n")
        cursor.fetchall()
        ids.append(statement_id_of(cursor))
    KEEP.append((conn, cursor))
    report(event="exiting", tag=tag, session=session, ids=ids, at=time.monotonic())


if cfg["fork"] == "none":
    work("main")
elif cfg["fork"] == "os":
    work("parent")
    pid = os.fork()
    if pid == 0:
        work("child")
        sys.exit(0)  # a normal exit: atexit runs in the child
    _, status = os.waitpid(pid, 0)
    report(event="child_exit", code=os.waitstatus_to_exitcode(status))
elif cfg["fork"] == "mp":
    import multiprocessing

    work("parent")
    child = multiprocessing.get_context("fork").Process(target=work, args=("child",))
    child.start()
    child.join(60)
    report(event="child_exit", code=child.exitcode)
"""


@dataclass
class Run:
    """One finished child interpreter: its reports, stderr and exit timing."""

    reports: list[dict[str, Any]]
    stderr: str
    returncode: int
    exited_at: float
    record_lines: list[dict[str, Any]] = field(default_factory=list)

    def one(self, event: str, tag: str) -> dict[str, Any]:
        found = [r for r in self.reports if r["event"] == event and r.get("tag") == tag]
        assert len(found) == 1, (event, tag, self.reports, self.stderr)
        return found[0]

    @property
    def exit_took(self) -> float:
        """Seconds from the last statement to the end of the process (monotonic clock)."""
        return self.exited_at - max(r["at"] for r in self.reports if r["event"] == "exiting")


def _read_report(stream: IO[str], reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    for line in iter(stream.readline, ""):
        if line.startswith(REPORT):
            report: dict[str, Any] = json.loads(line[len(REPORT) :])
            reports.append(report)
            return report
    return None


def run_child(
    wh: LocalWarehouse,
    *,
    sdk: str = "none",
    fork: str = "none",
    record_sink: str | None = None,
    before_statements: Any = None,
    timeout_s: float = 60.0,
) -> Run:
    """Run SCRIPT; ``before_statements(report)`` runs after it connected, before statements."""
    cfg = {
        "sdk": sdk,
        "fork": fork,
        "n": N,
        "record_sink": record_sink,
        "wait_for_go": before_statements is not None,
        # One attempt: a test that fails must not leave the driver retrying a stopped server.
        "connect": wh.connect_kwargs(_retry_stop_after_attempts_count=1, _socket_timeout=10),
    }
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        assert child.stdout is not None and child.stdin is not None
        reports: list[dict[str, Any]] = []
        try:
            if before_statements is not None:
                connected = _read_report(child.stdout, reports)
                assert connected is not None and connected["event"] == "connected"
                before_statements(connected)
                child.stdin.write("go\n")
                child.stdin.flush()
            while _read_report(child.stdout, reports) is not None:
                pass  # EOF: the process (and any forked child) closed its stdout
            child.wait(timeout_s)
            exited_at = time.monotonic()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        err.seek(0)
        stderr = err.read()
    return Run(reports, stderr, child.returncode, exited_at)


def statement_ids_delivered(wh: LocalWarehouse, session_id: str) -> list[str]:
    """Statement ids of the EXECUTE_STATEMENT events the warehouse accepted for a session."""
    return [
        e["sql_statement_id"]
        for e in session_events(wh, session_id)
        if e.get("sql_statement_id")
        and e["sql_operation"]["operation_detail"]["operation_type"] == "EXECUTE_STATEMENT"
    ]


def assert_all_delivered(wh: LocalWarehouse, run: Run, tag: str) -> None:
    exiting = run.one("exiting", tag)
    ids = exiting["ids"]
    assert len(ids) == N and all(ids)
    delivered = statement_ids_delivered(wh, exiting["session"])
    assert sorted(delivered) == sorted(ids), (len(delivered), run.stderr)


@pytest.fixture
def released(wh: LocalWarehouse) -> Iterator[LocalWarehouse]:
    """The warehouse; held telemetry POSTs are answered after the test."""
    yield wh
    wh.telemetry.release()


@pytest.mark.parametrize("sdk", ["none", "before"])
def test_healthy_endpoint_receives_every_record(wh: LocalWarehouse, sdk: str) -> None:
    """No SDK provider (only this package's hook), or one whose exit hook runs after it."""
    run = run_child(wh, sdk=sdk)
    assert run.returncode == 0, run.stderr
    assert_all_delivered(wh, run, "main")
    for loss in ("not sent", "not exported", "without an answer"):
        assert loss not in run.stderr, run.stderr
    assert run.exit_took < EXIT_BUDGET_S + SLACK_S


def test_record_sink_of_the_user_receives_every_record(wh: LocalWarehouse, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    run = run_child(wh, record_sink=str(path))
    assert run.returncode == 0, run.stderr
    exiting = run.one("exiting", "main")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    statements = [
        r["statement_id"]
        for r in lines
        if r["kind"] == "StatementRecord" and r["session_id"] == exiting["session"]
    ]
    assert sorted(statements) == sorted(exiting["ids"]), run.stderr
    # The sink was shut down once, after the last batch.
    assert [r["kind"] for r in lines].count("shutdown") == 1
    assert lines[-1]["kind"] == "shutdown"


@pytest.mark.parametrize("sdk", ["none", "after"])
def test_hanging_endpoint_exit_keeps_the_budget(released: LocalWarehouse, sdk: str) -> None:
    """The records are sent (the POST reaches the endpoint) and the wait for an answer ends
    with the budget; what was not confirmed is reported. With ``after`` the SDK's exit hook
    runs first and shuts the processor down itself."""
    wh = released

    def hang_after_connect(connected: dict[str, Any]) -> None:
        # The session's CREATE_SESSION went through; every later POST hangs.
        assert wait_for(lambda: bool(session_payloads(wh, connected["session"])), 10.0)
        wh.telemetry.hang()

    run = run_child(wh, sdk=sdk, before_statements=hang_after_connect)
    assert run.returncode == 0, run.stderr
    took = run.exit_took
    assert took < EXIT_BUDGET_S + SLACK_S, (took, run.stderr)
    exiting = run.one("exiting", "main")
    posted = [
        json.loads(log)["entry"]["sql_driver_log"].get("sql_statement_id")
        for payload in session_payloads(wh, exiting["session"])
        for log in payload.get("protoLogs") or []
    ]
    assert set(exiting["ids"]) <= set(posted), run.stderr
    # Never silent: the records left without an answer are reported in a warning at exit.
    assert "records sent without an answer in time" in run.stderr, run.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_that_exits_normally_delivers_its_records(wh: LocalWarehouse) -> None:
    run = run_child(wh, fork="os")
    assert run.returncode == 0, run.stderr
    codes = [r["code"] for r in run.reports if r["event"] == "child_exit"]
    assert codes == [0], run.stderr
    assert run.one("exiting", "child")["pid"] != run.one("exiting", "parent")["pid"]
    assert_all_delivered(wh, run, "child")
    assert_all_delivered(wh, run, "parent")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_child_delivers_its_records(wh: LocalWarehouse) -> None:
    """multiprocessing ends its children with os._exit (no atexit): its finalizers run the
    exit sequence instead."""
    run = run_child(wh, fork="mp")
    assert run.returncode == 0, run.stderr
    codes = [r["code"] for r in run.reports if r["event"] == "child_exit"]
    assert codes == [0], run.stderr
    assert_all_delivered(wh, run, "child")
    assert_all_delivered(wh, run, "parent")
