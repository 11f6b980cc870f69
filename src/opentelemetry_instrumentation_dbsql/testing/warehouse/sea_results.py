"""A finished result as the Statement Execution API serves it: manifest, chunks and links.

The warehouse serves each result in one of the three forms named by ``results.FORMATS``:

* ``columnar``: ``format=JSON_ARRAY``, ``disposition=INLINE``: rows of JSON strings in
  ``data_array`` (binary as hex, nested types as JSON text, NULL as ``null``).
* ``arrow``: ``format=ARROW_STREAM``, ``disposition=INLINE``: one Arrow IPC stream per chunk,
  base64 in ``attachment``, LZ4-frame compressed when asked.
* ``cloudfetch``: ``format=ARROW_STREAM``, ``disposition=EXTERNAL_LINKS``: one link per chunk
  to a whole Arrow IPC stream, served by the same GET handler as Thrift CloudFetch files.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
from dataclasses import dataclass
from typing import Any

import lz4.frame
import pyarrow as pa

from opentelemetry_instrumentation_dbsql.testing.warehouse.records import ServedFile
from opentelemetry_instrumentation_dbsql.testing.warehouse.results import (
    ArrowOptions,
    CloudFile,
    FileStore,
    ResultStream,
    ipc_stream,
)
from opentelemetry_instrumentation_dbsql.testing.warehouse.sqltypes import column_type

JSON_ARRAY = "JSON_ARRAY"
ARROW_STREAM = "ARROW_STREAM"
INLINE = "INLINE"
EXTERNAL_LINKS = "EXTERNAL_LINKS"
HYBRID = "INLINE_OR_EXTERNAL_LINKS"
LZ4_FRAME = "LZ4_FRAME"

_REST_FORMATS = {"columnar": JSON_ARRAY, "arrow": ARROW_STREAM, "cloudfetch": ARROW_STREAM}

# The REST API's type names differ from the SQL names for these (TINYINT is BYTE, ...).
_TYPE_NAMES = {"TINYINT": "BYTE", "SMALLINT": "SHORT", "BIGINT": "LONG", "VOID": "NULL"}


@dataclass(frozen=True)
class ResultRequest:
    """How the client asked for results (``format``, ``disposition``, compression, limit)."""

    format: str = JSON_ARRAY
    disposition: str = INLINE
    lz4: bool = False
    row_limit: int | None = None


def served_form(request: ResultRequest, rows: int, cloudfetch_min_rows: int) -> str:
    """The form (a ``results.FORMATS`` name) that answers ``request`` for ``rows`` rows."""
    if request.format == JSON_ARRAY:
        return "columnar"
    if request.disposition == EXTERNAL_LINKS:
        return "cloudfetch"
    if request.disposition == HYBRID and rows > cloudfetch_min_rows:
        return "cloudfetch"
    return "arrow"


def _type_name(sql_name: str) -> str:
    base = sql_name.split("(", 1)[0].split("<", 1)[0]
    if base == "TIMESTAMP_NTZ":
        # The driver maps the type name to its description type code; Thrift says TIMESTAMP.
        return "TIMESTAMP"
    return _TYPE_NAMES.get(base, base)


def columns(schema: Any) -> list[dict[str, Any]]:
    """The manifest's ``schema.columns`` for a normalized Arrow schema."""
    out: list[dict[str, Any]] = []
    for position, field in enumerate(schema):
        ct = column_type(field.type)
        column: dict[str, Any] = {
            "name": field.name,
            "type_text": ct.sql_name,
            "type_name": _type_name(ct.sql_name),
            "position": position,
        }
        if ct.precision is not None:
            column["type_precision"] = ct.precision
            column["type_scale"] = ct.scale or 0
        out.append(column)
    return out


def _json_value(value: Any) -> Any:
    """Python value -> the JSON form a nested value takes inside JSON text."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _json_value(v) for k, v in value}  # an Arrow map
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (decimal.Decimal, datetime.date, datetime.datetime)):
        return _text(value)
    return value


def _text(value: Any) -> str | None:
    """One value as the string a JSON_ARRAY row carries."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, dict)):
        return json.dumps(_json_value(value), separators=(",", ":"))
    return str(value)


def json_rows(table: Any) -> list[list[str | None]]:
    """The rows of ``table`` as JSON_ARRAY ``data_array`` rows."""
    columns_ = [column.to_pylist() for column in table.columns]
    return [[_text(v) for v in row] for row in zip(*columns_, strict=True)]


@dataclass(frozen=True)
class Chunk:
    """One chunk: a row range and, inline, its encoded payload."""

    index: int
    row_offset: int
    row_count: int
    byte_count: int
    payload: Any = None
    """``data_array`` rows (JSON), IPC bytes (Arrow) or the file (links)."""


