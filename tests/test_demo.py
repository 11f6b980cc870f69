"""``make demo`` keeps working: the demo runs and prints the workload and its telemetry, and what
it prints is true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "demo" / "run.py"
IMPORTED = "DEMO-TEST imported databricks.sql.client"
CHUNKS = "databricks.client.result.chunks "

# Runs the demo as __main__, printing a line (on the demo's own stdout, so in order with its
# lines) when the driver's client module is imported: an audit hook sees every real import.
BOOTSTRAP = f"""
import runpy, sys

def hook(event, args):
    if event == "import" and args[0] == "databricks.sql.client":
        print({IMPORTED!r})

sys.addaudithook(hook)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def demo_output() -> str:
    env_free = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, str(DEMO)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env_free,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_demo_prints_workload_spans_metrics_and_payloads(demo_output: str) -> None:
    text = demo_output
    assert "full scan (CloudFetch, LZ4)" in text and "5000 rows" in text
    assert "failed as expected: SQLSTATE 42P01" in text
    assert "- FETCH SELECT main.default.orders" in text  # a span tree
    assert "download SELECT main.default.orders" in text  # CloudFetch child spans
    assert "db.client.operation.duration" in text
    assert "client_app_name: dbsql-demo x" in text  # the demo's user_agent_entry
    assert "chunk_details:" in text
    assert "ERROR" not in text


def test_connect_time_leaves_out_the_driver_import(demo_output: str) -> None:
    lines = demo_output.splitlines()
    assert lines.count(IMPORTED) == 1
    # The connect line times from just after the "Seeded" line to connect() returning.
    (seeded,) = [i for i, line in enumerate(lines) if line.startswith("Seeded ")]
    (connect,) = [i for i, line in enumerate(lines) if re.match(r"connect +- rows ", line)]
    assert lines.index(IMPORTED) < seeded < connect


def _tree(lines: list[str], root: str) -> list[str]:
    """The lines of the span tree whose root span is ``root``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{root} ("))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines)
    )
    return lines[start:end]


def test_span_trees_include_connect_and_close(demo_output: str) -> None:
    lines = demo_output.splitlines()
    host = re.search(r"Local warehouse at https?://([^:/]+)", demo_output)
    assert host
    connect = _tree(lines, "connect")
    assert [line.split(" (")[0] for line in connect[1:]] == [f"  - connect {host.group(1)}"]
    close = _tree(lines, "close")
    assert [line.split(" (")[0] for line in close[1:]] == [f"  - close {host.group(1)}"]


def test_chunk_metric_counts_the_cloudfetch_files(demo_output: str) -> None:
    downloads = re.search(r"(\d+) CloudFetch downloads", demo_output)
    assert downloads and int(downloads.group(1)) == 4  # the one CloudFetch step's files
    (chunks,) = [line for line in demo_output.splitlines() if line.startswith(CHUNKS)]
    assert chunks.split()[-1] == f"value={downloads.group(1)}"
