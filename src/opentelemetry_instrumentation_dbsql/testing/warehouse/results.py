"""Encoding a finished result in the three Thrift result formats, page by page.

* ``columnar``: ``TRowSet.columns`` (column-based set); decimals, dates and timestamps travel
  as strings, and bit ``i % 8`` of byte ``i // 8`` of each null bitmap marks row ``i`` NULL.
* ``arrow``: the schema's IPC bytes in ``arrowSchema`` and one IPC record batch per
  ``TSparkArrowBatch``, each LZ4-frame compressed when asked.
* ``cloudfetch``: ``TSparkArrowResultLink`` entries pointing at whole Arrow IPC streams
  (optionally LZ4-frame compressed) that the warehouse serves by GET.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import lz4.frame
import pyarrow as pa
import pyarrow.compute as pc

from opentelemetry_instrumentation_dbsql.testing.warehouse._thrift import ttypes
from opentelemetry_instrumentation_dbsql.testing.warehouse.sqltypes import (
    table_schema,
    to_transport,
)

FORMATS = ("columnar", "arrow", "cloudfetch")
DEFAULT_FILE_ROWS = 50_000

_ROW_SET_TYPES = {
    "columnar": ttypes.TSparkRowSetType.COLUMN_BASED_SET,
    "arrow": ttypes.TSparkRowSetType.ARROW_BASED_SET,
    "cloudfetch": ttypes.TSparkRowSetType.URL_BASED_SET,
}
SUCCESS = ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS)


@dataclass
class CloudFile:
    """One CloudFetch file held by the warehouse until its link expires."""

    token: str
    data: bytes
    uncompressed_bytes: int
    start_row: int
    row_count: int
    expires_at: float
    statement_id: str
    index: int
    downloads: int = 0


class FileStore:
    """The CloudFetch files of one warehouse, by unguessable token."""

    GRACE_SECONDS = 300.0

    def __init__(self) -> None:
        self._files: dict[str, CloudFile] = {}
        self._lock = threading.Lock()

    def add(self, file: CloudFile) -> None:
        """Register a file; files expired long ago are dropped on the way."""
        now = time.time()
        with self._lock:
            stale = [t for t, f in self._files.items() if f.expires_at + self.GRACE_SECONDS < now]
            for token in stale:
                del self._files[token]
            self._files[file.token] = file

    def get(self, token: str) -> CloudFile | None:
        """The file for ``token`` (counting the download), or None."""
        with self._lock:
            file = self._files.get(token)
            if file is not None:
                file.downloads += 1
            return file

    def expire(self, statement_id: str | None = None) -> int:
        """Make the links of one statement (or all) expired now; returns how many."""
        now = time.time() - 1
        count = 0
        with self._lock:
            for file in self._files.values():
                if statement_id is None or file.statement_id == statement_id:
                    file.expires_at = min(file.expires_at, now)
                    count += 1
        return count

    def clear(self) -> None:
        """Forget every file."""
        with self._lock:
            self._files.clear()


def null_bitmap(array: Any) -> bytes:
    """The Thrift null bitmap of an Arrow array: bit ``i % 8`` of byte ``i // 8`` = NULL."""
    n = len(array)
    if n == 0:
        return b""
    if array.null_count == 0:
        return bytes((n + 7) // 8)
    flags = pc.is_null(array)
    if isinstance(flags, pa.ChunkedArray):
        flags = flags.combine_chunks()
    buffer = flags.buffers()[1]
    return bytes(buffer.to_pybytes()[: (n + 7) // 8])


def _values(array: Any, fill: Any) -> list[Any]:
    if array.null_count == 0:
        return list(array.to_pylist())
    return list(pc.fill_null(array, fill).to_pylist())


def _text(array: Any) -> list[str]:
    values = array.to_pylist()
    out: list[str] = []
    for v in values:
        if v is None:
            out.append("")
        elif isinstance(v, str):
            out.append(v)
        else:
            out.append(json.dumps(v, default=str))
    return out


def encode_column(array: Any) -> ttypes.TColumn:
    """One column-based ``TColumn`` for an Arrow array of a normalized type."""
    t = array.type
    nulls = null_bitmap(array)
    if t == pa.bool_():
        return ttypes.TColumn(boolVal=ttypes.TBoolColumn(_values(array, False), nulls))
    if t == pa.int8():
        return ttypes.TColumn(byteVal=ttypes.TByteColumn(_values(array, 0), nulls))
    if t == pa.int16():
        return ttypes.TColumn(i16Val=ttypes.TI16Column(_values(array, 0), nulls))
    if t == pa.int32():
        return ttypes.TColumn(i32Val=ttypes.TI32Column(_values(array, 0), nulls))
    if t == pa.int64():
        return ttypes.TColumn(i64Val=ttypes.TI64Column(_values(array, 0), nulls))
    if pa.types.is_floating(t):
        return ttypes.TColumn(doubleVal=ttypes.TDoubleColumn(_values(array, 0.0), nulls))
    if t == pa.binary():
        return ttypes.TColumn(binaryVal=ttypes.TBinaryColumn(_values(array, b""), nulls))
    if t == pa.string():
        return ttypes.TColumn(stringVal=ttypes.TStringColumn(_values(array, ""), nulls))
    if pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_timestamp(t):
        return ttypes.TColumn(
            stringVal=ttypes.TStringColumn(_values(array.cast(pa.string()), ""), nulls)
        )
    if t == pa.null():
        return ttypes.TColumn(stringVal=ttypes.TStringColumn([""] * len(array), nulls))
    return ttypes.TColumn(stringVal=ttypes.TStringColumn(_text(array), nulls))


def ipc_stream(table: Any) -> bytes:
    """A whole Arrow IPC stream (schema, batches, end marker)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@dataclass
class Page:
    """One response's worth of rows."""

    row_set: ttypes.TRowSet
    rows: int
    has_more: bool
    links: list[CloudFile] = field(default_factory=list)


@dataclass(frozen=True)
class ArrowOptions:
    """The ``TSparkArrowTypes`` the client asked for."""

    decimals: bool = True
    timestamps: bool = True
    complex_types: bool = True


class ResultStream:
    """A finished result and how far the client has fetched it."""

    def __init__(
        self,
        table: Any,
        result_format: str,
        lz4: bool,
        *,
        statement_id: str,
        arrow_options: ArrowOptions | None = None,
        cloudfetch_files: int | None = None,
        file_store: FileStore | None = None,
        base_url: str = "",
        link_ttl: float = 900.0,
        staging: bool = False,
    ) -> None:
        if result_format not in FORMATS:
            raise ValueError(f"result_format must be one of {FORMATS}, not {result_format!r}")
        self.table = table
        self.result_format = result_format
        self.lz4 = lz4 and result_format != "columnar"
        self.total_rows = int(table.num_rows)
        self.offset = 0
        self.staging = staging  # the one-row answer of a staging (volume) statement
        self._options = arrow_options or ArrowOptions()
        self._transport = (
            table
            if result_format == "columnar"
            else to_transport(
                table,
                decimals=self._options.decimals,
                timestamps=self._options.timestamps,
                complex_types=self._options.complex_types,
            )
        )
        self._schema_bytes = bytes(self._transport.schema.serialize().to_pybytes())
        self.files: list[CloudFile] = []
        self._next_file = 0
        self._base_url = base_url
        if result_format == "cloudfetch":
            self._make_files(statement_id, cloudfetch_files, file_store, link_ttl)

    def _make_files(
        self,
        statement_id: str,
        count: int | None,
        store: FileStore | None,
        link_ttl: float,
    ) -> None:
        if self.total_rows == 0:
            return
        n = count if count and count > 0 else math.ceil(self.total_rows / DEFAULT_FILE_ROWS)
        n = max(1, min(n, self.total_rows))
        per_file = math.ceil(self.total_rows / n)
        expires = time.time() + link_ttl
        for index, start in enumerate(range(0, self.total_rows, per_file)):
            part = self._transport.slice(start, per_file)
            raw = ipc_stream(part)
            data = lz4.frame.compress(raw) if self.lz4 else raw
            file = CloudFile(
                token=secrets.token_urlsafe(24),
                data=data,
                uncompressed_bytes=len(raw),
                start_row=start,
                row_count=int(part.num_rows),
                expires_at=expires,
                statement_id=statement_id,
                index=index,
            )
            if store is not None:
                store.add(file)
            self.files.append(file)

    def file_url(self, file: CloudFile) -> str:
        """The link under which the warehouse serves ``file``."""
        return f"{self._base_url}/cloudfetch/{file.token}"

    def metadata(self) -> ttypes.TGetResultSetMetadataResp:
        """The ``TGetResultSetMetadataResp`` describing this result."""
        arrow = self.result_format != "columnar"
        compressed = sum(len(f.data) for f in self.files) if self.files else None
        uncompressed = sum(f.uncompressed_bytes for f in self.files) if self.files else None
        return ttypes.TGetResultSetMetadataResp(
            status=SUCCESS,
            schema=table_schema(self.table.schema),
            resultFormat=_ROW_SET_TYPES[self.result_format],
            lz4Compressed=self.lz4,
            arrowSchema=self._schema_bytes if arrow else None,
            isStagingOperation=self.staging,
            uncompressedBytes=uncompressed,
            compressedBytes=compressed,
        )

    @property
    def exhausted(self) -> bool:
        """Whether every row has been handed out."""
        return self.offset >= self.total_rows

    def next_page(self, max_rows: int) -> Page:
        """The next page: at most ``max_rows`` rows (whole files for CloudFetch, at least one)."""
        start = self.offset
        if self.result_format == "cloudfetch":
            links: list[CloudFile] = []
            rows = 0
            while self._next_file < len(self.files):
                file = self.files[self._next_file]
                if links and rows + file.row_count > max_rows:
                    break
                links.append(file)
                rows += file.row_count
                self._next_file += 1
            self.offset += rows
            row_set = ttypes.TRowSet(
                startRowOffset=start,
                rows=[],
                resultLinks=[
                    ttypes.TSparkArrowResultLink(
                        fileLink=self.file_url(f),
                        expiryTime=int(f.expires_at),
                        startRowOffset=f.start_row,
                        rowCount=f.row_count,
                        bytesNum=f.uncompressed_bytes,
                        httpHeaders={},
                    )
                    for f in links
                ],
            )
            return Page(row_set, rows, not self.exhausted, links)
        count = max(0, min(max_rows if max_rows > 0 else self.total_rows, self.total_rows - start))
        self.offset += count
        if self.result_format == "columnar":
            part = self.table.slice(start, count)
            columns = [
                encode_column(part.column(i).combine_chunks()) for i in range(part.num_columns)
            ]
            row_set = ttypes.TRowSet(startRowOffset=start, rows=[], columns=columns)
        else:
            part = self._transport.slice(start, count)
            batches = []
            for batch in part.to_batches():
                if batch.num_rows == 0:
                    continue
                raw = bytes(batch.serialize().to_pybytes())
                batches.append(
                    ttypes.TSparkArrowBatch(
                        batch=lz4.frame.compress(raw) if self.lz4 else raw,
                        rowCount=batch.num_rows,
                    )
                )
            row_set = ttypes.TRowSet(startRowOffset=start, rows=[], arrowBatches=batches)
        return Page(row_set, count, not self.exhausted)


def empty_row_set(offset: int = 0) -> ttypes.TRowSet:
    """A column-based row set with no columns and no rows."""
    return ttypes.TRowSet(startRowOffset=offset, rows=[], columns=[])
