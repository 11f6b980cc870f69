"""Results of the metadata RPCs, in the column layout JDBC (and the driver) expects."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse.engine import Engine
from opentelemetry_instrumentation_dbsql.testing.warehouse.sqltypes import column_type


def pattern(text: str | None) -> re.Pattern[str] | None:
    """A JDBC search pattern (``%`` any run, ``_`` one character, ``\\`` escapes) as a regex.

    ``*`` is accepted as a synonym of ``%``, as Databricks does. None or ``%`` match anything.
    """
    if text is None or text in {"%", "*", ""}:
        return None
    out = []
    escaped = False
    for ch in text:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "%*":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _ok(regex: re.Pattern[str] | None, value: str) -> bool:
    return regex is None or regex.fullmatch(value) is not None


def _strings(**columns: list[Any]) -> Any:
    return pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})


def catalogs(engine: Engine) -> Any:
    """GetCatalogs: ``TABLE_CAT``."""
    return _strings(TABLE_CAT=engine.catalogs())


def schemas(engine: Engine, catalog: str | None, schema: str | None) -> Any:
    """GetSchemas: ``TABLE_SCHEM``, ``TABLE_CATALOG``."""
    c, s = pattern(catalog), pattern(schema)
    rows = [(sc, cat) for cat, sc in engine.schemas() if _ok(c, cat) and _ok(s, sc)]
    return _strings(TABLE_SCHEM=[r[0] for r in rows], TABLE_CATALOG=[r[1] for r in rows])


def tables(
    engine: Engine,
    catalog: str | None,
    schema: str | None,
    table: str | None,
    table_types: list[str] | None,
) -> Any:
    """GetTables: the ten JDBC ``getTables`` columns."""
    c, s, t = pattern(catalog), pattern(schema), pattern(table)
    wanted = {x.upper() for x in table_types} if table_types else None
    rows = [
        r
        for r in engine.tables()
        if _ok(c, r[0]) and _ok(s, r[1]) and _ok(t, r[2]) and (wanted is None or r[3] in wanted)
    ]
    none: list[Any] = [None] * len(rows)
    return _strings(
        TABLE_CAT=[r[0] for r in rows],
        TABLE_SCHEM=[r[1] for r in rows],
        TABLE_NAME=[r[2] for r in rows],
        TABLE_TYPE=[r[3] for r in rows],
        REMARKS=[r[4] for r in rows],
        TYPE_CAT=none,
        TYPE_SCHEM=none,
        TYPE_NAME=none,
        SELF_REFERENCING_COL_NAME=none,
        REF_GENERATION=none,
    )


_COLUMN_FIELDS = [
    ("TABLE_CAT", pa.string()),
    ("TABLE_SCHEM", pa.string()),
    ("TABLE_NAME", pa.string()),
    ("COLUMN_NAME", pa.string()),
    ("DATA_TYPE", pa.int32()),
    ("TYPE_NAME", pa.string()),
    ("COLUMN_SIZE", pa.int32()),
    ("BUFFER_LENGTH", pa.int8()),
    ("DECIMAL_DIGITS", pa.int32()),
    ("NUM_PREC_RADIX", pa.int32()),
    ("NULLABLE", pa.int32()),
    ("REMARKS", pa.string()),
    ("COLUMN_DEF", pa.string()),
    ("SQL_DATA_TYPE", pa.int32()),
    ("SQL_DATETIME_SUB", pa.int32()),
    ("CHAR_OCTET_LENGTH", pa.int32()),
    ("ORDINAL_POSITION", pa.int32()),
    ("IS_NULLABLE", pa.string()),
    ("SCOPE_CATALOG", pa.string()),
    ("SCOPE_SCHEMA", pa.string()),
    ("SCOPE_TABLE", pa.string()),
    ("SOURCE_DATA_TYPE", pa.int16()),
    ("IS_AUTO_INCREMENT", pa.string()),
]


def columns(
    engine: Engine,
    catalog: str | None,
    schema: str | None,
    table: str | None,
    column: str | None,
) -> Any:
    """GetColumns: the 23 JDBC ``getColumns`` columns."""
    c, s, t, col = pattern(catalog), pattern(schema), pattern(table), pattern(column)
    rows: list[list[Any]] = []
    for cat, sch, name, _, _ in engine.tables():
        if not (_ok(c, cat) and _ok(s, sch) and _ok(t, name)):
            continue
        for position, field in enumerate(engine.table_arrow_schema(cat, sch, name)):
            if not _ok(col, field.name):
                continue
            ct = column_type(field.type)
            numeric = ct.jdbc_type in {-6, 5, 4, -5, 6, 8, 3}
            rows.append(
                [
                    cat,
                    sch,
                    name,
                    field.name,
                    ct.jdbc_type,
                    ct.sql_name,
                    ct.column_size,
                    None,
                    ct.scale if ct.scale is not None else (0 if numeric else None),
                    10 if numeric else None,
                    1 if field.nullable else 0,
                    "",
                    None,
                    None,
                    None,
                    None,
                    position,
                    "YES" if field.nullable else "NO",
                    None,
                    None,
                    None,
                    None,
                    "NO",
                ]
            )
    arrays = [pa.array([r[i] for r in rows], type) for i, (_, type) in enumerate(_COLUMN_FIELDS)]
    return pa.Table.from_arrays(
        arrays, schema=pa.schema([pa.field(n, t) for n, t in _COLUMN_FIELDS])
    )
