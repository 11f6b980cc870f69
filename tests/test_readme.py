"""README.rst's reference tables agree with the code and with what is really emitted."""

from __future__ import annotations

import dataclasses
import io
import re
import threading
from pathlib import Path

import databricks.sql
import pytest
from databricks.sql.exc import ServerOperationError
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from opentelemetry_instrumentation_dbsql import statement_tags
from opentelemetry_instrumentation_dbsql.aggregation.records import ChunkDetails, StatementRecord
from opentelemetry_instrumentation_dbsql.export.stats import (
    METRIC_PREFIX,
    ExportStats,
    register_export_metrics,
)
from opentelemetry_instrumentation_dbsql.export.wire_format import mode_for_backend
from opentelemetry_instrumentation_dbsql.options import OPTION_SPECS
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.aggregation.helpers import wait_until
from tests.conftest import Telemetry, cloudfetch_files, make_telemetry

README = Path(__file__).resolve().parent.parent / "README.rst"
EXPORT_METRICS = METRIC_PREFIX + "."


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f".. table-start: {title}")
    end = text.index(f".. table-end: {title}", start)
    return text[start:end]


def _rows(section: str, *, header: bool = False) -> list[list[str]]:
    """The rows of an RST list-table: each ``* -`` starts a row, each ``-`` a cell (the header
    row first when ``header``)."""
    rows: list[list[str]] = []
    for line in section.splitlines():
        stripped = line.strip()
        if stripped.startswith("* - "):
            rows.append([stripped[4:]])
        elif stripped.startswith("- ") and rows:
            rows[-1].append(stripped[2:])
        elif stripped and rows and line.startswith("       "):
            rows[-1][-1] += " " + stripped
    return rows if header else rows[1:]


def _literals(cell: str) -> list[str]:
    return re.findall(r"``([^`]+)``", cell)


def test_options_table_matches_the_code() -> None:
    rows = _rows(_section("options"))
    documented = {_literals(r[0])[0]: r for r in rows}
    assert list(documented) == [spec.keyword for spec in OPTION_SPECS]
    for spec in OPTION_SPECS:
        row = documented[spec.keyword]
        assert _literals(row[1]) == [spec.env_var]
        default = "unset" if spec.default is None else spec.default
        if isinstance(default, bool):
            default = str(default).lower()
        assert _literals(row[2]) == [str(default)], spec.keyword
        assert row[3] == spec.accepted, spec.keyword


def _workload(warehouse: LocalWarehouse, local: Path) -> None:
    """Every operation kind, so every attribute shows up at least once (``local``: the
    directory of the staging operations' local files)."""
    warehouse.execute_sql("CREATE TABLE t AS SELECT i AS id FROM range(100) r(i)")
    fetched = "SELECT i FROM range(30000) r(i)"
    warehouse.script(fetched, result_format="cloudfetch", lz4=True, cloudfetch_files=2)
    slow = "SELECT 2 AS slow"
    warehouse.script(slow, completion_delay=5.0)
    polled = "SELECT 3 AS polled"
    warehouse.script(polled, running_polls=1)
    paged = "SELECT id FROM t WHERE id < 50"
    warehouse.script(paged, page_size=20)
    kwargs = warehouse.connect_kwargs(
        catalog="main", schema="default", staging_allowed_local_path=str(local)
    )
    with databricks.sql.connect(**kwargs) as conn, conn.cursor() as cursor:
        (local / "in.csv").write_bytes(b"id\n1\n")
        cursor.execute(f"PUT '{local / 'in.csv'}' INTO '/Volumes/main/default/v/in.csv'")
        cursor.execute(
            "PUT '__input_stream__' INTO '/Volumes/main/default/v/s.csv'",
            input_stream=io.BytesIO(b"id\n"),
        )
        cursor.execute(f"GET '/Volumes/main/default/v/in.csv' TO '{local / 'out.csv'}'")
        cursor.execute("REMOVE '/Volumes/main/default/v/in.csv'")
        with statement_tags(team="data-eng"):
            cursor.execute("SELECT id FROM t WHERE id < :n", {"n": 5})
        cursor.fetchall()
        cursor.execute(fetched)
        cursor.fetchall_arrow()
        cursor.execute(polled)
        cursor.fetchall()
        cursor.execute(paged)
        cursor.fetchall()
        cursor.execute("UPDATE t SET id = id WHERE id < 3")
        cursor.executemany("INSERT INTO t VALUES (:id)", [{"id": 1}, {"id": 2}])
        with pytest.raises(ServerOperationError):
            cursor.execute("SELECT * FROM missing")
        cursor.ASYNC_DEFAULT_POLLING_INTERVAL = 0.05
        cursor.execute_async(polled)
        cursor.get_async_execution_result()
        cursor.fetchall()
        cursor.tables()
        cursor.fetchall()
        conn.commit()
        before = cursor.active_command_id

        def cancel_once_running() -> None:
            wait_until(
                lambda: cursor.active_command_id not in (None, before),
                "the slow statement to start",
            )
            cursor.cancel()

        canceller = threading.Thread(target=cancel_once_running)
        canceller.start()
        cursor.execute(slow)
        canceller.join()


