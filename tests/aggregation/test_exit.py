"""Interpreter exit without an SDK provider: the exit hook flushes every processor in time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from opentelemetry_instrumentation_dbsql.process_events import EXIT_BUDGET_S

from .helpers import read_lines

# Interpreter start-up and teardown on a loaded machine come on top of the budget.
SLACK_S = 4.0

SCRIPT = r"""
import sys
from opentelemetry_instrumentation_dbsql import attributes as A
from opentelemetry_instrumentation_dbsql.aggregation import StatementAggregationProcessor
from tests.aggregation.helpers import FileSink, HangingSink, direct_span, statement_attrs

hung = StatementAggregationProcessor(HangingSink(), flush_interval_s=3600.0)
healthy = StatementAggregationProcessor(FileSink(sys.argv[1]), flush_interval_s=3600.0)
for i in range(5):
    done = statement_attrs(f"done-{i}", **{A.RESULT_OPEN: False})
    hung.on_end(direct_span(A.ROLE_STATEMENT, done))
    healthy.on_end(direct_span(A.ROLE_STATEMENT, done))
# Still open at exit: emitted as incomplete.
healthy.on_end(direct_span(A.ROLE_STATEMENT, statement_attrs("open")))
print("exiting", flush=True)
"""


def test_processors_shut_down_side_by_side_within_the_budget(tmp_path: Path) -> None:
    """One processor's sink hangs at exit; the other one's records still all arrive, and the
    exit keeps the one budget."""
    path = tmp_path / "records.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "exiting"
    exiting_at = time.monotonic()
    _, stderr = child.communicate(timeout=60)
    took = time.monotonic() - exiting_at
    assert child.returncode == 0, stderr
    ids = sorted(line["statement_id"] for line in read_lines(str(path)))
    assert ids == ["done-0", "done-1", "done-2", "done-3", "done-4", "open"], stderr
    assert took < EXIT_BUDGET_S + SLACK_S, (took, stderr)
    # The hung processor's records are reported, not lost silently.
    assert "records not exported" in stderr, stderr
