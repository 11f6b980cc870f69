"""The standalone warehouse, ``python -m opentelemetry_instrumentation_dbsql.testing.warehouse``,
run as a user runs it: in a subprocess, stopped by a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

MODULE = "opentelemetry_instrumentation_dbsql.testing.warehouse"
READY = "Press Ctrl+C to stop."
# Guards against a hang only: a healthy start or stop takes a small fraction of it.
HANG_GUARD_S = 30.0


# What a shell does for a background job (`cmd &`): the program is exec'd with SIGINT ignored,
# a disposition that survives exec.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@pytest.fixture
def cli() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the CLI; whatever is still running at the end of the test is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
        launcher = [sys.executable, "-c", IGNORING_SIGINT] if sigint_ignored else [sys.executable]
        process = subprocess.Popen(
            [*launcher, "-m", MODULE, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _read_until_ready(process: subprocess.Popen[str]) -> list[str]:
    """The lines printed up to and including the ready line."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.strip() == READY:
            return lines
    pytest.fail(f"exited before serving: {lines} {process.stderr.read() if process.stderr else ''}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stops_cleanly_on_signal_even_with_sigint_ignored(
    cli: Callable[..., subprocess.Popen[str]], signum: signal.Signals
) -> None:
    process = cli(sigint_ignored=True)
    _read_until_ready(process)
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still serving {HANG_GUARD_S:.0f} s after {signum.name}")
    assert process.returncode == 0, err
    assert out.strip().splitlines()[-1] == "Stopped."
    assert "Traceback" not in err


def test_stops_cleanly_on_sigint_from_a_foreground_start(
    cli: Callable[..., subprocess.Popen[str]],
) -> None:
    process = cli()
    _read_until_ready(process)
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still serving {HANG_GUARD_S:.0f} s after SIGINT")
    assert process.returncode == 0, err
    assert out.strip().splitlines()[-1] == "Stopped."
    assert "Traceback" not in err
