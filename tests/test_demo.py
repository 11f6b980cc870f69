"""``make demo`` keeps working: the demo runs and prints the workload and its telemetry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "demo" / "run.py"


def test_demo_prints_workload_spans_metrics_and_payloads() -> None:
    env_free = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run(
        [sys.executable, str(DEMO)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env_free,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "full scan (CloudFetch, LZ4)" in text and "5000 rows" in text
    assert "failed as expected: SQLSTATE 42P01" in text
    assert "- FETCH SELECT main.default.orders" in text  # a span tree
    assert "download SELECT main.default.orders" in text  # CloudFetch child spans
    assert "db.client.operation.duration" in text
    assert "client_app_name: opentelemetry-instrumentation-dbsql/" in text
    assert "chunk_details:" in text
    assert "ERROR" not in text