class SeaResult:
    """A finished result, chunked for the REST API."""

    def __init__(
        self,
        table: Any,
        form: str,
        lz4: bool,
        *,
        statement_id: str,
        truncated: bool = False,
        volume_operation: bool = False,
        chunk_rows: int | None = None,
        links_per_page_rows: int | None = None,
        cloudfetch_files: int | None = None,
        file_store: FileStore | None = None,
        base_url: str = "",
        link_ttl: float = 900.0,
    ) -> None:
        self.table = table
        self.form = form
        self.format = _REST_FORMATS[form]
        self.lz4 = lz4 and self.format == ARROW_STREAM
        self.statement_id = statement_id
        self.truncated = truncated
        self.volume_operation = volume_operation
        self.total_rows = int(table.num_rows)
        self._page_rows = links_per_page_rows
        self._stream: ResultStream | None = None
        if form == "cloudfetch":
            self._stream = ResultStream(
                table,
                "cloudfetch",
                self.lz4,
                statement_id=statement_id,
                arrow_options=ArrowOptions(),
                cloudfetch_files=cloudfetch_files,
                file_store=file_store,
                base_url=base_url,
                link_ttl=link_ttl,
            )
            self.chunks = [
                Chunk(i, f.start_row, f.row_count, f.uncompressed_bytes, f)
                for i, f in enumerate(self._stream.files)
            ]
        else:
            self.chunks = self._inline_chunks(chunk_rows or self.total_rows)

    def _inline_chunks(self, rows_per_chunk: int) -> list[Chunk]:
        if self.total_rows == 0 or self.table.num_columns == 0:
            return []
        chunks = []
        for index, start in enumerate(range(0, self.total_rows, rows_per_chunk)):
            part = self.table.slice(start, rows_per_chunk)
            if self.format == JSON_ARRAY:
                rows = json_rows(part)
                size = len(json.dumps(rows, separators=(",", ":")))
                chunks.append(Chunk(index, start, int(part.num_rows), size, rows))
            else:
                raw = ipc_stream(part)
                data = lz4.frame.compress(raw) if self.lz4 else raw
                chunks.append(Chunk(index, start, int(part.num_rows), len(data), data))
        return chunks

    # -- what the responses carry ----------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """The ``manifest`` object of a SUCCEEDED statement."""
        manifest: dict[str, Any] = {
            "format": self.format,
            "schema": {
                "column_count": self.table.num_columns,
                "columns": columns(self.table.schema),
            },
            "total_row_count": self.total_rows,
            "total_byte_count": sum(c.byte_count for c in self.chunks),
            "total_chunk_count": len(self.chunks),
            "chunks": [
                {
                    "chunk_index": c.index,
                    "row_offset": c.row_offset,
                    "row_count": c.row_count,
                    "byte_count": c.byte_count,
                }
                for c in self.chunks
            ],
            "truncated": self.truncated,
        }
        if self.lz4:
            manifest["result_compression"] = LZ4_FRAME
        if self.volume_operation:
            manifest["is_volume_operation"] = True
        return manifest

    def page(self, start: int) -> tuple[dict[str, Any], int]:
        """The ``result`` object from chunk ``start`` on, and how many rows it carries.

        Inline, one chunk. With links, one link per chunk, as many links as fit the script's
        ``page_size`` rows (at least one; one when no page size is scripted).
        """
        if start >= len(self.chunks):
            if self.chunks or start > 0:
                raise IndexError(start)
            return {}, 0
        if self.form != "cloudfetch":
            return self._inline_page(self.chunks[start]), self.chunks[start].row_count
        chosen: list[Chunk] = []
        rows = 0
        for chunk in self.chunks[start:]:
            if chosen and (self._page_rows is None or rows + chunk.row_count > self._page_rows):
                break
            chosen.append(chunk)
            rows += chunk.row_count
        return {"external_links": [self._link(c) for c in chosen]}, rows

    def _next(self, chunk: Chunk) -> dict[str, Any]:
        following = chunk.index + 1
        if following >= len(self.chunks):
            return {}
        return {
            "next_chunk_index": following,
            "next_chunk_internal_link": (
                f"/api/2.0/sql/statements/{self.statement_id}/result/chunks/{following}"
            ),
        }

    def _inline_page(self, chunk: Chunk) -> dict[str, Any]:
        data: dict[str, Any] = {
            "chunk_index": chunk.index,
            "row_offset": chunk.row_offset,
            "row_count": chunk.row_count,
            "byte_count": chunk.byte_count,
            **self._next(chunk),
        }
        if self.format == JSON_ARRAY:
            data["data_array"] = chunk.payload
        else:
            data["attachment"] = base64.b64encode(chunk.payload).decode("ascii")
        return data

    def _link(self, chunk: Chunk) -> dict[str, Any]:
        file: CloudFile = chunk.payload
        assert self._stream is not None
        expires = datetime.datetime.fromtimestamp(file.expires_at, datetime.timezone.utc)
        return {
            "chunk_index": chunk.index,
            "row_offset": chunk.row_offset,
            "row_count": chunk.row_count,
            "byte_count": chunk.byte_count,
            "external_link": self._stream.file_url(file),
            "expiration": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "http_headers": {},
            **self._next(chunk),
        }

    def served_files(self) -> list[ServedFile]:
        """The CloudFetch files of this result, for the served-statement record."""
        if self._stream is None:
            return []
        return [
            ServedFile(
                f.index,
                f.start_row,
                f.row_count,
                len(f.data),
                f.uncompressed_bytes,
                url=self._stream.file_url(f),
            )
            for f in self._stream.files
        ]


def empty_table() -> Any:
    """A result without columns (DDL)."""
    return pa.table({})
