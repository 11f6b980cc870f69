"""databricks-sqlalchemy on top of the instrumented driver, alone and together with the contrib
``opentelemetry-instrumentation-sqlalchemy``.

What these tests establish (the README paragraph in ``examples/README.md`` says the same):

* alone, every statement SQLAlchemy sends (the application's and its own, such as the
  ``pool_pre_ping`` probe) gets exactly one STATEMENT span, named by ``db.query.summary``,
  child of the application's span;
* with the contrib instrumentation on the same engine, each statement gets TWO client spans,
  siblings under the application's span: the contrib does not make its span current while
  the driver runs. Its ``connect`` span, on the other hand, is current, and parents our
  CREATE_SESSION span;
* three small engine listeners make the contrib's span current around the driver call: then
  our STATEMENT span is its child (one logical statement, one tree);
* under ``opentelemetry-instrument``, ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy``
  leaves one span per statement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from sqlalchemy import Float, Integer, String, event, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.conftest import Telemetry
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

DBSQL_SCOPE = "opentelemetry.instrumentation.dbsql"
CONTRIB_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
APP_SPAN = "application.request"

CORE_SQL = (
    "SELECT customer, SUM(amount) AS total FROM orders WHERE id < :limit "
    "GROUP BY customer ORDER BY customer LIMIT 3"
)


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer: Mapped[str] = mapped_column(String)
    amount: Mapped[float] = mapped_column(Float)


def make_engine(warehouse: LocalWarehouse, **engine_kwargs: Any) -> Engine:
    """An engine of the databricks dialect reaching the local warehouse.

    ``connect_args`` override what the dialect derives from the URL, so the local-only
    ``_connection_uri`` (and the full origin as ``server_hostname``) go there.
    """
    kwargs = warehouse.connect_kwargs(catalog="main", schema="default")
    url = sqlalchemy.URL.create(
        "databricks",
        username="token",
        password=kwargs["access_token"],
        host=warehouse.host,
        query={"http_path": warehouse.http_path, "catalog": "main", "schema": "default"},
    )
    return sqlalchemy.create_engine(url, connect_args=kwargs, **engine_kwargs)


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _dbsql(telemetry: Telemetry, role: str) -> list[ReadableSpan]:
    return [
        s
        for s in telemetry.spans()
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == DBSQL_SCOPE
        and _attrs(s).get("databricks.span.role") == role
    ]


def _contrib(telemetry: Telemetry) -> list[ReadableSpan]:
    return [
        s
        for s in telemetry.spans()
        if s.instrumentation_scope is not None and s.instrumentation_scope.name == CONTRIB_SCOPE
    ]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _executed(warehouse: LocalWarehouse) -> list[str]:
    """The statement texts the warehouse received, in order."""
    return [str(r.request.statement) for r in warehouse.rpcs if r.name == "ExecuteStatement"]


def _run_workload(engine: Engine, telemetry: Telemetry) -> ReadableSpan:
    """A Core query, an ORM query and an UPDATE inside one application span."""
    tracer = telemetry.tracer_provider.get_tracer("tests.integrations")
    with tracer.start_as_current_span(APP_SPAN):
        with engine.connect() as connection:
            rows = connection.execute(text(CORE_SQL), {"limit": 100}).all()
        assert [r.customer for r in rows] == ["customer_0", "customer_1", "customer_10"]
        with Session(engine) as session:
            orders = session.scalars(select(Order).where(Order.id < 3).order_by(Order.id)).all()
        assert [o.id for o in orders] == [0, 1, 2]
        with engine.begin() as connection:
            connection.execute(update(Order).where(Order.id < 5).values(amount=0))
    (app,) = [s for s in telemetry.spans() if s.name == APP_SPAN]
    return app


@pytest.fixture
def contrib_off() -> Iterator[None]:
    """Makes sure the contrib SQLAlchemy instrumentation is off after the test."""
    yield
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


# --- databricks-sqlalchemy alone -------------------------------------------------------------


def test_statements_traced_once_inside_the_application_span(
    warehouse: LocalWarehouse, telemetry: Telemetry
) -> None:
    engine = make_engine(warehouse, pool_pre_ping=True)
    try:
        app = _run_workload(engine, telemetry)
    finally:
        engine.dispose()

    statements = _dbsql(telemetry, "STATEMENT")
    # Once each: one STATEMENT span per statement the warehouse received, SQLAlchemy's own
    # (the pre-ping probes on checkout) included, with matching statement ids.
    executed = _executed(warehouse)
    assert len(statements) == len(executed)
    served_ids = set(warehouse.served)
    span_ids = [_attrs(s)["databricks.statement.id"] for s in statements]
    assert len(set(span_ids)) == len(span_ids)
    assert set(span_ids) <= served_ids

    by_text = {str(_attrs(s)["db.query.text"]): s for s in statements}
    core = by_text[
        "SELECT customer, SUM(amount) AS total FROM orders WHERE id < :`limit` "
        "GROUP BY customer ORDER BY customer LIMIT 3"
    ]
    (orm,) = [s for t, s in by_text.items() if t.startswith("SELECT orders.id")]
    (upd,) = [s for t, s in by_text.items() if t.startswith("UPDATE orders")]
    assert [core.name, orm.name, upd.name] == ["SELECT orders", "SELECT orders", "UPDATE orders"]
    for span in (core, orm, upd):
        assert _attrs(span)["db.query.summary"] == span.name
        assert span.context.trace_id == app.context.trace_id
        assert _parent_id(span) == app.context.span_id
    # SQLAlchemy's extra statements are traced too, in the same trace; pings are "SELECT".
    extra = [s for s in statements if s not in (core, orm, upd)]
    assert extra  # the pre-ping probes of the second and third checkout
    assert all(s.name == "SELECT" for s in extra)
    assert len(extra) == sum(1 for t in executed if t == "SELECT 1")

    # Rows: counted on the statement (its result arrived whole) or its RESULT span.
    assert _attrs(telemetry.consumption(core))["db.response.returned_rows"] == 3
    assert _attrs(telemetry.consumption(orm))["db.response.returned_rows"] == 3
    # The session: opened inside the application span, closed by dispose() outside it.
    (connect,) = _dbsql(telemetry, "CREATE_SESSION")
    assert _parent_id(connect) == app.context.span_id
    assert len(_dbsql(telemetry, "DELETE_SESSION")) == 1


def test_pandas_read_sql_probes_for_a_table_first(
    warehouse: LocalWarehouse, telemetry: Telemetry
) -> None:
    """pandas.read_sql first asks the dialect whether its argument names a table: with
    databricks-sqlalchemy that is a ``DESCRIBE TABLE EXTENDED`` statement (which fails), traced
    like any other; read_sql_query skips it."""
    engine = make_engine(warehouse)
    query = "SELECT customer, amount FROM orders WHERE id < 4 ORDER BY id"
    try:
        frame = pd.read_sql(query, engine)
        assert list(frame["customer"]) == [f"customer_{i}" for i in range(4)]
        probes = [t for t in _executed(warehouse) if t.startswith("DESCRIBE TABLE EXTENDED")]
        assert len(probes) == 1
        warehouse.reset_records()
        pd.read_sql_query(query, engine)
        assert _executed(warehouse) == [query]
    finally:
        engine.dispose()
    statements = _dbsql(telemetry, "STATEMENT")
    selects = [s for s in statements if s.name == "SELECT orders"]
    assert len(selects) == 2
    assert all(_attrs(s)["db.query.text"] == query.replace("< 4", "< ?") for s in selects)
    (probe,) = [s for s in statements if s not in selects]
    assert probe.status.status_code is StatusCode.ERROR


def test_literals_of_a_probed_query_stay_out_of_span_names(
    warehouse: LocalWarehouse, telemetry: Telemetry
) -> None:
    engine = make_engine(warehouse)
    try:
        pd.read_sql("SELECT amount FROM orders WHERE customer = 'customer_7'", engine)
    finally:
        engine.dispose()
    for span in _dbsql(telemetry, "STATEMENT"):
        assert "customer_7" not in span.name
        assert all("customer_7" not in str(v) for v in _attrs(span).values())


# --- together with opentelemetry-instrumentation-sqlalchemy ----------------------------------


def test_with_the_contrib_instrumentation_each_statement_gets_two_sibling_spans(
    warehouse: LocalWarehouse, telemetry: Telemetry, contrib_off: None
) -> None:
    engine = make_engine(warehouse)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=telemetry.tracer_provider)
    try:
        app = _run_workload(engine, telemetry)
    finally:
        engine.dispose()

    ours = _dbsql(telemetry, "STATEMENT")
    theirs = [s for s in _contrib(telemetry) if s.name != "connect"]
    assert len(ours) == len(theirs) == len(_executed(warehouse)) == 3
    assert sorted(s.name for s in ours) == ["SELECT orders", "SELECT orders", "UPDATE orders"]
    assert sorted(s.name for s in theirs) == ["SELECT", "SELECT", "UPDATE"]
    for span in (*ours, *theirs):
        assert span.kind is trace.SpanKind.CLIENT
        assert _parent_id(span) == app.context.span_id  # siblings: a duplicate per statement
    # The contrib's connect span (one per Engine.connect()) is current while the pool opens
    # a connection: the CREATE_SESSION span nests under the first one.
    connects = [s for s in _contrib(telemetry) if s.name == "connect"]
    assert len(connects) == 3
    assert all(_parent_id(s) == app.context.span_id for s in connects)
    (session,) = _dbsql(telemetry, "CREATE_SESSION")
    assert _parent_id(session) == min(connects, key=lambda s: s.start_time or 0).context.span_id


def nest_under_sqlalchemy_spans(engine: Engine) -> None:
    """Make the contrib instrumentation's statement span current while the driver executes.

    What ``examples/README.md`` shows. Register it after
    ``SQLAlchemyInstrumentor().instrument(...)`` (listeners run in registration order).
    ``_otel_span`` is where opentelemetry-instrumentation-sqlalchemy keeps its span on the
    execution context: not a public interface, hence these tests.
    """

    @event.listens_for(engine, "before_cursor_execute")
    def attach(  # noqa: PLR0917
        conn: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        execution_context: Any,
        executemany: Any,
    ) -> None:
        span = getattr(execution_context, "_otel_span", None)
        if span is not None:
            token = otel_context.attach(trace.set_span_in_context(span))
            execution_context._dbsql_token = token

    def detach(execution_context: Any) -> None:
        token = getattr(execution_context, "_dbsql_token", None)
        if token is not None:
            execution_context._dbsql_token = None
            otel_context.detach(token)

    @event.listens_for(engine, "after_cursor_execute")
    def after(  # noqa: PLR0917
        conn: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        execution_context: Any,
        executemany: Any,
    ) -> None:
        detach(execution_context)

    @event.listens_for(engine, "handle_error")
    def failed(exception_context: Any) -> None:
        detach(exception_context.execution_context)


def test_listeners_make_the_contrib_span_the_parent_of_ours(
    warehouse: LocalWarehouse, telemetry: Telemetry, contrib_off: None
) -> None:
    engine = make_engine(warehouse)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=telemetry.tracer_provider)
    nest_under_sqlalchemy_spans(engine)
    try:
        app = _run_workload(engine, telemetry)
        with pytest.raises(DatabaseError), engine.connect() as connection:
            connection.execute(text("SELECT * FROM missing_table"))
        # No context left attached by the listeners, on success or failure.
        assert trace.get_current_span() is trace.INVALID_SPAN
    finally:
        engine.dispose()

    theirs = {s.context.span_id: s for s in _contrib(telemetry) if s.name != "connect"}
    ours = _dbsql(telemetry, "STATEMENT")
    assert len(ours) == len(theirs) == 4
    for span in ours:
        parent = theirs[_parent_id(span) or 0]  # each of ours is the child of one of theirs
        assert parent.name == span.name.split(" ")[0]
    assert {_parent_id(s) for s in ours} == set(theirs)
    # The failed statement too: its span under the contrib's failed span, both in error.
    (failed_parent,) = [s for s in theirs.values() if s.status.status_code is StatusCode.ERROR]
    (failed,) = [s for s in ours if _parent_id(s) == failed_parent.context.span_id]
    assert failed.name == "SELECT missing_table"
    assert failed.status.status_code is StatusCode.ERROR
    app_children = [s for s in theirs.values() if _parent_id(s) == app.context.span_id]
    assert len(app_children) == 3


# --- opentelemetry-instrument with both installed ----------------------------------------------

AUTO_APP = """
import json, os
import sqlalchemy
from sqlalchemy import text
from opentelemetry_instrumentation_dbsql.log_once import failure_counts

