"""Databricks SQL to DuckDB SQL, with the catalog mapping of this warehouse.

Catalog mapping: DuckDB cannot attach a database named ``main`` next to the ``main`` schema
every DuckDB database has (two-part names would become ambiguous), so the Databricks catalog
``main`` is DuckDB's own default database ``memory``. Other Databricks catalogs are attached
in-memory databases of the same name, except the names DuckDB reserves (``memory``,
``system``, ``temp``) and names starting with ``dbx_``, which get a ``dbx_`` prefix. Only
three-part names carry a catalog, so only those are rewritten; two-part names
(``schema.table``) resolve against the session's current catalog as in Databricks.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

MAIN_DUCK_CATALOG = "memory"
_RESERVED = frozenset({"memory", "system", "temp"})
_PREFIX = "dbx_"

# Statements sqlglot would only parse as an opaque command (with a warning): passed through.
_PASSTHROUGH = re.compile(r"^\s*(SHOW|EXPLAIN|DESCRIBE|DESC|PRAGMA|CALL|CHECKPOINT)\b", re.I)
_CATALOG_DDL = re.compile(
    r"^\s*(?P<verb>CREATE|DROP)\s+CATALOG\s+(?P<cond>IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"(?P<name>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s*(?:CASCADE\s*)?;?\s*$",
    re.I,
)


def duck_catalog(name: str) -> str:
    """The DuckDB database that holds Databricks catalog ``name``."""
    lower = name.lower()
    if lower == "main":
        return MAIN_DUCK_CATALOG
    if lower in _RESERVED or lower.startswith(_PREFIX):
        return _PREFIX + lower
    return lower


def databricks_catalog(duck_name: str) -> str | None:
    """The Databricks catalog a DuckDB database stands for; None for DuckDB's own."""
    if duck_name == MAIN_DUCK_CATALOG:
        return "main"
    if duck_name in _RESERVED:
        return None
    if duck_name.startswith(_PREFIX):
        return duck_name[len(_PREFIX) :]
    return duck_name


def quote(identifier: str) -> str:
    """A DuckDB quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class Translated:
    """One statement ready for DuckDB, with what the warehouse must know about it."""

    sql: str
    kind: str
    """``query``, ``dml``, ``ddl``, ``use`` or ``catalog``."""
    dml: str | None = None
    """``insert``, ``update``, ``delete`` or ``merge`` for DML."""
    use_catalog: str | None = None
    use_schema: str | None = None
    catalog_verb: str | None = None
    catalog_name: str | None = None
    if_clause: bool = False


class TranslationError(Exception):
    """sqlglot could not parse the statement."""


def _catalog_of_current() -> Any:
    current = "current_database()"
    text = (
        f"CASE WHEN {current} = '{MAIN_DUCK_CATALOG}' THEN 'main' "
        f"WHEN starts_with({current}, '{_PREFIX}') THEN substr({current}, {len(_PREFIX) + 1}) "
        f"ELSE {current} END"
    )
    return sqlglot.parse_one(text, read="duckdb")


def _rewrite(node: Any) -> Any:
    if isinstance(node, (exp.Table, exp.Column)):
        catalog = node.args.get("catalog")
        if isinstance(catalog, exp.Identifier):
            node.set("catalog", exp.to_identifier(duck_catalog(catalog.name), quoted=True))
        return node
    if isinstance(node, exp.CurrentCatalog):
        replacement = _catalog_of_current()
        if isinstance(node.parent, exp.Select):
            return exp.alias_(replacement, "current_catalog()", quoted=True)
        return replacement
    if isinstance(node, exp.CurrentDatabase):
        return exp.CurrentSchema()
    return node


def _use(statement: exp.Use) -> Translated:
    raw = statement.args.get("kind")
    kind = (raw.name if isinstance(raw, exp.Expression) else str(raw or "")).upper()
    target = statement.this
    if not isinstance(target, exp.Table):
        raise TranslationError("USE needs a name")
    parts = [p.name for p in target.parts]
    if kind == "CATALOG":
        return Translated("", "use", use_catalog=parts[-1])
    if len(parts) >= 2:
        return Translated("", "use", use_catalog=parts[-2], use_schema=parts[-1])
    return Translated("", "use", use_schema=parts[-1])


def _schema_ddl(statement: Any) -> None:
    """``CREATE DATABASE x`` is a schema in Databricks; DuckDB only knows ``SCHEMA``."""
    kind = statement.args.get("kind")
    if not isinstance(kind, str) or kind.upper() not in {"DATABASE", "SCHEMA"}:
        return
    statement.set("kind", "SCHEMA")
    target = statement.this
    if isinstance(target, exp.Table) and target.args.get("db") is None:
        # A one-part schema name arrives as the table slot; move it to the schema slot.
        target.set("db", target.this)
        target.set("this", None)


def _translate_one(statement: Any) -> Translated:
    if isinstance(statement, exp.Use):
        return _use(statement)
    if isinstance(statement, (exp.Create, exp.Drop)):
        _schema_ddl(statement)
    statement = statement.transform(_rewrite)
    sql = statement.sql(dialect="duckdb")
    if isinstance(statement, (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)):
        return Translated(sql, "query")
    if isinstance(statement, exp.Insert):
        return Translated(sql, "dml", dml="insert")
    if isinstance(statement, exp.Update):
        return Translated(sql, "dml", dml="update")
    if isinstance(statement, exp.Delete):
        return Translated(sql, "dml", dml="delete")
    if isinstance(statement, exp.Merge):
        return Translated(sql, "dml", dml="merge")
    if isinstance(statement, (exp.Describe, exp.Command, exp.Pragma)):
        return Translated(sql, "query")
    return Translated(sql, "ddl")


def translate(sql: str) -> tuple[Translated, ...]:
    """Translate Databricks SQL text (one or more statements) for DuckDB."""
    match = _CATALOG_DDL.match(sql)
    if match:
        return (
            Translated(
                "",
                "catalog",
                catalog_verb=match.group("verb").upper(),
                catalog_name=match.group("name").strip("`"),
                if_clause=bool(match.group("cond")),
            ),
        )
    if _PASSTHROUGH.match(sql):
        return (Translated(sql.strip().rstrip(";"), "query"),)
    try:
        parsed = sqlglot.parse(sql, read="databricks")
    except sqlglot.errors.SqlglotError as error:
        raise TranslationError(str(error)) from error
    statements = tuple(_translate_one(s) for s in parsed if s is not None)
    if not statements:
        raise TranslationError("empty statement")
    return statements


class TranslationCache:
    """Bounded, thread-safe memo of :func:`translate` by statement text."""

    def __init__(self, capacity: int = 2048) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[Translated, ...] | TranslationError] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0

    def get(self, sql: str) -> tuple[Translated, ...]:
        """Translate ``sql``, parsing it only the first time it is seen."""
        with self._lock:
            entry = self._entries.get(sql)
            if entry is not None:
                self._entries.move_to_end(sql)
        if entry is None:
            try:
                entry = translate(sql)
            except TranslationError as error:
                entry = error
            with self._lock:
                self.misses += 1
                self._entries[sql] = entry
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        if isinstance(entry, TranslationError):
            raise entry
        return entry
