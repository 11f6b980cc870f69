"""The SQL engine behind the warehouse: one embedded DuckDB database per warehouse."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse.sqltypes import normalize_table
from opentelemetry_instrumentation_dbsql.testing.warehouse.translate import (
    MAIN_DUCK_CATALOG,
    Translated,
    TranslationCache,
    TranslationError,
    databricks_catalog,
    duck_catalog,
    quote,
)

Params = dict[str, Any] | list[Any] | None

_HIDDEN_SCHEMAS = frozenset({"main", "pg_catalog", "information_schema"})


class EngineError(Exception):
    """A statement failed; carries the SQLSTATE and Databricks error class to report."""

    def __init__(
        self, message: str, sqlstate: str, error_class: str, *, sqlstate_in_message: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.error_class = error_class
        self.sqlstate_in_message = sqlstate_in_message

    @property
    def display_message(self) -> str:
        """The message as a Databricks warehouse words it (the SQLSTATE suffix is optional:
        some server errors carry it in the status fields only)."""
        if not self.sqlstate_in_message:
            return f"[{self.error_class}] {self.message}"
        return f"[{self.error_class}] {self.message} SQLSTATE: {self.sqlstate}"


# DuckDB exception class -> (SQLSTATE, Databricks error class); refined by message below.
_ERROR_MAP: list[tuple[type[BaseException], str, str]] = [
    (duckdb.CatalogException, "42P01", "TABLE_OR_VIEW_NOT_FOUND"),
    (duckdb.ParserException, "42601", "PARSE_SYNTAX_ERROR"),
    (duckdb.BinderException, "42703", "UNRESOLVED_COLUMN"),
    (duckdb.ConstraintException, "23000", "CONSTRAINT_VIOLATION"),
    (duckdb.ConversionException, "22018", "CAST_INVALID_INPUT"),
    (duckdb.OutOfRangeException, "22003", "ARITHMETIC_OVERFLOW"),
    (duckdb.InvalidInputException, "22023", "INVALID_PARAMETER_VALUE"),
    (duckdb.NotImplementedException, "0A000", "UNSUPPORTED_FEATURE"),
    (duckdb.TransactionException, "25000", "INVALID_TRANSACTION_STATE"),
    (duckdb.InterruptException, "57014", "OPERATION_CANCELED"),
    (duckdb.PermissionException, "42501", "INSUFFICIENT_PERMISSIONS"),
]
_REFINE: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"already exists", re.I), "42P07", "TABLE_OR_VIEW_ALREADY_EXISTS"),
    (re.compile(r"Schema with name", re.I), "42704", "SCHEMA_NOT_FOUND"),
    (re.compile(r"Catalog with name", re.I), "42704", "CATALOG_NOT_FOUND"),
    (re.compile(r"Function with name", re.I), "42883", "UNRESOLVED_ROUTINE"),
]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def engine_error(error: BaseException) -> EngineError:
    """Map a DuckDB (or translation) failure to the error a Databricks warehouse reports."""
    message = _ANSI.sub("", str(error)).strip()
    if isinstance(error, TranslationError):
        return EngineError(message, "42601", "PARSE_SYNTAX_ERROR")
    sqlstate, error_class = "XX000", "INTERNAL_ERROR"
    for cls, state, name in _ERROR_MAP:
        if isinstance(error, cls):
            sqlstate, error_class = state, name
            break
    if isinstance(error, (duckdb.CatalogException, duckdb.BinderException)):
        for pattern, state, name in _REFINE:
            if pattern.search(message):
                sqlstate, error_class = state, name
                break
    return EngineError(message, sqlstate, error_class)


@dataclass(frozen=True)
class StatementResult:
    """What one executed statement produced."""

    table: Any
    """A normalized pyarrow Table; zero columns for statements without a result."""
    modified_rows: int | None = None
    kind: str = "query"


_EMPTY = pa.table({})
_NULL_TYPE_LOST = int(duckdb.__version__.split(".", 1)[0]) < 2


class Engine:
    """One in-memory DuckDB database and the Databricks catalogs mapped onto it."""

    def __init__(self) -> None:
        self._db = duckdb.connect(":memory:")
        self._lock = threading.RLock()
        self._translations = TranslationCache()
        self._closed = False
        self.ensure_namespace("main", "default")
        self._root = EngineSession(self, self._db.cursor(), "main", "default")
        self._root.use("main", "default", check=False)

    @property
    def translations(self) -> TranslationCache:
        """The shared translation cache (its ``misses`` count parses)."""
        return self._translations

    def _run_root(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            relation = self._db.sql(sql)
            return [] if relation is None else list(relation.fetchall())

    def ensure_namespace(self, catalog: str | None, schema: str | None) -> None:
        """Create the catalog and schema if they do not exist yet."""
        with self._lock:
            if catalog is not None:
                duck = duck_catalog(catalog)
                if duck != MAIN_DUCK_CATALOG:
                    self._run_root(f"ATTACH IF NOT EXISTS ':memory:' AS {quote(duck)}")
                self._run_root(f'CREATE SCHEMA IF NOT EXISTS {quote(duck)}."default"')
            if schema is not None:
                duck = duck_catalog(catalog or "main")
                self._run_root(f"CREATE SCHEMA IF NOT EXISTS {quote(duck)}.{quote(schema)}")

    def drop_catalog(self, catalog: str, if_exists: bool) -> None:
        """Detach a catalog; ``main`` cannot be dropped."""
        duck = duck_catalog(catalog)
        if duck == MAIN_DUCK_CATALOG:
            raise EngineError("Cannot drop the catalog main.", "42000", "INVALID_CATALOG_OPERATION")
        if catalog.lower() not in self.catalogs():
            if if_exists:
                return
            raise EngineError(f"Catalog '{catalog}' was not found.", "42704", "CATALOG_NOT_FOUND")
        self._run_root(f"DETACH {quote(duck)}")

    def open_session(self, catalog: str | None, schema: str | None) -> EngineSession:
        """A DuckDB cursor for one Thrift session, in the given namespace."""
        catalog = catalog or "main"
        schema = schema or "default"
        self.ensure_namespace(catalog, schema)
        with self._lock:
            cursor = self._db.cursor()
        session = EngineSession(self, cursor, catalog, schema)
        session.use(catalog, schema, check=False)
        return session

    def execute_sql(self, sql: str, params: Params = None) -> StatementResult:
        """Run Databricks SQL in ``main.default`` outside any Thrift session."""
        with self._lock:
            return self._root.execute(sql, params)

    def catalogs(self) -> list[str]:
        """The Databricks catalog names, sorted."""
        rows = self._run_root("SELECT database_name FROM duckdb_databases()")
        names = [databricks_catalog(str(r[0])) for r in rows]
        return sorted(n for n in names if n is not None)

    def schemas(self) -> list[tuple[str, str]]:
        """(catalog, schema) pairs, sorted."""
        rows = self._run_root("SELECT database_name, schema_name FROM duckdb_schemas()")
        out = []
        for duck, schema in rows:
            catalog = databricks_catalog(str(duck))
            if catalog is not None and schema not in _HIDDEN_SCHEMAS:
                out.append((catalog, str(schema)))
        return sorted(out)

    def tables(self) -> list[tuple[str, str, str, str, str]]:
        """(catalog, schema, table, table type, comment) for every table and view."""
        rows = self._run_root(
            "SELECT database_name, schema_name, table_name, 'TABLE', coalesce(comment, '') "
            "FROM duckdb_tables() WHERE NOT internal AND NOT temporary "
            "UNION ALL SELECT database_name, schema_name, view_name, 'VIEW', "
            "coalesce(comment, '') FROM duckdb_views() WHERE NOT internal AND NOT temporary"
        )
        out = []
        for duck, schema, table, kind, comment in rows:
            catalog = databricks_catalog(str(duck))
            if catalog is not None and schema not in _HIDDEN_SCHEMAS:
                out.append((catalog, str(schema), str(table), str(kind), str(comment)))
        return sorted(out)

    def table_arrow_schema(self, catalog: str, schema: str, table: str) -> Any:
        """The normalized Arrow schema of a table's rows."""
        name = f"{quote(duck_catalog(catalog))}.{quote(schema)}.{quote(table)}"
        with self._lock:
            relation = self._db.sql(f"SELECT * FROM {name} LIMIT 0")
            arrow = relation.to_arrow_table() if relation is not None else _EMPTY
        return normalize_table(arrow).schema

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()


