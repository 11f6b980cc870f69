"""Sanitization and summaries: the official semantic-convention vectors plus Databricks SQL."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, SupportsIndex, overload

import pytest

from opentelemetry_instrumentation_dbsql import query_text
from opentelemetry_instrumentation_dbsql.query_text import (
    QueryInfo,
    analyze,
    cache_clear,
    cache_info,
    sanitize,
    summarize,
)

_VECTORS_PATH = Path(__file__).parent / "data" / "semconv_db_sql_test_cases.json"
_VECTORS: list[dict[str, Any]] = json.loads(_VECTORS_PATH.read_text(encoding="utf-8"))


def test_all_official_vectors_are_loaded() -> None:
    assert len(_VECTORS) == 24


@pytest.mark.parametrize("case", _VECTORS, ids=[case["name"] for case in _VECTORS])
def test_official_vector(case: dict[str, Any]) -> None:
    info = analyze(case["input"]["query"])
    assert info.text in case["expected"]["db.query.text"]
    assert info.summary == case["expected"]["db.query.summary"]
    # The operation name is the summary's first item.
    assert info.operation_name is not None
    assert info.summary is not None
    assert info.summary.startswith(info.operation_name)


class Case(NamedTuple):
    sql: str
    text: str | None
    summary: str | None
    operation: str | None
    target: str | None


_DATABRICKS: dict[str, Case] = {
    "backtick_three_part_name": Case(
        "SELECT * FROM `my-cat`.`sch`.`t`",
        "SELECT * FROM `my-cat`.`sch`.`t`",
        "SELECT `my-cat`.`sch`.`t`",
        "SELECT",
        "`my-cat`.`sch`.`t`",
    ),
    "backtick_escape": Case(
        "SELECT `a``b` FROM `x ``y```",
        "SELECT `a``b` FROM `x ``y```",
        "SELECT `x ``y```",
        "SELECT",
        "`x ``y```",
    ),
    "three_part_name": Case(
        "SELECT * FROM main.default.orders WHERE id = 42",
        "SELECT * FROM main.default.orders WHERE id = ?",
        "SELECT main.default.orders",
        "SELECT",
        "main.default.orders",
    ),
    "path_table": Case(
        "SELECT * FROM delta.`/mnt/data/events` VERSION AS OF 3",
        "SELECT * FROM delta.`/mnt/data/events` VERSION AS OF ?",
        "SELECT delta.`/mnt/data/events`",
        "SELECT",
        "delta.`/mnt/data/events`",
    ),
    "merge": Case(
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.v = s.v "
        "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, 'x')",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.v = s.v "
        "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, ?)",
        "MERGE t s",
        "MERGE",
        None,
    ),
    "merge_subquery_source": Case(
        "MERGE INTO main.sales.t AS tgt USING (SELECT * FROM staging WHERE d > DATE '2024-01-01')"
        " AS src ON tgt.id = src.id WHEN MATCHED THEN DELETE",
        "MERGE INTO main.sales.t AS tgt USING (SELECT * FROM staging WHERE d > DATE ?)"
        " AS src ON tgt.id = src.id WHEN MATCHED THEN DELETE",
        "MERGE main.sales.t SELECT staging",
        "MERGE",
        None,
    ),
    "copy_into": Case(
        "COPY INTO t FROM '/Volumes/main/default/landing/f.csv' FILEFORMAT = CSV "
        "FORMAT_OPTIONS ('header' = 'true')",
        "COPY INTO t FROM ? FILEFORMAT = CSV FORMAT_OPTIONS (? = ?)",
        "COPY INTO t",
        "COPY INTO",
        "t",
    ),
    "copy_into_select": Case(
        "COPY INTO t FROM (SELECT _c0::INT AS id FROM 's3://bucket/path') FILEFORMAT = CSV",
        "COPY INTO t FROM (SELECT _c0::INT AS id FROM ?) FILEFORMAT = CSV",
        "COPY INTO t SELECT",
        "COPY INTO",
        "t",
    ),
    "use_catalog": Case(
        "USE CATALOG main", "USE CATALOG main", "USE CATALOG main", "USE CATALOG", None
    ),
    "use_schema": Case("USE SCHEMA x", "USE SCHEMA x", "USE SCHEMA x", "USE SCHEMA", None),
    "use_qualified": Case("use main.default", "use main.default", "use main.default", "use", None),
    "optimize_zorder": Case(
        "OPTIMIZE t ZORDER BY (c)", "OPTIMIZE t ZORDER BY (c)", "OPTIMIZE t", "OPTIMIZE", "t"
    ),
    "optimize_where": Case(
        "OPTIMIZE events WHERE date >= '2024-01-01'",
        "OPTIMIZE events WHERE date >= ?",
        "OPTIMIZE events",
        "OPTIMIZE",
        "events",
    ),
    "vacuum": Case(
        "VACUUM t RETAIN 168 HOURS", "VACUUM t RETAIN ? HOURS", "VACUUM t", "VACUUM", "t"
    ),
    "cte": Case(
        "WITH a AS (SELECT id FROM x WHERE v > 10) SELECT * FROM a JOIN y ON a.id = y.id",
        "WITH a AS (SELECT id FROM x WHERE v > ?) SELECT * FROM a JOIN y ON a.id = y.id",
        "SELECT x SELECT y",
        "SELECT",
        None,
    ),
    "cte_single_table": Case(
        "WITH `recent` (id) AS (SELECT id FROM x) SELECT * FROM RECENT",
        "WITH `recent` (id) AS (SELECT id FROM x) SELECT * FROM RECENT",
        "SELECT x SELECT",
        "SELECT",
        "x",
    ),
    "cte_insert": Case(
        "WITH a AS (SELECT * FROM x), b AS (SELECT * FROM a) INSERT INTO t SELECT * FROM b",
        "WITH a AS (SELECT * FROM x), b AS (SELECT * FROM a) INSERT INTO t SELECT * FROM b",
        "SELECT x SELECT INSERT t SELECT",
        "INSERT",
        None,
    ),
    # Databricks makes AS optional: WITH name [(columns)] [AS] (query).
    "cte_without_as": Case(
        "WITH a (SELECT * FROM x) SELECT * FROM a",
        "WITH a (SELECT * FROM x) SELECT * FROM a",
        "SELECT x SELECT",
        "SELECT",
        "x",
    ),
    "cte_columns_without_as": Case(
        "WITH a (c1, c2) (SELECT * FROM x), b AS (SELECT 1) SELECT * FROM a, b",
        "WITH a (c1, c2) (SELECT * FROM x), b AS (SELECT ?) SELECT * FROM a, b",
        "SELECT x SELECT SELECT",
        "SELECT",
        "x",
    ),
    "values": Case("VALUES (1, 'a'), (2, 'b')", "VALUES (?, ?), (?, ?)", "VALUES", "VALUES", None),
    "insert_values": Case(
        "INSERT INTO t VALUES (1, 'a', TRUE, NULL)",
        "INSERT INTO t VALUES (?, ?, ?, NULL)",
        "INSERT t",
        "INSERT",
        "t",
    ),
    "insert_overwrite": Case(
        "INSERT OVERWRITE TABLE t PARTITION (d = '2024') SELECT * FROM s",
        "INSERT OVERWRITE TABLE t PARTITION (d = ?) SELECT * FROM s",
        "INSERT OVERWRITE t SELECT s",
        "INSERT OVERWRITE",
        None,
    ),
    "create_table_as_select": Case(
        "CREATE TABLE t AS SELECT a, b FROM s WHERE c = 'x'",
        "CREATE TABLE t AS SELECT a, b FROM s WHERE c = ?",
        "CREATE TABLE t SELECT s",
        "CREATE TABLE",
        None,
    ),
    "create_or_replace_view": Case(
        "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM s",
        "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM s",
        "CREATE OR REPLACE TEMP VIEW v SELECT s",
        "CREATE OR REPLACE TEMP VIEW",
        None,
    ),
    "create_schema": Case(
        "CREATE SCHEMA IF NOT EXISTS main.sales",
        "CREATE SCHEMA IF NOT EXISTS main.sales",
        "CREATE SCHEMA main.sales",
        "CREATE SCHEMA",
        None,
    ),
    "describe_table": Case(
        "DESCRIBE TABLE t", "DESCRIBE TABLE t", "DESCRIBE TABLE t", "DESCRIBE TABLE", "t"
    ),
    "describe_extended": Case(
        "DESC EXTENDED main.default.t",
        "DESC EXTENDED main.default.t",
        "DESC EXTENDED main.default.t",
        "DESC EXTENDED",
        "main.default.t",
    ),
    "describe_history": Case(
        "DESCRIBE HISTORY t", "DESCRIBE HISTORY t", "DESCRIBE HISTORY t", "DESCRIBE HISTORY", "t"
    ),
    "show_tables_in": Case(
        "SHOW TABLES IN s LIKE 'ord*'",
        "SHOW TABLES IN s LIKE ?",
        "SHOW TABLES s",
        "SHOW TABLES",
        None,
    ),
    "show_tables": Case("SHOW TABLES", "SHOW TABLES", "SHOW TABLES", "SHOW TABLES", None),
    "show_create_table": Case(
        "SHOW CREATE TABLE t",
        "SHOW CREATE TABLE t",
        "SHOW CREATE TABLE t",
        "SHOW CREATE TABLE",
        "t",
    ),
    "set_config": Case(
        "SET spark.sql.shuffle.partitions = 200",
        "SET spark.sql.shuffle.partitions = ?",
        "SET",
        "SET",
        None,
    ),
    "set_raw_value": Case("SET my.token=abc-123 def", "SET my.token=?", "SET", "SET", None),
    "set_value_with_semicolon": Case(
        "SET k = 'a;b' ; SELECT 1", "SET k = ? ; SELECT ?", "SET SELECT", "SET", None
    ),
    # The value ends at the next ";" token: a ";" in a comment does not end it.
    "set_value_with_comment": Case(
        "SET k = a /* ; */ b; SELECT 1", "SET k = ?; SELECT ?", "SET SELECT", "SET", None
    ),
    "set_variable": Case("SET VAR x = 5 + y", "SET VAR x = ? + y", "SET", "SET", None),
    "set_time_zone": Case("SET TIME ZONE 'UTC'", "SET TIME ZONE ?", "SET", "SET", None),
    "cache_table": Case("CACHE TABLE t", "CACHE TABLE t", "CACHE TABLE t", "CACHE TABLE", "t"),
    "cache_select": Case(
        "CACHE SELECT * FROM t WHERE d = 1",
        "CACHE SELECT * FROM t WHERE d = ?",
        "CACHE SELECT t",
        "CACHE",
        "t",
    ),
    "uncache": Case(
        "UNCACHE TABLE IF EXISTS t",
        "UNCACHE TABLE IF EXISTS t",
        "UNCACHE TABLE t",
        "UNCACHE TABLE",
        "t",
    ),
    "refresh_table": Case(
        "REFRESH TABLE t", "REFRESH TABLE t", "REFRESH TABLE t", "REFRESH TABLE", "t"
    ),
    "delete": Case(
        "DELETE FROM t WHERE id = 5", "DELETE FROM t WHERE id = ?", "DELETE t", "DELETE", "t"
    ),
    "delete_subquery": Case(
        "DELETE FROM t WHERE id IN (SELECT id FROM u)",
        "DELETE FROM t WHERE id IN (SELECT id FROM u)",
        "DELETE t SELECT u",
        "DELETE",
        None,
    ),
    "update": Case(
        "UPDATE t SET a = 1, b = 'x' WHERE c = 2",
        "UPDATE t SET a = ?, b = ? WHERE c = ?",
        "UPDATE t",
        "UPDATE",
        "t",
    ),
    "drop_if_exists": Case(
        "DROP TABLE IF EXISTS t", "DROP TABLE IF EXISTS t", "DROP TABLE t", "DROP TABLE", "t"
    ),
    "keyword_as_table_name": Case(
        "DROP TABLE location",
        "DROP TABLE location",
        "DROP TABLE location",
        "DROP TABLE",
        "location",
    ),
    "alter_table": Case(
        "ALTER TABLE t ADD COLUMNS (c INT COMMENT 'x')",
        "ALTER TABLE t ADD COLUMNS (c INT COMMENT ?)",
        "ALTER TABLE t",
        "ALTER TABLE",
        "t",
    ),
    "multi_statement": Case(
        "SELECT 1; SELECT 2", "SELECT ?; SELECT ?", "SELECT SELECT", "SELECT", None
    ),
    "multi_statement_same_table": Case(
        "DELETE FROM t; INSERT INTO t SELECT * FROM t",
        "DELETE FROM t; INSERT INTO t SELECT * FROM t",
        "DELETE t INSERT t SELECT t",
        "DELETE",
        "t",
    ),
    "empty": Case("", None, None, None, None),
    "whitespace_only": Case("  \n\t ", None, None, None, None),
    "line_comment_only": Case("-- only a comment", None, None, None, None),
    "block_comment_only": Case("/* a /* nested */ comment */", None, None, None, None),
    "leading_comment_and_hint": Case(
        "/* app=etl */ SELECT /*+ BROADCAST(d) */ * FROM f JOIN d ON f.k = d.k",
        "SELECT  * FROM f JOIN d ON f.k = d.k",
        "SELECT f d",
        "SELECT",
        None,
    ),
    "typed_literals": Case(
        "SELECT id FROM t WHERE ts > TIMESTAMP '2024-01-01 00:00:00' "
        "AND d < current_date() - INTERVAL '1' DAY AND e = INTERVAL 3 HOURS",
        "SELECT id FROM t WHERE ts > TIMESTAMP ? AND d < current_date() - INTERVAL ? DAY "
        "AND e = INTERVAL ? HOURS",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "spark_numbers_and_binary": Case(
        "SELECT X'0AFF', r'raw\\', 10L, 1.5D, 2BD, 1e10, 0x1F, 100Y, 5S, 1.0F, 1E-3BD",
        "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
        "SELECT",
        "SELECT",
        None,
    ),
    # A run of dotted numbers is one literal (its inner digits were kept as a name before).
    "dotted_numbers": Case(
        "SELECT 1.1.1, x FROM t WHERE ip = 10.0.0.1 AND v = 1.5e3.2",
        "SELECT ?, x FROM t WHERE ip = ? AND v = ??",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "string_escapes": Case(
        "SELECT 'It\\'s', \"dq \\\" x\", 'a''b', '\\\\' FROM t",
        "SELECT ?, ?, ?, ? FROM t",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "raw_string_then_string": Case(
        "SELECT r'C:\\', 'x\\'y' FROM t", "SELECT ?, ? FROM t", "SELECT t", "SELECT", "t"
    ),
    "parameter_markers": Case(
        "SELECT * FROM t WHERE a = :p AND b = ? AND c::int = 1 AND j:k.l = 'v'",
        "SELECT * FROM t WHERE a = :p AND b = ? AND c::int = ? AND j:k.l = ?",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "in_lists": Case(
        "SELECT * FROM t WHERE a IN (1, 2, 3) AND b NOT IN ('x', -1) AND c IN (:p, 1)",
        "SELECT * FROM t WHERE a IN (?) AND b NOT IN (?) AND c IN (:p, ?)",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "in_subquery": Case(
        "SELECT * FROM t WHERE d IN (SELECT x FROM u)",
        "SELECT * FROM t WHERE d IN (SELECT x FROM u)",
        "SELECT t SELECT u",
        "SELECT",
        None,
    ),
    "booleans": Case(
        "SELECT * FROM t WHERE a = true AND b IS NOT FALSE AND c IS NULL AND s.true = 1",
        "SELECT * FROM t WHERE a = ? AND b IS NOT ? AND c IS NULL AND s.true = ?",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "signs": Case(
        "SELECT a-1, a - 1, -1, x=-2, (b)+3 FROM t",
        "SELECT a-?, a - ?, ?, x=?, (b)+? FROM t",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "from_inside_functions": Case(
        "SELECT EXTRACT(YEAR FROM ts), trim(BOTH 'x' FROM s), a IS DISTINCT FROM b FROM t",
        "SELECT EXTRACT(YEAR FROM ts), trim(BOTH ? FROM s), a IS DISTINCT FROM b FROM t",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "table_valued_functions": Case(
        "SELECT * FROM range(10) r, t2, read_files('/Volumes/x') f",
        "SELECT * FROM range(?) r, t2, read_files(?) f",
        "SELECT t2",
        "SELECT",
        "t2",
    ),
    "digit_leading_identifier": Case(
        "SELECT * FROM 2024_sales",
        "SELECT * FROM 2024_sales",
        "SELECT 2024_sales",
        "SELECT",
        "2024_sales",
    ),
    "joins_subquery_and_comma": Case(
        "SELECT * FROM t1 LEFT JOIN (SELECT * FROM t2) x ON t1.a = x.a, t3 WHERE t1.b > 1",
        "SELECT * FROM t1 LEFT JOIN (SELECT * FROM t2) x ON t1.a = x.a, t3 WHERE t1.b > ?",
        "SELECT t1 SELECT t2 t3",
        "SELECT",
        None,
    ),
    "parenthesized_join": Case(
        "SELECT * FROM (t1 JOIN t2 ON t1.a = t2.a) JOIN t3 ON t3.b = t1.b",
        "SELECT * FROM (t1 JOIN t2 ON t1.a = t2.a) JOIN t3 ON t3.b = t1.b",
        "SELECT t1 t2 t3",
        "SELECT",
        None,
    ),
    "union": Case(
        "SELECT a FROM t UNION ALL SELECT b FROM u",
        "SELECT a FROM t UNION ALL SELECT b FROM u",
        "SELECT t SELECT u",
        "SELECT",
        None,
    ),
    "lateral_view": Case(
        "SELECT * FROM t LATERAL VIEW explode(arr) e AS a, b",
        "SELECT * FROM t LATERAL VIEW explode(arr) e AS a, b",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "self_join": Case(
        "SELECT * FROM t a JOIN t b ON a.p = b.id",
        "SELECT * FROM t a JOIN t b ON a.p = b.id",
        "SELECT t t",
        "SELECT",
        "t",
    ),
    "explain": Case(
        "EXPLAIN EXTENDED SELECT * FROM t",
        "EXPLAIN EXTENDED SELECT * FROM t",
        "EXPLAIN EXTENDED SELECT t",
        "EXPLAIN EXTENDED",
        "t",
    ),
    "grant_keeps_only_the_verb": Case(
        "GRANT SELECT ON TABLE t TO `someone@example.com`",
        "GRANT SELECT ON TABLE t TO `someone@example.com`",
        "GRANT",
        "GRANT",
        None,
    ),
    "call_escape": Case(
        "{call some_proc(1)}", "{call some_proc(?)}", "call some_proc", "call", None
    ),
    "case_preserved": Case(
        "select * from Main.Default.T",
        "select * from Main.Default.T",
        "select Main.Default.T",
        "select",
        "Main.Default.T",
    ),
    "unknown_verb_gives_no_summary": Case("hello world 42", "hello world ?", None, None, None),
    "unterminated_string": Case(
        "SELECT * FROM t WHERE a = 'secret",
        "SELECT * FROM t WHERE a = ?",
        "SELECT t",
        "SELECT",
        "t",
    ),
    "unterminated_backtick": Case(
        "SELECT `a, 'secret' FROM t", "SELECT `a, ? FROM t", "SELECT t", "SELECT", "t"
    ),
    "unterminated_comment": Case("SELECT 1 /* 'secret' ", "SELECT ?", "SELECT", "SELECT", None),
    "comments_nested_four_deep": Case(
        "SELECT 1 /* 1 /* 2 /* 3 /* 4 */ */ */ */ FROM t",
        "SELECT ?  FROM t",
        "SELECT t",
        "SELECT",
        "t",
    ),
    # Deeper nesting is left to the end of the text, as an unterminated comment is.
    "comment_nested_five_deep": Case(
        "SELECT 1 /* 1 /* 2 /* 3 /* 4 /* 5 */ */ */ */ */ FROM t",
        "SELECT ?",
        "SELECT",
        "SELECT",
        None,
    ),
}


@pytest.mark.parametrize("case", _DATABRICKS.values(), ids=list(_DATABRICKS))
def test_databricks_case(case: Case) -> None:
    info = analyze(case.sql)
    assert info == QueryInfo(case.text, case.summary, case.operation, case.target)


def test_sanitize_false_keeps_the_text() -> None:
    sql = "SELECT * FROM t /* c */ WHERE a = :a AND b = 'literal' -- x"
    info = analyze(sql, sanitize=False)
    assert info.text == sql
    assert info.summary == "SELECT t"
    assert info.target == "t"
    assert analyze(sql).text == "SELECT * FROM t  WHERE a = :a AND b = ?"


def test_text_truncated_to_max_length() -> None:
    sql = "SELECT " + ", ".join(f"col_{i}" for i in range(500)) + " FROM t WHERE a = 'x'"
    info = analyze(sql, max_length=100)
    assert info.text is not None
    assert len(info.text) == 100
    assert info.text == sanitize(sql)[:100]
    assert info.summary == "SELECT t"
    raw = analyze(sql, sanitize=False, max_length=50)
    assert raw.text == sql[:50]
    assert analyze(sql, max_length=0).text is None


def test_summary_truncated_on_item_boundary() -> None:
    tables = [f"schema_{i}.table_with_a_long_name_{i}" for i in range(40)]
    sql = "SELECT * FROM " + ", ".join(tables)
    summary = summarize(sql)
    assert summary is not None
    assert len(summary) <= 255
    items = summary.split(" ")
    assert items[0] == "SELECT"
    assert items[1:] == tables[: len(items) - 1]
    # The next item would not have fitted.
    assert len(summary) + 1 + len(tables[len(items) - 1]) > 255


def test_target_longer_than_summary_limit_is_dropped_whole() -> None:
    name = "`" + "x" * 300 + "`"
    assert analyze(f"SELECT * FROM {name}").summary == "SELECT"


def test_sanitize_and_summarize_helpers() -> None:
    sql = "  SELECT a FROM t WHERE b = 1  "
    assert sanitize(sql) == "SELECT a FROM t WHERE b = ?"
    assert summarize(sql) == "SELECT t"
    long_sql = "SELECT 'x' FROM t WHERE " + " OR ".join(f"c = {i}" for i in range(2000))
    assert len(sanitize(long_sql)) > 2048  # not truncated
    assert "1999" not in sanitize(long_sql)
    assert sanitize("") == ""
    assert summarize("") is None


def test_cache_hits() -> None:
    cache_clear()
    sql = "SELECT * FROM cache_probe WHERE id = 7"
    first = analyze(sql)
    before = cache_info()
    for _ in range(5):
        assert analyze(sql) is first
    after = cache_info()
    assert after.hits == before.hits + 5
    assert after.misses == before.misses
    analyze(sql, max_length=10)
    assert cache_info().misses == before.misses + 1


def test_large_text_cached_in_second_tier_and_huge_text_not_cached() -> None:
    cache_clear()
    large = "SELECT * FROM t WHERE a IN (" + ", ".join(["1"] * 3000) + ")"
    assert 4 * 1024 < len(large) <= 64 * 1024
    analyze(large)
    analyze(large)
    assert cache_info().hits == 1
    huge = "SELECT * FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(20000))
    assert len(huge) > 64 * 1024
    size = cache_info().currsize
    info = analyze(huge)
    assert info.summary == "SELECT t"
    assert cache_info().currsize == size


def test_huge_input_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    huge = "INSERT INTO t VALUES " + ", ".join(f"({i}, 'name{i}', {i}.5)" for i in range(100000))
    scanned: list[int] = []
    tokenize = query_text._tokenize

    def counting(sql: str, build: bool) -> tuple[str, list[tuple[int, str]]]:
        scanned.append(len(sql))
        return tokenize(sql, build)

    monkeypatch.setattr(query_text, "_tokenize", counting)
    info = analyze(huge)
    assert info.summary == "INSERT t"
    assert info.text is not None
    assert len(info.text) == 2048
    assert "name" not in info.text
    assert scanned == [64 * 1024]


def test_cut_inside_a_name_does_not_make_a_target() -> None:
    sql = "SELECT * FROM a" + " " * (64 * 1024 - 16) + "JOIN long_table_name"
    assert analyze(sql).summary == "SELECT a"


@pytest.mark.parametrize(
    "value",
    [None, b"SELECT 1", 42, 1.5, ["SELECT 1"], {"sql": 1}, object(), bytearray(b"x")],
    ids=lambda v: type(v).__name__,
)
def test_non_string_input_gives_empty_info(value: Any) -> None:
    assert analyze(value) == QueryInfo(None, None, None, None)
    assert sanitize(value) == ""
    assert summarize(value) is None


def test_bad_options_give_empty_info() -> None:
    bad: Any = "x"
    assert analyze("SELECT 1", max_length=bad) == QueryInfo(None, None, None, None)

    class Falsy:
        def __bool__(self) -> bool:
            raise RuntimeError("no")

    flag: Any = Falsy()
    assert analyze("SELECT 1", sanitize=flag) == QueryInfo(None, None, None, None)


def test_string_subclass() -> None:
    class Sql(str):
        def __hash__(self) -> int:
            raise RuntimeError("unhashable")

    assert analyze(Sql("SELECT * FROM t WHERE a = 1")).text == "SELECT * FROM t WHERE a = ?"


def test_internal_failure_never_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(sql: str, build: bool) -> tuple[str, list[tuple[int, str]]]:
        raise ValueError("internal")

    monkeypatch.setattr(query_text, "_tokenize", boom)
    assert analyze("SELECT 'never cached' FROM t") == QueryInfo(None, None, None, None)
    assert sanitize("SELECT 'secret'") == ""


_FUZZ_KEYWORDS = (
    "SELECT FROM JOIN WITH AS IN SET MERGE INTO USING INSERT TABLE IF EXISTS CREATE DESCRIBE SHOW "
    "EXPLAIN GRANT RECURSIVE LATERAL DISTINCT TRUE VALUES"
)
_FUZZ_PIECES = [
    *"'\"`-/*+.,;:?()=0123456789eExX \n\t\\{}",
    *_FUZZ_KEYWORDS.split(),
    "r'",
    "X'",
    "--",
    "/*",
    "*/",
    "::",
    ":p",
    "`a`",
    "é",
    "\x00",
    "\U0001f600",
]


def test_fuzz_never_raises() -> None:
    rnd = random.Random(20260830)
    for _ in range(3000):
        sql = "".join(rnd.choice(_FUZZ_PIECES) for _ in range(rnd.randint(0, 60)))
        for flag in (True, False):
            info = query_text._analyze(sql, flag, rnd.choice([1, 16, 2048]))
            assert info.summary is None or len(info.summary) <= 255
            assert info.text is None or 0 < len(info.text) <= 2048
    for _ in range(300):
        raw = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 400)))
        for text in (raw.decode("latin-1"), raw.decode("utf-8", "replace")):
            assert isinstance(query_text._analyze(text, True, 2048), QueryInfo)
            assert isinstance(analyze(text), QueryInfo)


def _literal(rnd: random.Random) -> str:
    quote = rnd.choice("'\"")
    body = "zzsecret"
    for _ in range(rnd.randint(0, 5)):
        piece = rnd.choice(["a", "zzsecret", quote, "\\", " ", ";", "--", "/*", "`", "'", '"'])
        if piece == quote:
            piece = rnd.choice([quote + quote, "\\" + quote])
        elif piece == "\\":
            piece = "\\\\"
        body += piece
    prefix = rnd.choice(["", "", "X", "DATE ", "r"])
    if prefix == "r":
        body = body.replace("\\", "").replace(quote, "")
    return f"{prefix}{quote}{body}{quote}"


def test_fuzz_literals_never_leak() -> None:
    rnd = random.Random(7)
    numbers = ["98765", "98765.4321", ".98765", "98765e10", "0x98765", "98765L", "98765BD"]
    words = "SELECT FROM t a.b `x` ( ) , = + ; IN SET k WHERE :: :p ? TRUE NULL"
    pieces = [
        *words.split(),
        " ",
        "\n",
        "-- zzsecret\n",
        "/* zzsecret */",
    ]
    for _ in range(5000):
        parts = []
        for _ in range(rnd.randint(1, 15)):
            r = rnd.random()
            if r < 0.25:
                parts.append(_literal(rnd))
            elif r < 0.4:
                sign = rnd.choice(["", "-", "+"])
                parts.append(f" {sign}{rnd.choice(numbers)}{rnd.choice([' ', ',', ')', ';'])}")
            else:
                parts.append(rnd.choice(pieces))
        sql = "".join(parts)
        text = sanitize(sql)
        assert "zzsecret" not in text, sql
        assert "98765" not in text, sql


def test_backtick_text_that_cannot_be_a_name_is_a_literal() -> None:
    probe = "DESCRIBE TABLE EXTENDED `main`.`default`.`SELECT * FROM t WHERE c = 'secret'`"
    info = analyze(probe)
    for value in (info.text, info.summary, info.target):
        assert value is None or "secret" not in value
    long_name = "`" + "x" * 200 + "`"
    assert analyze(f"SELECT * FROM {long_name}").summary == "SELECT"
    assert analyze("SELECT * FROM `my table`").summary == "SELECT `my table`"


# --------------------------------------------------------------------------- worst cases
#
# Linear work, checked without a clock: the lexer hands the text to one regular expression a
# window at a time, so counting the characters the pattern is given shows whether a character
# is lexed once or again and again; the summary pass reads tokens by index.


class _CountingPattern:
    """``query_text._PIECE``, counting the characters its calls are given (``match``: take)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.read = 0

    def findall(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> list[Any]:
        self.read += min(endpos, len(text)) - pos
        return self.pattern.findall(text, pos, endpos)

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        found = self.pattern.match(text, pos)
        self.read += (found.end() if found else len(text)) - pos
        return found


@pytest.fixture
def lexer(monkeypatch: pytest.MonkeyPatch) -> _CountingPattern:
    counting = _CountingPattern(query_text._PIECE)
    monkeypatch.setattr(query_text, "_PIECE", counting)
    return counting


_Tok = tuple[int, str]


class _CountingTokens(list[_Tok]):
    """Tokens that count how often they are read."""

    reads = 0

    @overload
    def __getitem__(self, index: SupportsIndex) -> _Tok: ...
    @overload
    def __getitem__(self, index: slice) -> list[_Tok]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> _Tok | list[_Tok]:
        self.reads += 1
        return super().__getitem__(index)


_WORST_TEXTS = {
    "comment openers": "SELECT 1 " + "/* " * 4000 + "*/",
    "nested comments": "SELECT 1 " + "/*" * 2000 + "*/" * 2000 + " FROM t",
    "comment star shared": "SELECT 1 " + "/*/ " * 2000 + "*/" * 2000,
    "escapes before a quote": "SELECT '" + "\\a" * 4000 + "'",
    "escapes in double quotes": 'SELECT "' + "\\a" * 4000 + '"',
    "escaped quotes": "SELECT '" + "\\'" * 4000 + "'",
    "doubled quotes": "SELECT '" + "'' " * 4000 + "'",
    "unclosed quotes": "SELECT " + "'" * 4001,
    "backticks": "SELECT " + "`a" * 4000,
    "doubled backticks": "SELECT `" + "x``" * 4000,
    "digits and dots": "SELECT " + "1." * 4000 + ".1" * 4000,
    "set value": "SET k = " + "'x' `y` " * 2000,
    "line comments": "SELECT 1 " + "-- x\n" * 4000,
    "comments nested four deep": "SELECT 1 " + "/* a /* b /* c /* d */ */ */ */ " * 300,
    "qualified name": "SELECT * FROM " + "a." * 4000 + "a",
    "pieces longer than a window": ("'" + "x" * 5000 + "' ") * 4,
    "unterminated backtick": "SELECT `" + "a" * 20000,
}


@pytest.mark.parametrize("sql", _WORST_TEXTS.values(), ids=list(_WORST_TEXTS))
def test_lexer_reads_each_character_a_bounded_number_of_times(
    sql: str, lexer: _CountingPattern
) -> None:
    query_text._tokenize(sql, True)
    assert lexer.read <= 3 * len(sql)


def test_dense_text_is_read_up_to_the_piece_limit(lexer: _CountingPattern) -> None:
    # Two pieces per two characters: only the start is read, as of a text past the scan limit,
    # so 64 KiB of it costs what an ordinary 64 KiB text does.
    sql = "SELECT * FROM t WHERE a IN (" + "1," * 30000 + "1) UNION SELECT * FROM u"
    assert len(sql) < 64 * 1024
    sanitized, tokens = query_text._tokenize(sql, True)
    assert len(tokens) <= 64 * 1024 // 8
    assert lexer.read < len(sql) // 2
    assert sanitized.startswith("SELECT * FROM t WHERE a IN (?,?,")
    assert "1" not in sanitized
    assert summarize(sql) == "SELECT t"


def test_ordinary_text_is_read_to_the_scan_limit() -> None:
    # Eight characters a piece: the FROM of a 60 KB generated select list is still read.
    sql = "SELECT " + ", ".join(f"t.column_{i:05d}" for i in range(3800)) + " FROM main.s.t"
    assert 60_000 < len(sql) < 64 * 1024
    assert summarize(sql) == "SELECT main.s.t"


_DEEP_TEXTS = {
    "open WITH lists": "WITH a (" * 2000,
    "nested WITH lists": "WITH a (" * 2000 + ")" * 2000 + " AS (SELECT 1) SELECT * FROM a",
    "WITH column lists": "WITH a (b, " * 2000,
    "nested queries": "SELECT * FROM (" * 2000 + "t" + ")" * 2000,
    "open brackets": "SELECT " + "(" * 4000,
    "qualified name": "SELECT * FROM " + "a." * 4000 + "a",
    "FROM list": "SELECT * FROM " + "a, " * 4000 + "a",
}


@pytest.mark.parametrize("sql", _DEEP_TEXTS.values(), ids=list(_DEEP_TEXTS))
def test_summary_reads_each_token_a_bounded_number_of_times(sql: str) -> None:
    tokens = _CountingTokens(query_text._tokenize(sql, False)[1])
    query_text._summarize_tokens(tokens)
    assert tokens.reads <= 5 * len(tokens)


def test_worst_case_texts_give_the_usual_results() -> None:
    # The input of the report: 60 KB of comment openers, one closer.
    assert sanitize("SELECT 1 " + "/* " * 20000 + "*/") == "SELECT ?"
    assert sanitize("SELECT 1 /* a /* b */ c */, 2 /* d") == "SELECT ? , ?"
    assert sanitize("SELECT /*/ 1 */ 2") == "SELECT  ?"
    assert sanitize("SELECT '" + "\\'" * 1000 + "', 'it''s', x") == "SELECT ?, ?, x"
    assert sanitize('SELECT "' + "\\a" * 1000 + '" AS c') == "SELECT ? AS c"
    name = "a." * 2000 + "a"
    info = analyze(f"SELECT * FROM {name}")
    assert (info.summary, info.target) == ("SELECT", name)  # longer than a summary: dropped
    # A column list still marks a CTE; a bracket holding anything but names does not.
    cte = analyze("WITH t (a, `b`) AS (SELECT * FROM x) SELECT * FROM t")
    assert cte.summary == "SELECT x SELECT"
    assert analyze("WITH a (" * 2000).summary is None
