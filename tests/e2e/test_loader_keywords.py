"""The loaders of ``opentelemetry-instrumentation`` pass keywords this package does not own.

``opentelemetry-instrument`` 0.53b0-0.56b0 loads every instrumentor with
``instrument(raise_exception_on_conflict=True)``, later releases with ``skip_dep_check=True``,
and distros may pass options meant for other instrumentations. None of them may stop the
instrumentation; an unknown keyword is warned about once, by name.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import databricks.sql
import pytest
from opentelemetry.instrumentation.distro import DefaultDistro

from opentelemetry_instrumentation_dbsql import DbsqlInstrumentor
from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

SUBPROCESS_TIMEOUT_S = 60.0


def _entry_point() -> Any:
    (found,) = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "dbsql"]
    return found


def _unknown_keyword_warnings(caplog: pytest.LogCaptureFixture, key: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"unknown keyword {key!r}" in r.getMessage()
    ]


@pytest.mark.parametrize(
    "loader_kwargs",
    [
        {"raise_exception_on_conflict": True},
        {"skip_dep_check": True},
        {"raise_exception_on_conflict": True, "skip_dep_check": True},
    ],
    ids=["0.53b0-0.56b0", "0.57b0+", "both"],
)
def test_distro_load_instrumentor_with_loader_keywords_instruments(
    loader_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        DefaultDistro().load_instrumentor(_entry_point(), **loader_kwargs)
    try:
        assert DbsqlInstrumentor().is_instrumented_by_opentelemetry
        assert not [r for r in caplog.records if "unknown keyword" in r.getMessage()]
    finally:
        DbsqlInstrumentor().uninstrument()


def test_distro_options_of_other_instrumentations_are_warned_once_and_ignored(
    shared_warehouse: LocalWarehouse, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = {"enable_commenter": True, "commenter_options": {"db_driver": True}}
    with caplog.at_level(logging.WARNING):
        DefaultDistro().load_instrumentor(
            _entry_point(), raise_exception_on_conflict=True, **foreign
        )
    try:
        assert DbsqlInstrumentor().is_instrumented_by_opentelemetry
        with caplog.at_level(logging.WARNING):
            DbsqlInstrumentor.instrument_connection(
                databricks.sql.connect(**shared_warehouse.connect_kwargs()), **foreign
            ).close()
        for key in foreign:
            assert len(_unknown_keyword_warnings(caplog, key)) == 1, key
    finally:
        DbsqlInstrumentor().uninstrument()


def test_typo_names_the_nearest_option(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        DbsqlInstrumentor().instrument(capture_query_txt="off")
    try:
        assert DbsqlInstrumentor().is_instrumented_by_opentelemetry
        (message,) = _unknown_keyword_warnings(caplog, "capture_query_txt")
        assert "did you mean 'capture_query_text'" in message
    finally:
        DbsqlInstrumentor().uninstrument()


def test_bad_value_of_a_known_option_still_raises_next_to_loader_keywords() -> None:
    with pytest.raises(ValueError, match=r"capture_query_text.*sanitized \| raw \| off"):
        DbsqlInstrumentor().instrument(
            raise_exception_on_conflict=True, capture_query_text="everything"
        )
    assert not DbsqlInstrumentor().is_instrumented_by_opentelemetry


LOADER_APPLICATION = """
import json
import logging
import os

import databricks.sql
from opentelemetry import trace
from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
from opentelemetry.instrumentation.distro import DefaultDistro
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

warnings = []


class Capture(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())


logging.getLogger().addHandler(Capture())


class CommenterDistro(DefaultDistro):
    # What opentelemetry-instrument 0.53b0-0.56b0 passes, plus another instrumentation's options.
    def load_instrumentor(self, entry_point, **kwargs):
        kwargs.setdefault("raise_exception_on_conflict", True)
        super().load_instrumentor(entry_point, enable_commenter=True, **kwargs)


exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
_load_instrumentors(CommenterDistro())
with databricks.sql.connect(**json.loads(os.environ["APP_CONNECT_KWARGS"])) as conn:
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 AS one")
        rows = cursor.fetchall()
print(json.dumps({
    "rows": [list(r) for r in rows],
    "spans": [s.name for s in exporter.get_finished_spans()],
    "warnings": warnings,
}))
"""


def test_auto_instrumentation_loader_with_conflict_keyword_runs_the_application(
    shared_warehouse: LocalWarehouse,
) -> None:
    env = dict(os.environ)
    env["APP_CONNECT_KWARGS"] = json.dumps(shared_warehouse.connect_kwargs())
    # Only this package's instrumentor: others installed here are not under test.
    others = [ep.name for ep in entry_points(group="opentelemetry_instrumentor")]
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = ",".join(n for n in others if n != "dbsql")
    done = subprocess.run(
        [sys.executable, "-c", LOADER_APPLICATION],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == [[1]]
    assert "SELECT" in report["spans"], report["spans"]
    commenter = [w for w in report["warnings"] if "'enable_commenter'" in w]
    assert len(commenter) == 1, report["warnings"]