class EngineSession:
    """A DuckDB cursor with a current Databricks catalog and schema."""

    def __init__(self, engine: Engine, cursor: Any, catalog: str, schema: str) -> None:
        self._engine = engine
        self._cursor = cursor
        self._lock = threading.RLock()
        self.catalog = catalog
        self.schema = schema
        self._cursor.sql("SET TimeZone = 'UTC'")

    def use(self, catalog: str | None, schema: str | None, check: bool = True) -> None:
        """Switch the current namespace (``USE CATALOG`` / ``USE SCHEMA``)."""
        with self._lock:
            new_catalog = catalog or self.catalog
            new_schema = schema or ("default" if catalog else self.schema)
            if not check:
                pass
            elif catalog is not None and catalog.lower() not in self._engine.catalogs():
                raise EngineError(
                    f"Catalog '{catalog}' was not found.", "42704", "CATALOG_NOT_FOUND"
                )
            elif check and (new_catalog.lower(), new_schema) not in set(self._engine.schemas()):
                raise EngineError(
                    f"The schema `{new_catalog}`.`{new_schema}` cannot be found.",
                    "42704",
                    "SCHEMA_NOT_FOUND",
                )
            self._cursor.sql(f"USE {quote(duck_catalog(new_catalog))}.{quote(new_schema)}")
            self.catalog, self.schema = new_catalog, new_schema

    def execute(self, sql: str, params: Params = None) -> StatementResult:
        """Run Databricks SQL; raises :class:`EngineError` the way the warehouse reports it."""
        with self._lock:
            try:
                statements = self._engine.translations.get(sql)
                result = StatementResult(_EMPTY, None, "ddl")
                for statement in statements:
                    result = self._run(statement, params)
                return result
            except EngineError:
                raise
            except (duckdb.Error, TranslationError) as error:
                raise engine_error(error) from error

    def _run(self, statement: Translated, params: Params) -> StatementResult:
        if statement.kind == "use":
            self.use(statement.use_catalog, statement.use_schema)
            return StatementResult(_EMPTY, None, "ddl")
        if statement.kind == "catalog":
            name = statement.catalog_name or ""
            if statement.catalog_verb == "CREATE":
                if name.lower() in self._engine.catalogs() and not statement.if_clause:
                    raise EngineError(
                        f"Catalog '{name}' already exists.", "42P04", "CATALOG_ALREADY_EXISTS"
                    )
                self._engine.ensure_namespace(name, None)
            else:
                self._engine.drop_catalog(name, statement.if_clause)
            return StatementResult(_EMPTY, None, "ddl")
        if statement.kind == "dml":
            # execute(), not sql(): DuckDB 1.x runs DML given to sql() at once and returns no
            # relation, so the count row is only readable from the cursor.
            rows = self._cursor.execute(statement.sql, params or None).fetchall()
            count = int(rows[0][0]) if rows else 0
            columns = {"num_affected_rows": pa.array([count], pa.int64())}
            if statement.dml == "insert":
                columns["num_inserted_rows"] = pa.array([count], pa.int64())
            return StatementResult(pa.table(columns), count, "dml")
        relation = (
            self._cursor.sql(statement.sql, params=params)
            if params
            else self._cursor.sql(statement.sql)
        )
        if relation is None or statement.kind == "ddl":
            if relation is not None:
                relation.fetchall()
            return StatementResult(_EMPTY, None, "ddl")
        table = relation.to_arrow_table()
        if _NULL_TYPE_LOST:
            table = self._restore_void_columns(table, statement.sql, params)
        return StatementResult(normalize_table(table), None, "query")

    def _restore_void_columns(self, table: Any, sql: str, params: Params) -> Any:
        """DuckDB 1.x hands a column of bare ``NULL`` over as INTEGER, where a warehouse (and
        DuckDB 2.x) reports VOID; ``typeof`` over the query still tells them apart."""
        rows = table.num_rows
        suspects = [
            i
            for i, field in enumerate(table.schema)
            if pa.types.is_int32(field.type) and rows and table.column(i).null_count == rows
        ]
        if not suspects:
            return table
        try:
            probe = f"SELECT typeof(COLUMNS(*)) FROM ({sql}) LIMIT 1"
            types = self._cursor.execute(probe, params or None).fetchone()
        except duckdb.Error:
            return table
        for i in suspects:
            if types is not None and len(types) == table.num_columns and types[i] == '"NULL"':
                table = table.set_column(i, table.field(i).with_type(pa.null()), pa.nulls(rows))
        return table

    def interrupt(self) -> None:
        """Ask DuckDB to stop the statement running on this cursor."""
        self._cursor.interrupt()

    def close(self) -> None:
        """Release the cursor."""
        with self._lock:
            self._cursor.close()