@pytest.fixture(scope="module")
def emitted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, set[str]], dict[str, tuple[str, set[str]]]]:
    telemetry: Telemetry = make_telemetry(capture_parameters=True)
    try:
        with LocalWarehouse() as warehouse:
            _workload(warehouse, tmp_path_factory.mktemp("staging"))
    finally:
        telemetry.instrumentor.uninstrument()
    spans: dict[str, set[str]] = {}
    for span in telemetry.spans():
        role = str((span.attributes or {}).get("databricks.span.role", "none"))
        spans.setdefault(role, set()).update(span.attributes or {})
    metrics: dict[str, tuple[str, set[str]]] = {}
    data = telemetry.metric_reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                keys: set[str] = set()
                for point in metric.data.data_points:
                    keys.update(point.attributes or {})
                metrics[metric.name] = (metric.unit or "", keys)
    return spans, metrics


def _matches(name: str, documented: set[str]) -> bool:
    for pattern in documented:
        if pattern.endswith("<key>") and name.startswith(pattern[: -len("<key>")]):
            return True
    return name in documented


def test_span_table_matches_what_is_emitted(
    emitted: tuple[dict[str, set[str]], dict[str, tuple[str, set[str]]]],
) -> None:
    spans, _ = emitted
    rows = _rows(_section("spans"))
    documented = {_literals(r[0])[0]: set(_literals(r[2])) for r in rows}
    assert set(documented) == set(spans)
    for role, names in spans.items():
        undocumented = {n for n in names if not _matches(n, documented[role])}
        assert not undocumented, f"{role}: emitted but not in README.rst: {sorted(undocumented)}"
        # Retries need a failing endpoint (the driver backs off 5 s at least): none here.
        unseen = {d for d in documented[role] if not any(_matches(n, {d}) for n in names)}
        unseen.discard("databricks.retries.count")
        assert not unseen, f"{role}: in README.rst but never emitted: {sorted(unseen)}"


def test_metric_table_matches_what_is_emitted(
    emitted: tuple[dict[str, set[str]], dict[str, tuple[str, set[str]]]],
) -> None:
    _, metrics = emitted
    rows = _rows(_section("metrics"))
    documented = {_literals(r[0])[0]: (_literals(r[2])[0], set(_literals(r[3]))) for r in rows}
    # The workload's records go to a collecting sink: the Databricks exporter, whose
    # instruments are checked below, is not there.
    documented = {k: v for k, v in documented.items() if not k.startswith(EXPORT_METRICS)}
    # Retries need a failing endpoint (each costs the driver's 5 s minimum back-off): the
    # workload provokes none, so that one metric is only checked for being documented.
    assert set(metrics) <= set(documented)
    assert set(documented) - set(metrics) <= {"databricks.client.retries"}
    for name, (unit, keys) in metrics.items():
        documented_unit, documented_keys = documented[name]
        assert documented_unit == unit, name
        assert keys == documented_keys, name


