"""Arrow types as the Databricks SQL Thrift server describes them.

DuckDB hands results over as Arrow. This module narrows them to the Arrow types a Databricks
warehouse sends, and names each column the way the Thrift schema, the JDBC metadata calls and
the driver's ``cursor.description`` expect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import ttypes

# The struct class of TTypeEntry.primitiveEntry: older connector releases generated it under
# another name (TTAllowedParameterValueEntry), so take it from the Thrift spec itself.
_PRIMITIVE_ENTRY: Any = ttypes.TTypeEntry.thrift_spec[1][3][0]


@dataclass(frozen=True)
class ColumnType:
    """How one result column is described to the client."""

    type_id: int
    sql_name: str
    jdbc_type: int
    column_size: int | None = None
    precision: int | None = None
    scale: int | None = None


# java.sql.Types codes, which the JDBC-shaped metadata results carry in DATA_TYPE.
_JDBC = {
    "BOOLEAN": 16,
    "TINYINT": -6,
    "SMALLINT": 5,
    "INT": 4,
    "BIGINT": -5,
    "FLOAT": 6,
    "DOUBLE": 8,
    "DECIMAL": 3,
    "STRING": 12,
    "BINARY": -2,
    "DATE": 91,
    "TIMESTAMP": 93,
    "TIMESTAMP_NTZ": 93,
    "ARRAY": 2003,
    "STRUCT": 2002,
    "MAP": 2000,
    "VOID": 0,
}

_SIZES = {
    "BOOLEAN": 1,
    "TINYINT": 3,
    "SMALLINT": 5,
    "INT": 10,
    "BIGINT": 19,
    "FLOAT": 7,
    "DOUBLE": 15,
    "STRING": 2147483647,
    "BINARY": 2147483647,
    "DATE": 10,
    "TIMESTAMP": 29,
    "TIMESTAMP_NTZ": 29,
}

_SIMPLE: list[tuple[Any, str, int]] = [
    (pa.bool_(), "BOOLEAN", ttypes.TTypeId.BOOLEAN_TYPE),
    (pa.int8(), "TINYINT", ttypes.TTypeId.TINYINT_TYPE),
    (pa.int16(), "SMALLINT", ttypes.TTypeId.SMALLINT_TYPE),
    (pa.int32(), "INT", ttypes.TTypeId.INT_TYPE),
    (pa.int64(), "BIGINT", ttypes.TTypeId.BIGINT_TYPE),
    (pa.float32(), "FLOAT", ttypes.TTypeId.FLOAT_TYPE),
    (pa.float64(), "DOUBLE", ttypes.TTypeId.DOUBLE_TYPE),
    (pa.string(), "STRING", ttypes.TTypeId.STRING_TYPE),
    (pa.binary(), "BINARY", ttypes.TTypeId.BINARY_TYPE),
    (pa.date32(), "DATE", ttypes.TTypeId.DATE_TYPE),
    (pa.null(), "VOID", ttypes.TTypeId.NULL_TYPE),
]


def _sql_name(arrow_type: Any) -> str:
    for candidate, name, _ in _SIMPLE:
        if arrow_type == candidate:
            return name
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP" if arrow_type.tz else "TIMESTAMP_NTZ"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_map(arrow_type):
        return f"MAP<{_sql_name(arrow_type.key_type)},{_sql_name(arrow_type.item_type)}>"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"ARRAY<{_sql_name(arrow_type.value_type)}>"
    if pa.types.is_struct(arrow_type):
        fields = ",".join(
            f"{arrow_type.field(i).name}:{_sql_name(arrow_type.field(i).type)}"
            for i in range(arrow_type.num_fields)
        )
        return f"STRUCT<{fields}>"
    return "STRING"


def column_type(arrow_type: Any) -> ColumnType:
    """Describe a (normalized) Arrow type as a Databricks column type."""
    for candidate, name, type_id in _SIMPLE:
        if arrow_type == candidate:
            return ColumnType(type_id, name, _JDBC[name], _SIZES.get(name))
    if pa.types.is_timestamp(arrow_type):
        name = _sql_name(arrow_type)
        return ColumnType(ttypes.TTypeId.TIMESTAMP_TYPE, name, _JDBC[name], _SIZES[name])
    if pa.types.is_decimal(arrow_type):
        return ColumnType(
            ttypes.TTypeId.DECIMAL_TYPE,
            _sql_name(arrow_type),
            _JDBC["DECIMAL"],
            arrow_type.precision,
            arrow_type.precision,
            arrow_type.scale,
        )
    if pa.types.is_map(arrow_type):
        return ColumnType(ttypes.TTypeId.MAP_TYPE, _sql_name(arrow_type), _JDBC["MAP"])
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return ColumnType(ttypes.TTypeId.ARRAY_TYPE, _sql_name(arrow_type), _JDBC["ARRAY"])
    if pa.types.is_struct(arrow_type):
        return ColumnType(ttypes.TTypeId.STRUCT_TYPE, _sql_name(arrow_type), _JDBC["STRUCT"])
    return ColumnType(ttypes.TTypeId.STRING_TYPE, "STRING", _JDBC["STRING"], _SIZES["STRING"])


def _normal_type(arrow_type: Any) -> Any:
    """The Arrow type a Databricks warehouse would send for ``arrow_type``, or None for text."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        return _normal_type(t.value_type)
    if any(t == candidate for candidate, _, _ in _SIMPLE):
        return t
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if (
        pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return pa.binary()
    if t == pa.uint8():
        return pa.int16()
    if t == pa.uint16():
        return pa.int32()
    if t == pa.uint32():
        return pa.int64()
    if t == pa.uint64():
        return pa.decimal128(20, 0)
    if t == pa.float16():
        return pa.float32()
    if t == pa.date64():
        return pa.date32()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_decimal(t):
        return pa.decimal128(t.precision, t.scale) if t.precision <= 38 else None
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _normal_type(t.value_type)
        return None if inner is None else pa.list_(inner)
    if pa.types.is_map(t):
        key, item = _normal_type(t.key_type), _normal_type(t.item_type)
        return None if key is None or item is None else pa.map_(key, item)
    if pa.types.is_struct(t):
        fields = []
        for i in range(t.num_fields):
            inner = _normal_type(t.field(i).type)
            if inner is None:
                return None
            fields.append(pa.field(t.field(i).name, inner))
        return pa.struct(fields)
    return None


def _as_text(column: Any) -> Any:
    values = column.to_pylist()
    return pa.array(
        [
            None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
            for v in values
        ],
        type=pa.string(),
    )


def _is_complex(arrow_type: Any) -> bool:
    return bool(
        pa.types.is_list(arrow_type)
        or pa.types.is_map(arrow_type)
        or pa.types.is_struct(arrow_type)
    )


def normalize_table(table: Any) -> Any:
    """Cast a DuckDB Arrow table to the Arrow types a Databricks warehouse sends."""
    columns = []
    fields = []
    for i, original in enumerate(table.itercolumns()):
        field = table.schema.field(i)
        target = _normal_type(field.type)
        column = original
        if target is None:
            column = _as_text(original)
            target = pa.string()
        elif target != field.type:
            column = original.cast(target)
        columns.append(column)
        fields.append(pa.field(field.name, target))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def to_transport(
    table: Any, *, decimals: bool = True, timestamps: bool = True, complex_types: bool = True
) -> Any:
    """Turn the types the client cannot take natively in Arrow into strings.

    The flags mirror ``TSparkArrowTypes`` of the request: a client that does not want Arrow
    decimals, timestamps or nested types gets their text form in a string column, while the
    Thrift schema keeps the real type.
    """
    if decimals and timestamps and complex_types:
        return table
    columns = []
    fields = []
    for i, original in enumerate(table.itercolumns()):
        field = table.schema.field(i)
        column = original
        if (not decimals and pa.types.is_decimal(field.type)) or (
            not timestamps and pa.types.is_timestamp(field.type)
        ):
            column = original.cast(pa.string())
        elif not complex_types and _is_complex(field.type):
            column = _as_text(original)
        columns.append(column)
        fields.append(pa.field(field.name, column.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def table_schema(schema: Any) -> ttypes.TTableSchema:
    """The Thrift ``TTableSchema`` of a normalized Arrow schema."""
    columns = []
    for position, field in enumerate(schema, start=1):
        ct = column_type(field.type)
        qualifiers = None
        if ct.type_id == ttypes.TTypeId.DECIMAL_TYPE:
            qualifiers = ttypes.TTypeQualifiers(
                qualifiers={
                    "precision": ttypes.TTypeQualifierValue(i32Value=ct.precision),
                    "scale": ttypes.TTypeQualifierValue(i32Value=ct.scale),
                }
            )
        entry = ttypes.TTypeEntry(
            primitiveEntry=_PRIMITIVE_ENTRY(type=ct.type_id, typeQualifiers=qualifiers)
        )
        columns.append(
            ttypes.TColumnDesc(
                columnName=field.name,
                typeDesc=ttypes.TTypeDesc(types=[entry]),
                position=position,
                comment="",
            )
        )
    return ttypes.TTableSchema(columns=columns)