kwargs = json.loads(os.environ["APP_CONNECT_KWARGS"])
url = sqlalchemy.URL.create(
    "databricks", username="token", password=kwargs["access_token"], host="127.0.0.1",
    query={"http_path": kwargs["http_path"], "catalog": "main", "schema": "default"},
)
engine = sqlalchemy.create_engine(url, connect_args=kwargs)
with engine.connect() as connection:
    total = connection.execute(text("SELECT COUNT(*) FROM orders WHERE id < :n"), {"n": 10})
    print(json.dumps({"count": total.scalar_one(), "failures": failure_counts()}))
engine.dispose()
"""


def _auto_run(
    tmp_path: Path, warehouse: LocalWarehouse, receiver: OtlpReceiver, disabled: str
) -> list[ReceivedSpan]:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(AUTO_APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_SERVICE_NAME": "sqlalchemy-auto",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled,
            "APP_CONNECT_KWARGS": json.dumps(warehouse.connect_kwargs()),
        }
    )
    command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable]
    done = subprocess.run(
        [*command, str(app)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"count": 10, "failures": {}}, done.stderr
    assert receiver.wait_for(
        lambda: any(
            s.attributes.get("databricks.span.role") == "DELETE_SESSION" for s in receiver.spans()
        ),
        timeout=5,
    )
    return [s for s in receiver.spans() if s.kind == "CLIENT" and s.name.startswith("SELECT")]


@pytest.mark.parametrize(
    ("disabled", "expected_scopes"),
    [("", sorted([DBSQL_SCOPE, CONTRIB_SCOPE])), ("sqlalchemy", [DBSQL_SCOPE])],
    ids=["both-on", "contrib-disabled"],
)
def test_opentelemetry_instrument_with_the_contrib_installed(
    tmp_path: Path,
    warehouse: LocalWarehouse,
    disabled: str,
    expected_scopes: list[str],
) -> None:
    with OtlpReceiver() as receiver:
        statements = _auto_run(tmp_path, warehouse, receiver, disabled)
    assert len(_executed(warehouse)) == 1
    assert sorted(s.scope_name for s in statements) == expected_scopes
    (ours,) = [s for s in statements if s.scope_name == DBSQL_SCOPE]
    assert ours.name == "SELECT orders"
    assert ours.attributes["databricks.statement.id"] in warehouse.served
