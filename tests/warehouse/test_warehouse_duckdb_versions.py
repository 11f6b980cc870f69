"""What DuckDB 1.x and 2.x hand over differently, served the same on whichever is installed:
modified-row counts of DML (1.x runs DML given to ``sql()`` at once and returns no relation to
read a count from) and the type of a column of bare ``NULL`` (1.x makes it INTEGER)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import Engine


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    engine.execute_sql("CREATE TABLE t (id INT, name STRING)")
    yield engine
    engine.close()


def _counts(engine: Engine, sql: str, params: Any = None) -> tuple[int | None, dict[str, Any]]:
    result = engine.execute_sql(sql, params)
    assert result.kind == "dml"
    columns = {name: result.table.column(name).to_pylist() for name in result.table.column_names}
    return result.modified_rows, columns


def test_insert_update_delete_counts(engine: Engine) -> None:
    assert _counts(engine, "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')") == (
        3,
        {"num_affected_rows": [3], "num_inserted_rows": [3]},
    )
    assert _counts(engine, "INSERT INTO t SELECT id + 10, name FROM t") == (
        3,
        {"num_affected_rows": [3], "num_inserted_rows": [3]},
    )
    assert _counts(engine, "UPDATE t SET name = 'z' WHERE id >= 3") == (
        4,
        {"num_affected_rows": [4]},
    )
    assert _counts(engine, "DELETE FROM t WHERE id > 11") == (2, {"num_affected_rows": [2]})
    assert _counts(engine, "DELETE FROM t WHERE id > 100") == (0, {"num_affected_rows": [0]})
    assert engine.execute_sql("SELECT count(*) AS n FROM t").table.column("n").to_pylist() == [4]


def test_counts_with_parameters(engine: Engine) -> None:
    assert _counts(engine, "INSERT INTO t VALUES (:id, :name)", {"id": 7, "name": "p"})[0] == 1
    assert _counts(engine, "INSERT INTO t VALUES (?, ?), (?, ?)", [8, "q", 9, "r"])[0] == 2
    update = "UPDATE t SET name = :name WHERE id > :id"
    assert _counts(engine, update, {"id": 7, "name": "s"})[0] == 2


def test_last_statement_of_a_script_reports_its_count(engine: Engine) -> None:
    script = "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b'), (3, 'c')"
    modified, _ = _counts(engine, script)
    assert modified == 2


def test_driver_sees_the_counts(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.execute_sql("CREATE TABLE t (id INT, name STRING)")
    with connect().cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        # Connectors before rowcount support (4.0.x) leave it at -1 and have no count attribute.
        reports = hasattr(cursor.active_result_set, "num_modified_rows")
        assert cursor.rowcount == (2 if reports else -1)
        assert [tuple(r) for r in cursor.fetchall()] == [(2, 2)]
        cursor.execute("UPDATE t SET name = 'z'")
        assert [tuple(r) for r in cursor.fetchall()] == [(2,)]
        assert cursor.rowcount == (2 if reports else -1)
        cursor.execute("DELETE FROM t WHERE id = 2")
        assert [tuple(r) for r in cursor.fetchall()] == [(1,)]
        assert cursor.rowcount == (1 if reports else -1)
    assert [s.modified_rows for s in warehouse.served.values()] == [2, 2, 1]


def test_bare_null_column_is_void(engine: Engine) -> None:
    engine.execute_sql("INSERT INTO t VALUES (1, 'a')")
    table = engine.execute_sql(
        "SELECT NULL AS n, CAST(NULL AS INT) AS i, id FROM t WHERE id > :id", {"id": 0}
    ).table
    assert [str(f.type) for f in table.schema] == ["null", "int32", "int32"]
    assert table.to_pylist() == [{"n": None, "i": None, "id": 1}]
    empty = engine.execute_sql("SELECT NULL AS n FROM t WHERE id < 0").table
    assert empty.num_rows == 0
