"""Queries through the real driver: results in every format, types, parameters, DML, names."""

from __future__ import annotations

import datetime
import decimal
import threading
from collections.abc import Callable
from typing import Any

import databricks.sql
import pytest
from databricks.sql import exc

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse

BIG = "SELECT id, label, half FROM big ORDER BY id"
ROWS = 100_000


def _seed_big(wh: LocalWarehouse) -> None:
    wh.execute_sql(
        "CREATE TABLE big AS SELECT range AS id, 'row-' || range::VARCHAR AS label, "
        "CASE WHEN range % 10 = 0 THEN NULL ELSE CAST(range AS DOUBLE) / 2 END AS half "
        f"FROM range({ROWS})"
    )


def _expected(i: int) -> tuple[Any, ...]:
    return (i, f"row-{i}", None if i % 10 == 0 else i / 2)


def test_select_one(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    connection = connect()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 AS one")
        assert [tuple(r) for r in cursor.fetchall()] == [(1,)]
        assert cursor.description[0][:2] == ("one", "int")
        assert cursor.rowcount == -1
        query_id = cursor.query_id
    connection.close()
    # The whole result came back as direct results with the operation closed server-side.
    assert warehouse.rpc_names() == ["OpenSession", "ExecuteStatement", "CloseSession"]
    served = warehouse.served[query_id]
    assert (served.state, served.result_format, served.rows, served.pages) == (
        "FINISHED",
        "arrow",
        1,
        1,
    )
    assert served.direct_results and served.closed


@pytest.mark.parametrize("result_format", ["columnar", "arrow", "cloudfetch"])
def test_large_result_in_every_format(
    warehouse: LocalWarehouse, connect: Callable[..., Any], result_format: str
) -> None:
    _seed_big(warehouse)
    warehouse.script(
        BIG, result_format=result_format, page_size=30_000, cloudfetch_files=4, lz4=True
    )
    connection = connect()
    with connection.cursor() as cursor:
        cursor.execute(BIG)
        rows = [cursor.fetchone(), cursor.fetchone()]
        rows += cursor.fetchmany(40_000)  # crosses the first page boundary
        rows.append(cursor.fetchone())
        rows += cursor.fetchall()
        assert cursor.fetchone() is None
        assert len(rows) == ROWS
        assert [tuple(r) for r in rows] == [_expected(i) for i in range(ROWS)]
        first_id = cursor.query_id

        cursor.execute(BIG)
        table = cursor.fetchall_arrow()
        assert table.num_rows == ROWS
        assert table.column("id").to_pylist() == list(range(ROWS))
        assert table.column("label").to_pylist()[-1] == f"row-{ROWS - 1}"
        assert table.column("half").null_count == ROWS // 10
    served = warehouse.served[first_id]
    assert served.result_format == result_format
    assert served.rows == ROWS
    assert served.lz4 is (result_format != "columnar")
    if result_format == "cloudfetch":
        assert [f.row_count for f in served.files] == [25_000] * 4
        assert all(f.downloads == 1 for f in served.files)
        assert all(0 < f.compressed_bytes < f.uncompressed_bytes for f in served.files)
        assert served.page_rows == [25_000] * 4
        downloads = [r for r in warehouse.http_requests if r.path.startswith("/cloudfetch/")]
        assert len(downloads) == 8 and {r.status for r in downloads} == {200}
    else:
        assert served.files == []
        assert served.page_rows == [30_000, 30_000, 30_000, 10_000]
    names = warehouse.rpc_names()
    start = names.index("ExecuteStatement")
    assert names[start : start + 5] == [
        "ExecuteStatement",
        "FetchResults",
        "FetchResults",
        "FetchResults",
        "CloseOperation",
    ]


TYPED = "SELECT * FROM typed ORDER BY i NULLS LAST"
TYPED_ROWS = [
    (
        1,
        2,
        "x",
        decimal.Decimal("1.25"),
        datetime.date(2024, 1, 2),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        True,
        1.5,
        2.5,
        3,
        4,
    ),
    (None,) * 12,
]


@pytest.mark.parametrize("result_format", ["columnar", "arrow", "cloudfetch"])
def test_types_round_trip(
    warehouse: LocalWarehouse, connect: Callable[..., Any], result_format: str
) -> None:
    warehouse.execute_sql(
        "CREATE TABLE typed (i INT, b BIGINT, s STRING, d DECIMAL(10,2), dt DATE, "
        "ts TIMESTAMP, tsn TIMESTAMP_NTZ, bo BOOLEAN, f FLOAT, db DOUBLE, sm SMALLINT, ti TINYINT)"
    )
    warehouse.execute_sql(
        "INSERT INTO typed VALUES (1, 2, 'x', 1.25, '2024-01-02', "
        "'2024-01-02 03:04:05.123456+00:00', '2024-01-02 03:04:05', true, 1.5, 2.5, 3, 4), "
        "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    warehouse.script(TYPED, result_format=result_format)
    with connect().cursor() as cursor:
        cursor.execute(TYPED)
        assert [tuple(r) for r in cursor.fetchall()] == TYPED_ROWS
        assert [d[1] for d in cursor.description] == [
            "int",
            "bigint",
            "string",
            "decimal",
            "date",
            "timestamp",
            "timestamp",
            "boolean",
            "float",
            "double",
            "smallint",
            "tinyint",
        ]
        assert cursor.description[3][4:6] == (10, 2)


def test_null_and_nested_values(connect: Callable[..., Any]) -> None:
    with connect().cursor() as cursor:
        cursor.execute("SELECT NULL AS n, array(1, 2) AS a, named_struct('k', 'v') AS st")
        row = cursor.fetchone()
        assert row.n is None
        assert list(row.a) == [1, 2]
        assert dict(row.st) == {"k": "v"}
        assert [d[1] for d in cursor.description] == ["null", "array", "struct"]


def test_native_parameters(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    with connect().cursor() as cursor:
        cursor.execute("SELECT :x AS x", {"x": 5})
        assert [tuple(r) for r in cursor.fetchall()] == [(5,)]
        values = {
            "i": 7,
            "s": "it's",
            "d": decimal.Decimal("1.25"),
            "dt": datetime.date(2024, 1, 2),
            "b": True,
            "n": None,
            "ts": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "f": 2.5,
        }
        cursor.execute(
            "SELECT :i AS i, :s AS s, :d AS d, :dt AS dt, :b AS b, :n AS n, :ts AS ts, :f AS f",
            values,
        )
        assert cursor.fetchone().asDict() == values
        cursor.execute("SELECT ? AS a, ? AS b", [1, "x"])
        assert [tuple(r) for r in cursor.fetchall()] == [(1, "x")]
    request = next(r.request for r in warehouse.rpcs if r.name == "ExecuteStatement")
    assert request.statement == "SELECT :x AS x"
    assert [(p.name, p.type, p.value.stringValue) for p in request.parameters] == [
        ("x", "INT", "5")
    ]


def test_inline_parameters(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    with connect(use_inline_params=True).cursor() as cursor:
        cursor.execute("SELECT %(x)s AS x, %(s)s AS s", {"x": 5, "s": "hi"})
        assert [tuple(r) for r in cursor.fetchall()] == [(5, "hi")]
    request = next(r.request for r in warehouse.rpcs if r.name == "ExecuteStatement")
    assert request.statement == "SELECT 5 AS x, 'hi' AS s"
    assert not request.parameters


def test_dml_rowcount_and_executemany(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    warehouse.execute_sql("CREATE TABLE t (id INT, name STRING)")
    with connect().cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        assert cursor.rowcount == 3
        assert [tuple(r) for r in cursor.fetchall()] == [(3, 3)]
        cursor.execute("UPDATE t SET name = 'z' WHERE id >= 2")
        assert cursor.rowcount == 2
        cursor.execute("DELETE FROM t WHERE id = 1")
        assert cursor.rowcount == 1
        cursor.execute("SELECT * FROM t")
        assert cursor.rowcount == -1
        before = len(warehouse.rpc_names())
        cursor.executemany(
            "INSERT INTO t VALUES (:id, :name)", [{"id": i, "name": f"n{i}"} for i in range(10, 14)]
        )
        assert cursor.rowcount == 4
        assert warehouse.rpc_names()[before:].count("ExecuteStatement") == 4
    modified = [s.modified_rows for s in warehouse.served.values()]
    assert modified == [3, 2, 1, None, 1, 1, 1, 1]
    assert warehouse.execute_sql("SELECT count(*) FROM t") == [(6,)]


def test_joins_aggregates_and_three_part_names(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    with connect().cursor() as cursor:
        cursor.execute("CREATE TABLE main.default.customers (id INT, name STRING)")
        cursor.execute("INSERT INTO main.default.customers VALUES (1, 'ann'), (2, 'bob')")
        cursor.execute("CREATE TABLE default.orders (id INT, customer_id INT, amount DOUBLE)")
        cursor.execute("INSERT INTO orders VALUES (1, 1, 10.0), (2, 1, 5.0), (3, 2, 1.0)")
        cursor.execute(
            "SELECT c.name, count(*) AS n, sum(o.amount) AS total "
            "FROM main.default.orders o JOIN customers c ON o.customer_id = c.id "
            "GROUP BY c.name ORDER BY c.name"
        )
        assert [tuple(r) for r in cursor.fetchall()] == [("ann", 2, 15.0), ("bob", 1, 1.0)]
        cursor.execute("SELECT current_catalog(), current_schema()")
        assert tuple(cursor.fetchone()) == ("main", "default")


def test_session_namespace_and_other_catalogs(
    warehouse: LocalWarehouse, connect: Callable[..., Any]
) -> None:
    with connect(catalog="sales", schema="eu").cursor() as cursor:
        cursor.execute("SELECT current_catalog(), current_schema()")
        assert tuple(cursor.fetchone()) == ("sales", "eu")
        cursor.execute("CREATE TABLE deals AS SELECT 1 AS id")
    with connect().cursor() as cursor:
        cursor.execute("SELECT id FROM sales.eu.deals")
        assert [tuple(r) for r in cursor.fetchall()] == [(1,)]
        cursor.execute("USE CATALOG sales")
        cursor.execute("SELECT current_catalog(), current_schema()")
        assert tuple(cursor.fetchone()) == ("sales", "default")
    assert warehouse.engine.catalogs() == ["main", "sales"]


@pytest.mark.parametrize(
    ("sql", "sqlstate", "error_class"),
    [
        ("SELECT * FROM no_such_table", "42P01", "TABLE_OR_VIEW_NOT_FOUND"),
        ("SELEC 1", "42601", "PARSE_SYNTAX_ERROR"),
        ("SELECT no_such_column FROM range(1)", "42703", "UNRESOLVED_COLUMN"),
        ("SELECT CAST('x' AS INT)", "22018", "CAST_INVALID_INPUT"),
    ],
)
def test_engine_errors_are_error_states(
    warehouse: LocalWarehouse,
    connect: Callable[..., Any],
    sql: str,
    sqlstate: str,
    error_class: str,
) -> None:
    with connect().cursor() as cursor:
        with pytest.raises(exc.ServerOperationError) as raised:
            cursor.execute(sql)
        assert f"SQLSTATE: {sqlstate}" in str(raised.value)
        assert f"[{error_class}]" in str(raised.value)
        assert raised.value.context["operation-id"] == cursor.query_id
        served = warehouse.served[cursor.query_id]
        assert (served.state, served.sqlstate) == ("ERROR", sqlstate)
        cursor.execute("SELECT 1")  # the session keeps working
        assert cursor.fetchall()


def test_constraint_violation(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    warehouse.execute_sql("CREATE TABLE k (id INT PRIMARY KEY)")
    warehouse.execute_sql("INSERT INTO k VALUES (1)")
    with connect().cursor() as cursor, pytest.raises(exc.ServerOperationError, match="23000"):
        cursor.execute("INSERT INTO k VALUES (1)")


def test_two_warehouses_at_once() -> None:
    with LocalWarehouse() as first, LocalWarehouse() as second:
        assert first.port != second.port
        first.execute_sql("CREATE TABLE only_here AS SELECT 1 AS x")
        results: dict[str, Any] = {}

        def run(name: str, wh: LocalWarehouse, sql: str) -> None:
            connection = databricks.sql.connect(**wh.connect_kwargs())
            try:
                with connection.cursor() as cursor:
                    for _ in range(20):
                        cursor.execute(sql)
                        results[name] = cursor.fetchall()
            except Exception as error:
                results[name] = error
            finally:
                connection.close()

        threads = [
            threading.Thread(target=run, args=("a", first, "SELECT x FROM only_here")),
            threading.Thread(target=run, args=("b", second, "SELECT 2 AS y")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [tuple(r) for r in results["a"]] == [(1,)]
        assert [tuple(r) for r in results["b"]] == [(2,)]
        with (
            databricks.sql.connect(**second.connect_kwargs()) as connection,
            connection.cursor() as cursor,
            pytest.raises(exc.ServerOperationError, match="42P01"),
        ):
            cursor.execute("SELECT x FROM only_here")


def test_translation_is_cached(warehouse: LocalWarehouse, connect: Callable[..., Any]) -> None:
    with connect().cursor() as cursor:
        cursor.execute("SELECT 40 + 2 AS answer")
        misses = warehouse.engine.translations.misses
        for _ in range(5):
            cursor.execute("SELECT 40 + 2 AS answer")
            assert cursor.fetchone().answer == 42
        assert warehouse.engine.translations.misses == misses


def test_execute_sql_returns_rows(warehouse: LocalWarehouse) -> None:
    warehouse.execute_sql("CREATE TABLE seeded AS SELECT * FROM range(3) r(id)")
    assert warehouse.execute_sql("SELECT id FROM main.default.seeded ORDER BY id") == [
        (0,),
        (1,),
        (2,),
    ]
    assert warehouse.execute_sql("SELECT :v AS v", {"v": "x"}) == [("x",)]
    assert warehouse.execute_sql("CREATE TABLE empty (x INT)") == []
