"""Instructions per statement of each arm, counted by valgrind's callgrind, every thread included.

    .venv/bin/python benchmarks/bench_instructions.py [--statements N] [--windows K]
        [--warmup W] [--arms a,b,...] [--keep DIR] [--cache-sim]

CPU time per statement drifts by a few percent from round to round on a shared machine, which
is the size of the differences between arms (``bench_inprocess.py`` shows the spread).
Instruction counts do not depend on the machine's load. Each arm runs in its own process under
``valgrind --tool=callgrind`` against one local warehouse (in its own process, not under
valgrind). After connecting and ``--warmup`` statements, the process runs ``--windows`` windows
of ``--statements`` x ``cursor.execute("SELECT 1"); cursor.fetchall()`` and asks callgrind to
dump its counters at the start and after each window (a client request made through a tiny C
library compiled here with gcc), so start-up, imports and connect are not counted. A dump
covers every thread of the process: span processors, this package's export workers, the
driver's own telemetry threads.

Work a window hands to a background thread (a batch exported every 100 statements) may finish
in the next window; with windows of a multiple of 100 statements each window carries the same
share on average. The table shows, per arm, the median over windows of instructions per
statement and the difference from ``bare-off``. ``--keep DIR`` keeps the dumps
(``DIR/<arm>.out.<n>``) for ``callgrind_annotate``. ``--cache-sim`` also has callgrind simulate
the first-level and last-level caches (a model of this machine's, with the threads run one at
a time) and prints the misses per statement: instructions that miss the caches cost far more
than others, which instruction counts alone do not show.

Under valgrind the threads run one at a time and everything runs about 50 times slower, so
timer-driven work (idle sweeps, periodic flushes) runs about 50 times more often per statement
than it would natively: the counts slightly overstate the threaded arms.

Arms:

``bare-off``       the driver, ``enable_telemetry=False`` (its own telemetry off)
``bare-native``    the driver with its own telemetry forced on
``dbsql-nosdk``    this package with no SDK, Databricks export off, the driver's own telemetry
                   off (``enable_telemetry=False``, as in ``bare-off``)
``dbsql-export``   this package with no SDK, Databricks export forced on (the driver's own
                   telemetry is then off on the connection)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import start_warehouse

STATEMENT = "SELECT 1"
ARMS = ("bare-off", "bare-native", "dbsql-nosdk", "dbsql-export")

_CONTROL_C = """
#include <valgrind/callgrind.h>
void dump_stats_at(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""


def _build_control_library(directory: Path) -> Path:
    source = directory / "callgrind_control.c"
    library = directory / "callgrind_control.so"
    source.write_text(_CONTROL_C)
    subprocess.run(
        ["gcc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
    )
    return library


def _set_up(arm: str, kwargs: dict[str, Any]) -> Callable[[], None]:
    if arm == "bare-off":
        kwargs["enable_telemetry"] = False
        return lambda: None
    if arm == "bare-native":
        kwargs["force_enable_telemetry"] = True
        return lambda: None
    from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor

    instrumentor = DbsqlInstrumentor()
    if arm == "dbsql-nosdk":
        instrumentor.instrument(enable_telemetry=False)
        kwargs["enable_telemetry"] = False
    elif arm == "dbsql-export":
        instrumentor.instrument(force_enable_telemetry=True)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    return instrumentor.uninstrument


def _worker(arm: str, kwargs: dict[str, Any], library: str, args: argparse.Namespace) -> None:
    import databricks.sql
    import databricks.sql.client  # imported before instrument(), as in an app

    dump = ctypes.CDLL(library).dump_stats_at
    dump.argtypes = [ctypes.c_char_p]
    tear_down = _set_up(arm, kwargs)
    connection = databricks.sql.connect(**kwargs)
    cursor = connection.cursor()
    for _ in range(args.warmup):
        cursor.execute(STATEMENT)
        cursor.fetchall()
    dump(b"start")
    for window in range(args.windows):
        for _ in range(args.statements):
            cursor.execute(STATEMENT)
            cursor.fetchall()
        dump(f"window-{window}".encode())
    cursor.close()
    connection.close()
    tear_down()


def _totals(path: Path) -> tuple[str, dict[str, int]]:
    """The dump's trigger and its totals by event (``Ir``, and the cache events if simulated)."""
    text = path.read_text()
    trigger = re.search(r"^desc: Trigger: (.*)$", text, re.M)
    events = re.search(r"^events:\s+(.*)$", text, re.M)
    total = re.search(r"^(?:totals|summary):\s+(.*)$", text, re.M)
    if trigger is None or events is None or total is None:
        raise RuntimeError(f"{path}: no trigger, events or totals line")
    values = [int(v) for v in total.group(1).split()]
    names = events.group(1).split()
    padded = values + [0] * (len(names) - len(values))  # trailing zeros may be left out
    return trigger.group(1), dict(zip(names, padded, strict=True))


def _run_arm(
    arm: str, kwargs: dict[str, Any], library: Path, directory: Path, args: argparse.Namespace
) -> list[dict[str, float]]:
    """Per window: each event's count per statement."""
    out = directory / f"{arm}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        f"--cache-sim={'yes' if args.cache_sim else 'no'}",
        sys.executable,
        __file__,
        "--worker",
        arm,
        "--kwargs",
        json.dumps(kwargs),
        "--library",
        str(library),
        "--statements",
        str(args.statements),
        "--windows",
        str(args.windows),
        "--warmup",
        str(args.warmup),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run(command, check=True, env=env, capture_output=True)
    per_statement: list[dict[str, float]] = []
    for path in sorted(directory.glob(f"{arm}.out.*"), key=lambda p: int(p.suffix[1:])):
        label, totals = _totals(path)
        if "window-" in label:
            per_statement.append({k: v / args.statements for k, v in totals.items()})
    if len(per_statement) != args.windows:
        raise RuntimeError(f"{arm}: {len(per_statement)} windows dumped, {args.windows} expected")
    return per_statement


def main(argv: Sequence[str] | None = None) -> int:
    """Run every arm under callgrind and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=200)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this directory")
    parser.add_argument("--cache-sim", action="store_true", help="also count cache misses")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, json.loads(args.kwargs), args.library, args)
        return 0
    names = [n.strip() for n in args.arms.split(",") if n.strip()]
    for name in names:
        if name not in ARMS:
            parser.error(f"--arms: unknown arm {name!r}; accepted: {', '.join(ARMS)}")
    if "bare-off" not in names:
        names.insert(0, "bare-off")
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        parser.error("needs valgrind and gcc on PATH")
    process, kwargs = start_warehouse()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as temp:
            directory = args.keep or Path(temp)
            directory.mkdir(parents=True, exist_ok=True)
            library = _build_control_library(Path(temp))
            for name in names:
                for old in directory.glob(f"{name}.out*"):
                    old.unlink()
                results[name] = _run_arm(name, kwargs, library, directory, args)
                print(f"{name} done", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(10)

    print(
        f"\ninstructions per execute({STATEMENT!r}) + fetchall(), every thread, median of"
        f" {args.windows} windows of {args.statements} statements\n"
    )
    instructions = {name: [w["Ir"] for w in results[name]] for name in names}
    base = statistics.median(instructions["bare-off"])
    header = f"{'arm':<14} {'instructions':>13} {'vs bare-off':>12}   windows (millions)"
    print(header)
    print("-" * len(header))
    for name in names:
        median = statistics.median(instructions[name])
        windows = " ".join(f"{v / 1e6:.3f}" for v in instructions[name])
        print(f"{name:<14} {median:13,.0f} {median - base:+12,.0f}   {windows}")
    if "bare-native" in results and "dbsql-export" in results:
        native = statistics.median(instructions["bare-native"]) - base
        export = statistics.median(instructions["dbsql-export"]) - base
        print(
            f"\ndbsql-export vs bare-native: {export:+,.0f} against {native:+,.0f} instructions"
            f" per statement (ratio {export / native:.2f})"
        )
    if args.cache_sim:
        _print_misses(names, results)
    return 0


def _print_misses(names: Sequence[str], results: dict[str, list[dict[str, float]]]) -> None:
    groups = {
        "L1 misses": ("I1mr", "D1mr", "D1mw"),
        "LL misses": ("ILmr", "DLmr", "DLmw"),
    }
    medians = {
        name: {
            group: statistics.median(sum(w.get(e, 0.0) for e in events) for w in results[name])
            for group, events in groups.items()
        }
        for name in names
    }
    print("\ncache misses per statement (simulated), median of the windows\n")
    header = f"{'arm':<14}" + "".join(f" {g:>12} {'vs bare-off':>12}" for g in groups)
    print(header)
    print("-" * len(header))
    for name in names:
        line = f"{name:<14}"
        for group in groups:
            value = medians[name][group]
            line += f" {value:12,.0f} {value - medians['bare-off'][group]:+12,.0f}"
        print(line)


if __name__ == "__main__":
    raise SystemExit(main())
