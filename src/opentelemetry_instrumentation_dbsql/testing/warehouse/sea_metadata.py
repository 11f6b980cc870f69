"""The SHOW commands REST clients send for metadata calls, answered from the engine's catalog.

Over the Statement Execution API there are no metadata RPCs: the driver's ``catalogs()``,
``schemas()``, ``tables()`` and ``columns()`` run SQL such as ``SHOW TABLES IN CATALOG main
SCHEMA LIKE 'default' LIKE 'o%'``. The results use the column names Databricks warehouses
give these commands (``catalog``; ``databaseName``; ``catalogName``, ``namespace``,
``tableName``, ... with the table type at index 5; ``col_name``, ``columnType``, ...).
Other SQL, including Spark's own ``SHOW TABLES IN main.default``, is not handled here.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse import metadata
from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import Engine, EngineError

_NAME = r"`(?:[^`]|``)+`|[^\s`']+"
_TEXT = r"'((?:[^']|'')*)'"
_COMMAND = re.compile(
    rf"""^\s*SHOW\s+(?P<what>CATALOGS|SCHEMAS|TABLES|COLUMNS)
    (?:\s+IN\s+(?:(?P<all>ALL\s+CATALOGS)|CATALOG\s+(?P<catalog>{_NAME})|(?P<bare>{_NAME})))?
    (?:\s+SCHEMA\s+LIKE\s+{_TEXT})?
    (?:\s+TABLE\s+LIKE\s+{_TEXT})?
    (?:\s+LIKE\s+{_TEXT})?
    \s*;?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def _name(text: str | None) -> str | None:
    if text is None:
        return None
    if text.startswith("`"):
        return text[1:-1].replace("``", "`")
    return text


def _like(text: str | None) -> str | None:
    return None if text is None else text.replace("''", "'")


def answer(engine: Engine, sql: str) -> Any | None:
    """The result table of a metadata SHOW command, or None when ``sql`` is not one."""
    match = _COMMAND.match(sql)
    if match is None:
        return None
    what = match["what"].upper()
    every = match["all"] is not None
    catalog = _name(match["catalog"])
    bare = _name(match["bare"])
    schema_like, table_like, like = (_like(match.group(i)) for i in (5, 6, 7))
    if what == "CATALOGS":
        if every or catalog or bare or schema_like or table_like:
            return None
        return _catalogs(engine, like)
    if what == "SCHEMAS":
        if catalog or schema_like or table_like or not (every or bare):
            return None
        return _schemas(engine, None if every else bare, like, with_catalog=every)
    if bare is not None or not (every or catalog):
        return None  # Spark's SHOW TABLES IN db / SHOW COLUMNS IN table: not metadata calls
    if what == "TABLES":
        return _tables(engine, catalog, schema_like, like)
    return _columns(engine, catalog, schema_like, table_like, like)


def _strings(**columns: list[Any]) -> Any:
    return pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})


def _known(engine: Engine, catalog: str | None) -> None:
    if catalog is not None and catalog.lower() not in engine.catalogs():
        raise EngineError(
            f"Catalog '{catalog}' was not found.", "42704", "NO_SUCH_CATALOG_EXCEPTION"
        )


def _catalogs(engine: Engine, like: str | None) -> Any:
    regex = metadata.pattern(like)
    names = [c for c in engine.catalogs() if regex is None or regex.fullmatch(c)]
    return _strings(catalog=names)


def _schemas(engine: Engine, catalog: str | None, like: str | None, with_catalog: bool) -> Any:
    _known(engine, catalog)
    table = metadata.schemas(engine, catalog, like)
    names = table.column("TABLE_SCHEM").to_pylist()
    if not with_catalog:
        return _strings(databaseName=names)
    return _strings(databaseName=names, catalog=table.column("TABLE_CATALOG").to_pylist())


def _tables(engine: Engine, catalog: str | None, schema_like: str | None, like: str | None) -> Any:
    _known(engine, catalog)
    found = metadata.tables(engine, catalog, schema_like, like, None)
    rows = found.num_rows
    return pa.table(
        {
            "catalogName": found.column("TABLE_CAT"),
            "namespace": found.column("TABLE_SCHEM"),
            "tableName": found.column("TABLE_NAME"),
            "isTemporary": pa.array([False] * rows, pa.bool_()),
            "information": pa.array([None] * rows, pa.string()),
            "tableType": found.column("TABLE_TYPE"),
            "remarks": found.column("REMARKS"),
        }
    )


def _columns(
    engine: Engine,
    catalog: str | None,
    schema_like: str | None,
    table_like: str | None,
    like: str | None,
) -> Any:
    _known(engine, catalog)
    found = metadata.columns(engine, catalog, schema_like, table_like, like)
    rows = found.num_rows
    nullable = ["true" if v == "YES" else "false" for v in found.column("IS_NULLABLE").to_pylist()]
    return pa.table(
        {
            "col_name": found.column("COLUMN_NAME"),
            "catalogName": found.column("TABLE_CAT"),
            "namespace": found.column("TABLE_SCHEM"),
            "tableName": found.column("TABLE_NAME"),
            "columnType": found.column("TYPE_NAME"),
            "columnSize": found.column("COLUMN_SIZE"),
            "decimalDigits": found.column("DECIMAL_DIGITS"),
            "radix": found.column("NUM_PREC_RADIX"),
            "isNullable": pa.array(nullable, pa.string()),
            "remarks": found.column("REMARKS"),
            "ordinalPosition": found.column("ORDINAL_POSITION"),
            "isAutoIncrement": found.column("IS_AUTO_INCREMENT"),
            "isGenerated": pa.array(["NO"] * rows, pa.string()),
        }
    )
