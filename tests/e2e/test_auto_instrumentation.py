"""``opentelemetry-instrument`` running an application against a local warehouse.

The application knows nothing of this package: the entry point ``dbsql`` in the group
``opentelemetry_instrumentor`` makes ``opentelemetry-instrument`` instrument the driver, and the
standard ``OTEL_*`` variables send spans and metrics over OTLP/gRPC to the receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

SCOPE = "opentelemetry.instrumentation.dbsql"
SUBPROCESS_TIMEOUT_S = 25.0

APPLICATION = '''
"""A small application: a few statements, then a JSON report on stdout."""

import json
import logging
import os

import databricks.sql
import wrapt
from databricks.sql.exc import ServerOperationError
from opentelemetry import trace

from opentelemetry_instrumentation_dbsql.log_once import failure_counts

logging.basicConfig(level=logging.WARNING)
logging.getLogger("opentelemetry_instrumentation_dbsql").setLevel(logging.DEBUG)

kwargs = json.loads(os.environ["APP_CONNECT_KWARGS"])
report = {}
tracer = trace.get_tracer("e2e.application")
with tracer.start_as_current_span("application.work") as work:
    report["trace_id"] = format(work.get_span_context().trace_id, "032x")
    with databricks.sql.connect(**kwargs) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, customer FROM orders WHERE id < 3 ORDER BY id")
        report["rows"] = [list(row) for row in cursor.fetchall()]
        report["select_id"] = cursor.query_id
        try:
            cursor.execute("SELECT * FROM missing_table WHERE id = 42")
        except ServerOperationError as exc:
            report["error"] = type(exc).__name__
        report["failed_id"] = cursor.query_id
report["instrumented"] = isinstance(
    databricks.sql.client.Cursor.__dict__["execute"], wrapt.FunctionWrapper
)
report["failures"] = failure_counts()
print(json.dumps(report))
'''


CONFIGURATOR_GROUP = "opentelemetry_configurator"


def _instrument_command() -> list[str]:
    script = Path(sys.executable).parent / "opentelemetry-instrument"
    assert script.exists(), f"{script} not found"
    return [str(script)]


def _sdk_configurator_path(tmp_path: Path) -> str | None:
    """A directory to put on PYTHONPATH that registers the SDK's configurator, if none is.

    ``opentelemetry-instrument`` configures the SDK from the ``OTEL_*`` variables only through an
    ``opentelemetry_configurator`` entry point, which ``opentelemetry-distro`` provides (its
    configurator is the SDK's ``_OTelSDKConfigurator``). Without the distro installed, a minimal
    distribution registering that same class stands in for it.
    """
    if entry_points(group=CONFIGURATOR_GROUP):
        return None
    site = tmp_path / "configurator"
    dist_info = site / "dbsql_e2e_sdk_configurator-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dbsql-e2e-sdk-configurator\nVersion: 0.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{CONFIGURATOR_GROUP}]\nsdk = opentelemetry.sdk._configuration:_OTelSDKConfigurator\n"
    )
    return str(site)


def _run_application(
    tmp_path: Path,
    warehouse: LocalWarehouse,
    receiver: OtlpReceiver,
    service_name: str,
    **extra_env: str,
) -> dict[str, Any]:
    app = tmp_path / "application.py"
    app.write_text(APPLICATION)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "APP_CONNECT_KWARGS": json.dumps(warehouse.connect_kwargs()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    configurator = _sdk_configurator_path(tmp_path)
    if configurator is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (configurator, env.get("PYTHONPATH")) if p)
    env.update(extra_env)
    completed = subprocess.run(
        [*_instrument_command(), sys.executable, str(app)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "instrumentation failure" not in completed.stderr, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["failures"] == {}, completed.stderr
    assert report["rows"] == [[0, "customer_0"], [1, "customer_1"], [2, "customer_2"]]
    assert report["error"] == "ServerOperationError"
    return report


def _dbsql_spans(receiver: OtlpReceiver) -> list[ReceivedSpan]:
    return [s for s in receiver.spans() if s.scope_name == SCOPE]


def _statements(receiver: OtlpReceiver) -> dict[str, ReceivedSpan]:
    return {
        s.name: s
        for s in _dbsql_spans(receiver)
        if s.attributes.get("databricks.span.role") == "STATEMENT"
    }


def _application_span(receiver: OtlpReceiver) -> ReceivedSpan:
    (span,) = receiver.spans_named("application.work")
    return span


def test_opentelemetry_instrument_exports_spans_and_metrics(
    tmp_path: Path, warehouse: LocalWarehouse, otlp_receiver: OtlpReceiver
) -> None:
    report = _run_application(tmp_path, warehouse, otlp_receiver, "auto-e2e")
    assert report["instrumented"] is True
    # The exporters flush at interpreter exit, so everything has arrived once run() returns.
    assert otlp_receiver.wait_for(lambda: len(_statements(otlp_receiver)) == 2, timeout=5)
    work = _application_span(otlp_receiver)
    assert work.trace_id == report["trace_id"]
    assert work.resource["service.name"] == "auto-e2e"

    spans = _dbsql_spans(otlp_receiver)
    roles = sorted(str(s.attributes["databricks.span.role"]) for s in spans)
    # The SELECT's result arrives whole with the execute response: no RESULT span follows.
    assert roles == ["CREATE_SESSION", "DELETE_SESSION", "STATEMENT", "STATEMENT"]
    for span in spans:
        assert span.resource["service.name"] == "auto-e2e"
        assert span.trace_id == work.trace_id
        assert span.kind == "CLIENT"
        assert span.attributes["db.system.name"] == "databricks"
        assert span.attributes["server.port"] == warehouse.port

    statements = _statements(otlp_receiver)
    select = statements["SELECT orders"]
    assert select.parent_span_id == work.span_id
    assert select.attributes["db.query.text"] == (
        "SELECT id, customer FROM orders WHERE id < ? ORDER BY id"
    )
    assert select.attributes["databricks.statement.id"] == report["select_id"]
    assert select.attributes["db.response.returned_rows"] == 3
    failed = statements["SELECT missing_table"]
    assert failed.status_code == "ERROR"
    assert failed.attributes["error.type"] == "databricks.sql.exc.ServerOperationError"
    assert failed.attributes["db.query.text"] == "SELECT * FROM missing_table WHERE id = ?"
    assert failed.attributes["databricks.statement.id"] == report["failed_id"]

    metrics = otlp_receiver.latest_metrics()
    duration = metrics["db.client.operation.duration"]
    assert sum(p.count or 0 for p in duration) == 2
    assert {p.resource["service.name"] for p in duration} == {"auto-e2e"}
    assert {p.scope_name for p in duration} == {SCOPE}
    (rows,) = metrics["db.client.response.returned_rows"]
    assert rows.count == 1
    assert rows.sum == 3
    assert "db.client.connection.create_time" in metrics


def test_disabled_by_entry_point_name(
    tmp_path: Path, warehouse: LocalWarehouse, otlp_receiver: OtlpReceiver
) -> None:
    report = _run_application(
        tmp_path,
        warehouse,
        otlp_receiver,
        "auto-e2e-disabled",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="dbsql",
    )
    assert report["instrumented"] is False
    # The pipeline works (the application's own span arrives) but nothing comes from dbsql.
    assert otlp_receiver.wait_for(lambda: otlp_receiver.spans_named("application.work"), 5)
    assert _application_span(otlp_receiver).resource["service.name"] == "auto-e2e-disabled"
    assert _dbsql_spans(otlp_receiver) == []
    assert not [
        name
        for name, points in otlp_receiver.metrics().items()
        if name.startswith(("db.client.", "databricks.client.")) and points
    ]


def test_query_text_capture_off_by_environment(
    tmp_path: Path, warehouse: LocalWarehouse, otlp_receiver: OtlpReceiver
) -> None:
    report = _run_application(
        tmp_path,
        warehouse,
        otlp_receiver,
        "auto-e2e-no-text",
        OTEL_PYTHON_DBSQL_CAPTURE_QUERY_TEXT="off",
    )
    assert report["instrumented"] is True
    assert otlp_receiver.wait_for(lambda: len(_statements(otlp_receiver)) == 2, timeout=5)
    statements = _statements(otlp_receiver)
    assert sorted(statements) == ["SELECT missing_table", "SELECT orders"]
    for span in _dbsql_spans(otlp_receiver):
        assert "db.query.text" not in span.attributes
        for value in span.attributes.values():
            assert "WHERE" not in str(value)
    assert statements["SELECT orders"].attributes["db.query.summary"] == "SELECT orders"
    assert statements["SELECT orders"].attributes["databricks.statement.id"] == report["select_id"]