def test_metric_table_has_the_export_instruments() -> None:
    """The ``databricks.telemetry.export.*`` rows against what the exporter registers."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        register_export_metrics(provider.get_meter("readme"), ExportStats())
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    assert data is not None
    registered: dict[str, tuple[str, str, set[str]]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = "counter" if metric.data.is_monotonic else "up-down counter"
                keys = {k for p in metric.data.data_points for k in p.attributes or {}}
                registered[metric.name] = (kind, metric.unit or "", keys)
    assert registered and all(name.startswith(EXPORT_METRICS) for name in registered)
    documented = {
        _literals(r[0])[0]: (r[1], _literals(r[2])[0], set(_literals(r[3])))
        for r in _rows(_section("metrics"))
        if _literals(r[0])[0].startswith(EXPORT_METRICS)
    }
    assert documented == registered


# -- the backends table ---------------------------------------------------------------------------


def _backend_workload(warehouse: LocalWarehouse, backend: str, local: Path) -> None:
    """Every kind of statement on ``backend``, so every row of the backends table shows."""
    warehouse.execute_sql("CREATE TABLE t AS SELECT i AS id FROM range(100) r(i)")
    fetched = "SELECT i FROM range(30000) r(i)"
    files = cloudfetch_files(backend, 2)
    warehouse.script(fetched, result_format="cloudfetch", lz4=True, cloudfetch_files=files)
    slow = "SELECT 2 AS slow"
    warehouse.script(slow, completion_delay=5.0)
    polled = "SELECT 3 AS polled"
    warehouse.script(polled, running_polls=1)
    inline = "SELECT id FROM t WHERE id < 5"
    warehouse.script(inline, result_format="arrow")
    paged = "SELECT id FROM t WHERE id < 50"
    if backend == "sea":  # SEA reads one inline chunk: its pages are links
        warehouse.script(paged, result_format="cloudfetch", cloudfetch_files=3)
    else:
        warehouse.script(paged, result_format="arrow", page_size=20)
    kwargs = warehouse.connect_kwargs(staging_allowed_local_path=str(local))
    with databricks.sql.connect(**kwargs) as conn, conn.cursor() as cursor:
        if backend != "kernel":  # the kernel refuses staging statements
            (local / "in.csv").write_bytes(b"id\n1\n")
            cursor.execute(f"PUT '{local / 'in.csv'}' INTO '/Volumes/main/default/v/in.csv'")
            cursor.execute("REMOVE '/Volumes/main/default/v/in.csv'")
        for sql in (inline, fetched, polled, paged, "UPDATE t SET id = id WHERE id < 3"):
            cursor.execute(sql)
            cursor.fetchall()
        cursor.executemany("INSERT INTO t VALUES (:id)", [{"id": 1}, {"id": 2}])
        with pytest.raises(ServerOperationError):
            cursor.execute("SELECT * FROM missing")
        cursor.ASYNC_DEFAULT_POLLING_INTERVAL = 0.05
        cursor.execute_async(polled)
        cursor.get_async_execution_result()
        cursor.fetchall()
        cursor.tables()
        cursor.fetchall()
        conn.commit()
        before_id, before_calls = cursor.active_command_id, len(warehouse.rpcs)

        def running() -> bool:
            if backend == "kernel":  # the cursor learns the id when execute() ends
                return "GetStatement" in [r.name for r in warehouse.rpcs[before_calls:]]
            return cursor.active_command_id not in (None, before_id)

        def cancel_once_running() -> None:
            wait_until(running, "the slow statement to start")
            cursor.cancel()

        canceller = threading.Thread(target=cancel_once_running)
        canceller.start()
        try:
            cursor.execute(slow)  # returns on Thrift, raises on the REST backends
        except databricks.sql.exc.Error:
            assert backend != "thrift"
        canceller.join()


def _record_has(records: list[StatementRecord], field: str) -> bool:
    for record in records:
        value = getattr(record, field)
        if isinstance(value, ChunkDetails):
            value = any(v is not None for v in dataclasses.astuple(value)) or None
        if value is not None and (isinstance(value, bool) or value != 0):
            return True
    return False


@pytest.mark.backends("thrift", "sea", "kernel")
def test_backend_table_matches_what_each_backend_records(
    warehouse: LocalWarehouse, backend: str, tmp_path: Path
) -> None:
    telemetry: Telemetry = make_telemetry()
    try:
        _backend_workload(warehouse, backend, tmp_path)
    finally:
        telemetry.instrumentor.uninstrument()  # flushes the records
    spans = telemetry.spans()
    roles = {str((s.attributes or {}).get("databricks.span.role")) for s in spans}
    attributes = {name for s in spans for name in (s.attributes or {})}
    (session,) = telemetry.spans_by_role("CREATE_SESSION")
    statements = list(telemetry.sink.statement_records)
    (opened, *_) = telemetry.sink.connection_records
    values = {
        "databricks.backend": (session.attributes or {})["databricks.backend"],
        "mode": mode_for_backend(opened.backend),
    }
    header, *rows = _rows(_section("backends"), header=True)
    column = header.index(backend)
    assert [r[0].split()[0] for r in rows if r[0].startswith("record")]  # the table has them
    for row in rows:
        kind = row[0].split()[0]
        names = _literals(row[0])
        cell = row[column]
        expected = _literals(cell)
        if kind == "wire" or (expected and not cell.startswith(("yes", "no"))):
            assert [values[names[0]]] == expected[:1], (row[0], backend)
            continue
        assert cell.startswith(("yes", "no")), (row[0], backend, cell)
        if kind == "span":
            seen = [name in roles for name in names]
        elif kind == "attribute":
            seen = [names[0] in attributes]
        else:
            assert kind == "record", row[0]
            seen = [_record_has(statements, names[0])]
        if cell.startswith("no"):
            assert not any(seen), (row[0], backend, "recorded, the table says no")
        # Retries need a failing endpoint (the driver backs off 5 s at least): none here.
        elif names[0] not in ("databricks.retries.count", "retry_count"):
            assert all(seen), (row[0], backend, "never recorded, the table says yes")


def test_readme_names_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
