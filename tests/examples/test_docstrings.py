"""The examples run as their docstrings say, against the warehouse the documented command starts
(``python -m opentelemetry_instrumentation_dbsql.testing.warehouse --seed``), with the
``export`` lines it prints and nothing else; each one produces what its docstring says.

A docstring's ``Spans:`` paragraph names, as ``literals``, exactly the spans the example emits
(``{server.address}`` stands for the warehouse's host; a name may be followed by more words, as
a summary is by its target). Its ``Metrics:`` paragraph names instruments (``prefix.*``
patterns) that all arrive. The printed output and the span tree are checked as described.
"""

from __future__ import annotations

import ast
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.examples.running import EXAMPLES, Run, run_example
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

COMMAND = [sys.executable, "-m", "opentelemetry_instrumentation_dbsql.testing.warehouse"]
READY = "Press Ctrl+C to stop."
HANG_GUARD_S = 30.0
NUMBER = r"-?\d+(?:\.\d+)?"


@dataclass
class Warehouse:
    """The CLI's printed environment, as ``export`` lines and as values."""

    exports: list[str]
    values: dict[str, str]

    @property
    def host(self) -> str:
        return str(urlsplit(self.values["DATABRICKS_SERVER_HOSTNAME"]).hostname)


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Warehouse]:
    """The documented command, running for the module; stopped with Ctrl+C's signal."""
    process = subprocess.Popen(
        [*COMMAND, "--seed", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed: list[str] = []
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.strip() == READY:
                break
        else:
            pytest.fail(f"the warehouse did not start: {printed} {process.communicate()[1]}")
        assert "Seeded samples.nyctaxi.trips: 500 rows" in printed
        exports = [line for line in printed if line.startswith("export ")]
        values = {}
        for line in exports:
            name, _, _ = line[len("export ") :].partition("=")
            values[name] = _shell_value(exports, name)
        yield Warehouse(exports, values)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("the warehouse did not stop on SIGINT")


def _shell_value(exports: list[str], name: str) -> str:
    """What a POSIX shell makes of the export lines for ``name``."""
    script = "\n".join([*exports, f'printf %s "${name}"'])
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True, env={}
    ).stdout


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as otlp:
        yield otlp


def _read_names(source: str) -> set[str]:
    """The connection variables a script reads (``os.environ[...]``, ``os.environ.get(...)``)."""
    names = set(re.findall(r"os\.environ(?:\.get\()?\[?\"([A-Z_]+)\"", source))
    return {n for n in names if n.startswith(("DATABRICKS_", "DBSQL_"))}


def test_the_command_prints_every_variable_the_examples_read(warehouse: Warehouse) -> None:
    read: set[str] = set()
    for script in EXAMPLES.glob("*.py"):
        read |= _read_names(script.read_text(encoding="utf-8"))
    assert read  # the pattern finds them
    assert read <= set(warehouse.values)
    assert '"_connection_uri"' in warehouse.values["DBSQL_EXTRA_CONNECT_ARGS"]


# --- the docstrings ----------------------------------------------------------------------------


def _docstring(name: str) -> str:
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, name
    return doc


def _paragraph(doc: str, head: str) -> str | None:
    found = [p for p in doc.split("\n\n") if p.startswith(head)]
    assert len(found) <= 1, head
    return found[0] if found else None


def _literals(text: str) -> list[str]:
    return re.findall(r"``([^`]+)``", text)


def _documented_spans(name: str, host: str) -> set[str]:
    paragraph = _paragraph(_docstring(name), "Spans:")
    assert paragraph, f"{name}: no 'Spans:' paragraph"
    return {n.replace("{server.address}", host) for n in _literals(paragraph)}


def _names_match(emitted: str, documented: str) -> bool:
    return emitted == documented or emitted.startswith(documented + " ")


def _check_spans_are_documented(name: str, spans: list[ReceivedSpan], host: str) -> None:
    documented = _documented_spans(name, host)
    emitted = {s.name for s in spans}
    missing = {d for d in documented if not any(_names_match(e, d) for e in emitted)}
    assert not missing, f"{name}: documented but not emitted: {sorted(missing)}; {emitted}"
    undocumented = {e for e in emitted if not any(_names_match(e, d) for d in documented)}
    assert not undocumented, f"{name}: emitted but not documented: {sorted(undocumented)}"


def _check_metrics_are_documented(name: str, receiver: OtlpReceiver) -> None:
    paragraph = _paragraph(_docstring(name), "Metrics:")
    if paragraph is None:
        # The docstring says so in words; nothing may arrive.
        assert "no metric is recorded" in " ".join(_docstring(name).split()), name
        assert not receiver.metrics(), name
        return
    assert receiver.wait_for(receiver.metrics, timeout=5)
    received = set(receiver.latest_metrics())
    for pattern in _literals(paragraph):
        regex = re.escape(pattern).replace(r"\*", ".+")
        assert any(re.fullmatch(regex, m) for m in received), f"{name}: {pattern} not received"


# --- what each example prints and the shape of its spans ---------------------------------------


def _otlp_programmatic(run: Run, spans: dict[str, list[ReceivedSpan]]) -> None:
    (trace_line,) = run.lines("trace_id ")
    assert re.fullmatch(r"trace_id [0-9a-f]{32}", trace_line)
    zips = run.lines("pickup_zip ")
    assert len(zips) == 5
    assert all(re.fullmatch(rf"pickup_zip \d+: \d+ trips, avg fare {NUMBER}", z) for z in zips)
    (long_trips,) = run.lines("long_trips ")
    assert re.fullmatch(r"long_trips \d+", long_trips)
    (app,) = spans["trip-report"]
    assert app.trace_id == trace_line.split()[1]
    _check_children(spans, app, inside={"connect", "SELECT trips", "close"})


def _auto_instrumentation(run: Run, spans: dict[str, list[ReceivedSpan]]) -> None:
    routes = run.lines("route ")
    assert len(routes) == 3
    assert all(re.fullmatch(r"route \d+ -> \d+: \d+ trips", r) for r in routes)
    (fares,) = run.lines("fares from ")
    assert re.fullmatch(rf"fares from {routes[0].split()[1]}: {NUMBER} \.\. {NUMBER}", fares)
    assert all(s.parent_span_id is None for group in spans.values() for s in group)


def _sqlalchemy_app(run: Run, spans: dict[str, list[ReceivedSpan]]) -> None:
    core = run.lines("core ")
    assert len(core) == 3
    assert all(re.fullmatch(r"core pickup_zip \d+: \d+ trips", c) for c in core)
    orm = run.lines("orm ")
    assert len(orm) == 3
    for line in orm:
        match = re.fullmatch(rf"orm trip ({NUMBER}) miles, fare {NUMBER}", line)
        assert match and float(match.group(1)) > 10
    (app,) = spans["fare-analysis"]
    _check_children(spans, app, inside={"connect", "SELECT trips"}, outside={"close"})


def _pandas_read_sql(run: Run, spans: dict[str, list[ReceivedSpan]]) -> None:
    table = run.stdout.splitlines()
    assert table[0].split() == ["miles", "trips", "avg_fare"]
    rows = [line.split() for line in table[1:] if not line.startswith("rows ")]
    assert [int(r[0]) for r in rows] == list(range(5))  # trips shorter than 5 miles
    assert run.lines("rows ") == [f"rows {len(rows)}"]
    (app,) = spans["fare-table"]
    _check_children(
        spans, app, inside={"connect", "DESCRIBE TABLE EXTENDED", "SELECT trips"}, outside={"close"}
    )
    (probe,) = _spans_named(spans, "DESCRIBE TABLE EXTENDED")
    assert probe.status_code == "ERROR"


def _spans_named(spans: dict[str, list[ReceivedSpan]], documented: str) -> list[ReceivedSpan]:
    return [s for name, group in spans.items() if _names_match(name, documented) for s in group]


def _check_children(
    spans: dict[str, list[ReceivedSpan]],
    app: ReceivedSpan,
    inside: set[str],
    outside: set[str] | None = None,
) -> None:
    assert app.parent_span_id is None
    for documented in inside:
        found = _spans_named(spans, documented)
        assert found and all(s.parent_span_id == app.span_id for s in found), documented
    for documented in outside or ():
        found = _spans_named(spans, documented)
        assert found and all(s.parent_span_id is None for s in found), documented


@dataclass
class Case:
    name: str
    check: Callable[[Run, dict[str, list[ReceivedSpan]]], None]
    statements: int
    instrument: bool = False
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("otlp_programmatic", _otlp_programmatic, statements=2),
    Case(
        "auto_instrumentation",
        _auto_instrumentation,
        statements=2,
        instrument=True,
        env={
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
        },
    ),
    Case("sqlalchemy_app", _sqlalchemy_app, statements=2),
    Case("pandas_read_sql", _pandas_read_sql, statements=2),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_example_produces_what_its_docstring_says(
    case: Case, warehouse: Warehouse, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    prefix = (str(Path(sys.executable).parent / "opentelemetry-instrument"),)
    run = run_example(
        case.name,
        warehouse.exports,
        tmp_path,
        receiver=receiver,
        prefix=prefix if case.instrument else (),
        env=case.env,
    )
    # The exporters flush at shutdown, before the process exits: everything is there already.
    received = receiver.spans()
    _check_spans_are_documented(case.name, received, warehouse.host)
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in received:
        by_name.setdefault(span.name, []).append(span)
    roles = [s.attributes.get("databricks.span.role") for s in received]
    assert roles.count("STATEMENT") == case.statements
    assert roles.count("CREATE_SESSION") == roles.count("DELETE_SESSION") == 1
    case.check(run, by_name)
    _check_metrics_are_documented(case.name, receiver)


def test_statement_tags_prints_what_its_docstring_says(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    doc = " ".join(_docstring("statement_tags").split())
    assert "Nothing is exported." in doc
    run = run_example("statement_tags", warehouse.exports, tmp_path)
    lines = run.stdout.splitlines()
    # Per statement: its span's name and tags, its traceparent, then its result.
    statements = [i for i, line in enumerate(lines) if line.startswith("statement ")]
    assert len(statements) == 3
    tags, parents = [], []
    for index in statements:
        match = re.fullmatch(r"statement 'SELECT trips' tags=(\{.*\})", lines[index])
        assert match, lines[index]
        tags.append(match.group(1))
        parent = re.fullmatch(
            r"  traceparent (00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})", lines[index + 1]
        )
        assert parent, lines[index + 1]
        parents.append(parent.group(1))
    assert [lines[i + 2].split()[0] for i in statements] == ["trips", "average", "longest"]
    nightly = '{"job": "nightly", "team": "data-eng"}'
    assert tags == [nightly, nightly, "{}"]
    assert len({p.split("-")[1] for p in parents}) == 1  # one trace: the application's span
