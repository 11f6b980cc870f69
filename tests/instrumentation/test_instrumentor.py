"""The instrumentor's life cycle: options, lazy import, suppression, (un)instrument, threads."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from typing import Any

import databricks.sql
import pytest
from databricks.sql.client import Connection
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.hooks.statement_ids import statement_id_of
from opentelemetry_instrumentation_dbsql.options import OPTION_SPECS, resolve_options
from tests.conftest import Telemetry, backend_missing, every_backend, make_telemetry


def _roles(telemetry: Telemetry) -> list[str]:
    return [str((s.attributes or {}).get("databricks.span.role")) for s in telemetry.spans()]


def test_import_and_instrument_do_not_import_the_driver_client() -> None:
    code = textwrap.dedent(
        """
        import sys
        from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
        DbsqlInstrumentor().instrument()
        assert "databricks.sql.client" not in sys.modules, "client imported eagerly"
        import databricks.sql.client
        from databricks.sql.client import Cursor
        import wrapt
        assert isinstance(Cursor.__dict__["execute"], wrapt.FunctionWrapper), "not patched"
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.skipif(backend_missing("sea") is not None, reason="connector without SEA backend")
def test_backend_hooks_wait_for_the_driver_to_import_the_backend() -> None:
    """The SEA and kernel hook points are installed when the driver imports their module
    (the kernel's loads a native library): never by instrumenting or importing the client."""
    code = textwrap.dedent(
        """
        import sys
        import wrapt
        from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
        instrumentor = DbsqlInstrumentor()
        instrumentor.instrument()
        import databricks.sql.client
        for name in ("databricks.sql.backend.sea.backend", "databricks.sql.backend.kernel.client"):
            assert name not in sys.modules, name + " imported by instrumenting"
        # The driver imports the backend (on the first use_sea connection): wrapped then.
        from databricks.sql.backend.sea.backend import SeaDatabricksClient
        from databricks.sql.backend.sea.queue import LinkFetcher
        poll = vars(SeaDatabricksClient)["_poll_query"]
        assert isinstance(poll, wrapt.FunctionWrapper), "not wrapped on import"
        assert isinstance(vars(LinkFetcher)["_worker_loop"], wrapt.FunctionWrapper)
        instrumentor.uninstrument()
        assert vars(SeaDatabricksClient)["_poll_query"] is poll.__wrapped__, "not restored"
        # Already imported when instrumenting again: wrapped at once.
        instrumentor.instrument()
        assert isinstance(vars(SeaDatabricksClient)["_poll_query"], wrapt.FunctionWrapper)
        instrumentor.uninstrument()
        assert vars(SeaDatabricksClient)["_poll_query"] is poll.__wrapped__, "not restored"
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_uninstrument_restores_every_attribute_exactly() -> None:
    import databricks.sql.client  # noqa: F401  (the hook points live in modules it imports)

    from opentelemetry_instrumentation_dbsql.hooks.patching import _find_owner, hook_points

    owners = {id(o): o for o in (_find_owner(p) for p in hook_points()) if o is not None}
    before = {key: dict(vars(owner)) for key, owner in owners.items()}
    telemetry = make_telemetry()
    changed = sum(
        1
        for key, owner in owners.items()
        for name, value in vars(owner).items()
        if before[key].get(name) is not value
    )
    assert changed >= 20
    telemetry.instrumentor.uninstrument()
    for key, owner in owners.items():
        for name, value in before[key].items():
            assert vars(owner)[name] is value, f"{owner.__name__}.{name} not restored"


def test_double_instrument_is_a_noop(warehouse: Any, telemetry: Telemetry) -> None:
    DbsqlInstrumentor().instrument()
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    assert _roles(telemetry).count("STATEMENT") == 1


def test_suppress_instrumentation(warehouse: Any, telemetry: Telemetry) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        with suppress_instrumentation():
            cursor.execute("SELECT 1")
            cursor.fetchall()
        cursor.execute("SELECT 2")
        cursor.fetchall()
    statements = [s for s in telemetry.spans() if s.name == "SELECT"]
    assert len(statements) == 1
    assert (statements[0].attributes or {})["db.query.text"] == "SELECT ?"


def test_suppression_by_the_plain_context_key(warehouse: Any, telemetry: Telemetry) -> None:
    # Older instrumentations suppress through the plain "suppress_instrumentation" key.
    from opentelemetry import context as otel_context

    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        token = otel_context.attach(otel_context.set_value("suppress_instrumentation", True))
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            otel_context.detach(token)
        cursor.execute("SELECT 2")
        cursor.fetchall()
    statements = [s for s in telemetry.spans() if s.name == "SELECT"]
    assert len(statements) == 1


def test_after_uninstrument_nothing_is_recorded(warehouse: Any) -> None:
    telemetry = make_telemetry()
    telemetry.instrumentor.uninstrument()
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    assert telemetry.spans() == []


def test_reinstrument_records_open_connections_with_the_new_providers(warehouse: Any) -> None:
    first = make_telemetry()
    conn = databricks.sql.connect(**warehouse.connect_kwargs())
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        first.instrumentor.uninstrument()
        second = make_telemetry()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 2")
                cursor.fetchall()
        finally:
            second.instrumentor.uninstrument()
    finally:
        conn.close()
    assert [s.name for s in first.spans_by_role("STATEMENT")] == ["SELECT"]
    (statement,) = second.spans_by_role("STATEMENT")
    assert (statement.attributes or {})["db.query.text"] == "SELECT ?"
    assert len(second.sink.statement_records) == 1  # the live processor, not the shut one


def test_instrument_connection_only_that_connection(warehouse: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plain = databricks.sql.connect(**warehouse.connect_kwargs())
    traced = databricks.sql.connect(**warehouse.connect_kwargs())
    try:
        returned = DbsqlInstrumentor.instrument_connection(traced, tracer_provider=provider)
        assert returned is traced
        assert isinstance(traced, Connection)
        for conn in (plain, traced):
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
        statements = [s for s in exporter.get_finished_spans() if s.name == "SELECT"]
        assert len(statements) == 1
        assert (statements[0].attributes or {})[
            "databricks.session.id"
        ] == traced.get_session_id_hex()
        DbsqlInstrumentor.uninstrument_connection(traced)
        with traced.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        assert len([s for s in exporter.get_finished_spans() if s.name == "SELECT"]) == 1
    finally:
        plain.close()
        traced.close()


def test_invalid_option_raises_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"capture_query_text.*sanitized \| raw \| off"):
        DbsqlInstrumentor().instrument(capture_query_text="everything")
    with pytest.raises(ValueError, match="max_query_text_length"):
        DbsqlInstrumentor().instrument(max_query_text_length=-1)
    assert not DbsqlInstrumentor().is_instrumented_by_opentelemetry


def test_invalid_environment_variable_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"OTEL_PYTHON_DBSQL_MAX_QUERY_TEXT_LENGTH": "lots"}
    with caplog.at_level(logging.WARNING):
        first = resolve_options({}, environ)
        second = resolve_options({}, environ)
    assert first.max_query_text_length == second.max_query_text_length == 2048
    warnings = [r for r in caplog.records if "OTEL_PYTHON_DBSQL_MAX_QUERY_TEXT_LENGTH" in r.message]
    assert len(warnings) == 1


def test_environment_variables_apply() -> None:
    environ = {spec.env_var: "" for spec in OPTION_SPECS}
    environ["OTEL_PYTHON_DBSQL_CAPTURE_QUERY_TEXT"] = "off"
    environ["OTEL_PYTHON_DBSQL_ENABLE_TELEMETRY"] = "false"
    options = resolve_options({}, environ)
    assert options.capture_query_text == "off"
    assert options.enable_telemetry is False
    assert resolve_options({"capture_query_text": "raw"}, environ).capture_query_text == "raw"


def test_threads_make_exactly_one_span_per_statement(warehouse: Any, telemetry: Telemetry) -> None:
    threads_count, per_thread = 8, 200
    ids: list[list[str]] = [[] for _ in range(threads_count)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
                with conn.cursor() as cursor:
                    for i in range(per_thread):
                        cursor.execute(f"SELECT {i} AS n")
                        cursor.fetchall()
                        ids[slot].append(statement_id_of(cursor) or "")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    statements = [
        s
        for s in telemetry.spans()
        if (s.attributes or {}).get("databricks.span.role") == "STATEMENT"
    ]
    assert len(statements) == threads_count * per_thread
    expected = {query_id for slot in ids for query_id in slot}
    assert len(expected) == threads_count * per_thread
    assert {(s.attributes or {})["databricks.statement.id"] for s in statements} == expected


@every_backend
def test_privacy_canary(warehouse: Any, telemetry: Telemetry) -> None:
    secret = "canary-4f1d-literal"
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT '{secret}' AS s, 987654321 AS n")
        assert cursor.fetchall()[0][0] == secret
        with pytest.raises(databricks.sql.exc.ServerOperationError):
            cursor.execute(f"SELECT * FROM missing WHERE x = '{secret}'")
    token = warehouse.access_token
    dumped = [s.to_json() for s in telemetry.spans()]
    metrics = telemetry.metric_reader.get_metrics_data()
    dumped.append(metrics.to_json() if metrics is not None else "")
    dumped.extend(repr(r) for r in telemetry.sink.records)
    for text in dumped:
        assert secret not in text
        assert "987654321" not in text
        assert token not in text


def test_uninstrument_connection_keeps_the_open_count_right(
    warehouse: Any, telemetry: Telemetry
) -> None:
    conn = databricks.sql.connect(**warehouse.connect_kwargs())
    DbsqlInstrumentor.uninstrument_connection(conn)
    conn.close()
    counts = telemetry.metrics()["db.client.connection.count"]
    assert sum(p.value for p in counts) == 0


def test_uninstrument_detaches_the_processor_from_the_provider(warehouse: Any) -> None:
    import gc
    import weakref

    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    sink_records: list[int] = []
    processors: list[weakref.ref[Any]] = []
    try:
        for _ in range(3):
            telemetry = make_telemetry()
            telemetry.instrumentor.uninstrument()  # the fixture's own provider: not under test
            instrumentor = DbsqlInstrumentor()
            instrumentor.instrument(tracer_provider=provider, record_sink=telemetry.sink)
            with databricks.sql.connect(**warehouse.connect_kwargs()) as conn:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
                    cursor.fetchall()
            runtime = instrumentor._runtime
            assert runtime is not None and runtime.processor is not None
            processors.append(weakref.ref(runtime.processor))
            del runtime, cursor, conn  # a connection keeps its runtime while it lives
            instrumentor.uninstrument()
            sink_records.append(len(telemetry.sink.records))
        gc.collect()
        # Each cycle's processor received its statement, and none is held after uninstrument.
        assert all(count >= 1 for count in sink_records), sink_records
        assert [ref() for ref in processors] == [None, None, None]
        slots = provider._active_span_processor._span_processors
        assert len(slots) == 1  # one slot, re-pointed by every instrument()
    finally:
        provider.shutdown()
