"""Per-statement cost of the instrumentation on each connector backend, side by side in ONE
process.

    .venv/bin/python benchmarks/bench_backends.py [--rounds R] [--iterations N] [--warmup W]
        [--backends thrift,sea,kernel]

The backends: ``thrift`` (the default), ``sea`` (``use_sea=True``) and ``kernel``
(``use_kernel=True``, when ``databricks-sql-connector[kernel]`` is installed; skipped otherwise).
Each runs against the same local warehouse (in its own process, so its CPU is not counted),
with the driver's own telemetry off, in three arms:

``bare``    the driver alone
``sdk``     ``instrument()`` with SDK tracer and meter providers (spans dropped by a batch
            processor), Databricks export off
``export``  ``instrument()`` without an SDK, Databricks export forced on (to the warehouse's
            telemetry endpoint; the driver's own telemetry is then off)

A round runs every backend's arms once, in an order rotated each round, as
``bench_inprocess.py`` does: set-up, a fresh connection, ``--warmup`` statements, then
``--iterations`` x ``cursor.execute("SELECT 1"); cursor.fetchall()`` timed, close, tear-down.
An arm's cost is its CPU per statement (``time.process_time``: every thread, the kernel's native
ones included) minus its backend's bare CPU in the same round: median over rounds +/- half the
interquartile range, and the ratio instrumented / bare. The calling thread's CPU
(``time.thread_time``, where this package's hooks mostly run) is compared the same way.

What a ``SELECT 1`` costs differs by backend before any instrumentation: over SEA every result
comes by an external link (one CloudFetch download per statement) unless asked otherwise.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inprocess import STATEMENT, _instrumented, _spread
from bench_overhead import _sdk_providers, start_warehouse

BACKENDS = ("thrift", "sea", "kernel")
ARMS = ("bare", "sdk", "export")


def _available(backend: str) -> bool:
    module = {
        "thrift": "databricks.sql.backend.thrift_backend",
        "sea": "databricks.sql.backend.sea.backend",
        "kernel": "databricks_sql_kernel",
    }[backend]
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def backend_kwargs(base: dict[str, Any], backend: str) -> dict[str, Any]:
    """Connect kwargs for ``backend`` from the standalone warehouse's Thrift ones."""
    kwargs = dict(base)
    kwargs["enable_telemetry"] = False
    if backend == "sea":
        # The SEA backend builds "<server_hostname>:<_port>": the origin without its port.
        host = str(kwargs["server_hostname"])
        kwargs["server_hostname"] = host.rsplit(":", 1)[0]
        kwargs.pop("_connection_uri", None)
        kwargs["use_sea"] = True
    elif backend == "kernel":
        kwargs["use_kernel"] = True
    return kwargs


def _set_up(arm: str, providers: tuple[Any, Any]) -> Callable[[], Callable[[], None]]:
    if arm == "bare":
        return lambda: lambda: None
    if arm == "export":
        return _instrumented(force_enable_telemetry=True)
    tracer_provider, meter_provider = providers
    return _instrumented(
        tracer_provider=tracer_provider, meter_provider=meter_provider, enable_telemetry=False
    )


def _run(
    set_up: Callable[[], Callable[[], None]], kwargs: dict[str, Any], warmup: int, iterations: int
) -> tuple[float, float]:
    import databricks.sql

    tear_down = set_up()
    try:
        connection = databricks.sql.connect(**kwargs)
        try:
            cursor = connection.cursor()
            for _ in range(warmup):
                cursor.execute(STATEMENT)
                cursor.fetchall()
            gc.collect()
            cpu0, thread0 = time.process_time_ns(), time.thread_time_ns()
            for _ in range(iterations):
                cursor.execute(STATEMENT)
                cursor.fetchall()
            thread1, cpu1 = time.thread_time_ns(), time.process_time_ns()
            cursor.close()
        finally:
            connection.close()
    finally:
        tear_down()
    return (cpu1 - cpu0) / iterations / 1e3, (thread1 - thread0) / iterations / 1e3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print one table per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in wanted:
        if backend not in BACKENDS:
            parser.error(f"--backends: unknown {backend!r}; accepted: {', '.join(BACKENDS)}")
    backends = [b for b in wanted if _available(b)]
    for backend in set(wanted) - set(backends):
        print(f"skipped {backend}: not installed", file=sys.stderr)
    if not backends:
        return 1

    import databricks.sql.client  # noqa: F401  (instrument() patches at once, not on import)

    providers = _sdk_providers()
    runs = [(b, a) for b in backends for a in ARMS]
    process, base = start_warehouse()
    cpu: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    thread: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    try:
        for index in range(args.rounds):
            shift = index % len(runs)
            for backend, arm in runs[shift:] + runs[:shift]:
                kwargs = backend_kwargs(base, backend)
                if arm == "export":  # the instrumentation turns the driver's own off
                    del kwargs["enable_telemetry"]
                c, t = _run(_set_up(arm, providers), kwargs, args.warmup, args.iterations)
                cpu[(backend, arm)].append(c)
                thread[(backend, arm)].append(t)
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(10)

    print(
        f"\n{args.iterations} x execute({STATEMENT!r}) + fetchall() per arm and round,"
        f" {args.rounds} rounds, one process; per statement: CPU of every thread | CPU of"
        " the calling thread\n"
    )
    header = (
        f"{'backend':<8} {'arm':<6} {'CPU us':>8} {'vs bare':>18} {'ratio':>6} |"
        f" {'thread us':>9} {'vs bare':>18} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for backend in backends:
        line_parts = {arm: f"{backend:<8} {arm:<6}" for arm in ARMS}
        for table, sep in ((cpu, " "), (thread, " | ")):
            bare = table[(backend, "bare")]
            for arm in ARMS:
                values = table[(backend, arm)]
                part = f"{sep}{statistics.median(values):8.1f}"
                if arm == "bare":
                    part += " " * 25
                else:
                    delta = [a - b for a, b in zip(values, bare, strict=True)]
                    ratio = statistics.median(values) / statistics.median(bare)
                    part += (
                        f" {statistics.median(delta):+8.1f} +/-{_spread(delta):5.1f} {ratio:6.3f}"
                    )
                line_parts[arm] += part
        for arm in ARMS:
            print(line_parts[arm])
    return 0


if __name__ == "__main__":
    sys.exit(main())
