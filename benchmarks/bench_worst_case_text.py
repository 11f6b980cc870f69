"""Worst-case statement texts and error messages, each against a plain ``SELECT 1``.

    .venv/bin/python benchmarks/bench_worst_case_text.py [--repeat R] [--cases a,b,...]

Every case is a statement that fails with a message echoing its text, as Spark parse errors do
(``== SQL ==`` followed by the statement). Two paths are timed per case, each cold (the
``analyze`` cache is emptied first, as for a statement never seen before):

``query text``
    ``Runtime.query_info``: what every statement pays for ``db.query.text`` and its summary.
``failure``
    ``SpanRecorder.record_error`` with the driver's ``ServerOperationError``: classification
    and the sanitized ``exception.message``. ``spans`` is how many spans record the same
    failure (a CloudFetch download failure reaches the download's span and its statement's).

``extra`` is the sum of both minus the same sum for ``SELECT 1`` failing the same way: what the
case costs a statement on top of the cheapest one. Each figure is the best of ``--repeat`` runs
(one run when a single call takes over a second). To compare with an earlier version, run the
script with that version's ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from databricks.sql import exc as _driver_exc

from opentelemetry_instrumentation_dbsql import query_text
from opentelemetry_instrumentation_dbsql.options import InstrumentationOptions
from opentelemetry_instrumentation_dbsql.runtime import Runtime
from opentelemetry_instrumentation_dbsql.spans import SpanRecorder

# The driver is untyped.
_DRIVER: Any = _driver_exc
_QUERY_CAP = 64 * 1024 - 1024  # just under the 64 KiB that query text analysis reads


def _spark_echo(sql: str) -> str:
    return (
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'x'. SQLSTATE: 42601 (line 1, pos 7)\n\n"
        f"== SQL ==\n{sql}\n-------^^^\n"
    )


def _plain_echo(sql: str) -> str:
    # No SQLSTATE and no error class up front: classification searches the echoed text.
    return f"Error running query: {sql}"


def _fill(prefix: str, unit: str, size: int, suffix: str = "") -> str:
    return prefix + unit * ((size - len(prefix) - len(suffix)) // len(unit)) + suffix


class Case(NamedTuple):
    sql: str
    message: str
    spans: int = 1


def _case(sql: str, echo: Callable[[str], str] = _spark_echo, spans: int = 1) -> Case:
    return Case(sql, echo(sql), spans)


def _insert(size: int) -> str:
    rows: list[str] = []
    length = 0
    while length < size:
        row = f"({len(rows)}, 'name {len(rows)}', {len(rows)}.25, TRUE)"
        rows.append(row)
        length += len(row) + 2
    return "INSERT INTO main.sales.t VALUES " + ", ".join(rows)


def build_cases() -> dict[str, Case]:
    """The worst cases: the baseline first, then one per scanner or pass."""
    cap = _QUERY_CAP
    five_mb = _insert(5_000_000)
    return {
        "SELECT 1": _case("SELECT 1"),
        "comment openers 45 KB": _case(_fill("SELECT 1 ", "/* ", 45_000, "*/")),
        "comment openers 60 KB": _case(_fill("SELECT 1 ", "/* ", cap, "*/")),
        "nested comments": _case("SELECT 1 " + "/*" * (cap // 4) + "*/" * (cap // 4)),
        "escapes before quote": _case(_fill("SELECT '", "\\a", cap, "'")),
        "doubled quotes": _case(_fill("SELECT '", "'' ", cap, "'")),
        "backticks": _case(_fill("SELECT ", "`a", cap)),
        "digits and dots": _case(_fill("SELECT ", "1.", cap)),
        "nested WITH lists": _case(_fill("", "WITH a (", cap)),
        "nested brackets": _case(_fill("SELECT * FROM ", "(SELECT * FROM ", cap)),
        "qualified name": _case(_fill("SELECT * FROM ", "a.", cap, "a")),
        "one-character tokens": _case(_fill("SELECT 1", ",1", cap)),
        "sqlstate then spaces": _case(_fill("SELECT sqlstate", " ", 8_000, "FROM t"), _plain_echo),
        "error class look-alike": _case(_fill("SELECT m[KEYS", ".A", 5_000_000), _plain_echo),
        "echo of 5 MB INSERT": _case(five_mb),
        "5 MB INSERT, 2 spans": _case(five_mb, spans=2),
    }


def _best(call: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``call`` in seconds; a single run when one takes over a second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    return best


def measure(case: Case, runtime: Runtime, repeat: int) -> tuple[float, float]:
    """Seconds for the query-text path and the failure path of ``case``, each cold."""
    exc: BaseException = _DRIVER.ServerOperationError(case.message, {})

    def query() -> None:
        query_text.cache_clear()
        runtime.query_info(case.sql, False)

    def failure() -> None:
        query_text.cache_clear()
        for index in range(case.spans):
            SpanRecorder(runtime, f"span {index}", {}).record_error(exc)

    return _best(query, repeat), _best(failure, repeat)


def main(argv: Sequence[str] | None = None) -> None:
    """Print one row per case: its size and both paths, in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    cases = build_cases()
    wanted = [name for name in args.cases.split(",") if name] or list(cases)
    runtime = Runtime(InstrumentationOptions())
    base_query, base_failure = measure(cases["SELECT 1"], runtime, max(args.repeat, 50))
    base = base_query + base_failure
    print(
        f"{'case':<24} {'chars':>9} {'spans':>5} {'query ms':>9} {'failure ms':>10} {'extra ms':>9}"
    )
    for name in ["SELECT 1", *(n for n in wanted if n != "SELECT 1")]:
        case = cases[name]
        if name == "SELECT 1":
            q, f = base_query, base_failure
        else:
            q, f = measure(case, runtime, args.repeat)
        print(
            f"{name:<24} {len(case.sql):>9} {case.spans:>5} {q * 1e3:>9.3f} {f * 1e3:>10.3f} "
            f"{(q + f - base) * 1e3:>+9.3f}"
        )


if __name__ == "__main__":
    main()
