"""Running a script of ``examples/`` as a user would: in a subprocess, from a POSIX shell that
first runs the ``export`` lines the local warehouse prints.

Each run goes through a small bootstrap that logs the instrumentation's own failures (DEBUG) and
reports their counts at exit, so a failure inside the instrumentation fails the test as it
would in-process.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.otlp_receiver import OtlpReceiver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT_S = 60.0
FAILURES_MARK = "DBSQL_EXAMPLE_FAILURES "

# Runs an example as __main__ after arranging for the instrumentation's failure counts to be
# printed at exit (registered first, so it runs after the SDK's own exit handlers).
BOOTSTRAP = f"""
import atexit, json, logging, runpy, sys
logging.basicConfig(level=logging.WARNING)
logging.getLogger("opentelemetry_instrumentation_dbsql").setLevel(logging.DEBUG)
from opentelemetry_instrumentation_dbsql.log_once import failure_counts
atexit.register(lambda: print({FAILURES_MARK!r} + json.dumps(failure_counts()), file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class Run:
    stdout: str
    stderr: str

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(prefix)]


def run_example(
    name: str,
    exports: Sequence[str],
    cwd: Path,
    *,
    receiver: OtlpReceiver | None = None,
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``examples/<name>.py`` after the shell lines ``exports``; assert it exits 0 with no
    internal instrumentation failure. Nothing of the test's own environment reaches it that
    names a warehouse or configures OpenTelemetry."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABRICKS_", "DBSQL_"))
    }
    environ["PYTHONUNBUFFERED"] = "1"
    if receiver is not None:
        environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        environ["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    environ.update(env or {})
    command = [*prefix, sys.executable, "-c", BOOTSTRAP, str(EXAMPLES / f"{name}.py")]
    script = "\n".join([*exports, "exec " + shlex.join(command)])
    done = subprocess.run(
        ["sh", "-c", script],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    marks = [line for line in done.stderr.splitlines() if line.startswith(FAILURES_MARK)]
    assert marks, done.stderr
    assert json.loads(marks[-1][len(FAILURES_MARK) :]) == {}, done.stderr
    assert "instrumentation failure" not in done.stderr, done.stderr
    return Run(done.stdout, done.stderr)
