"""``databricks.client.result.chunks`` counts result chunks as the connector means them:
CloudFetch files. Inline result pages (Arrow batches or columns inside a FetchResults or
ExecuteStatement response) are not chunks, the same as for the spans'
``databricks.result.chunks.*`` attributes and the Databricks telemetry's ``chunk_details``.

The kernel downloads CloudFetch files in native code: it records no chunk and no bytes. The SEA
backend reads only the first chunk of an inline result, so its inline results come whole.
"""

from __future__ import annotations

from typing import Any

import databricks.sql

from opentelemetry_instrumentation_dbsql.testing.warehouse import LocalWarehouse
from tests.conftest import Telemetry, cloudfetch_files, every_backend

# Chunks come from each backend's own CloudFetch path (or none, on the kernel).
pytestmark = every_backend

CHUNKS = "databricks.client.result.chunks"
FILES = 3


def _total(telemetry: Telemetry, name: str) -> int:
    return sum(int(point.value) for point in telemetry.metrics().get(name, []))


def _cloudfetch_downloads(warehouse: LocalWarehouse) -> int:
    return sum(r.path.startswith("/cloudfetch/") for r in warehouse.http_requests)


def _run(warehouse: LocalWarehouse, statements: list[str]) -> None:
    with databricks.sql.connect(**warehouse.connect_kwargs()) as conn, conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            cursor.fetchall()


def _pages(backend: str, rows: int) -> int | None:
    return None if backend == "sea" else rows


def test_chunks_are_the_cloudfetch_files(
    warehouse: Any, telemetry: Telemetry, backend: str
) -> None:
    cloudfetch = "SELECT id, amount FROM orders ORDER BY id"
    files = cloudfetch_files(backend, FILES)
    warehouse.script(cloudfetch, result_format="cloudfetch", cloudfetch_files=files, lz4=True)
    paged = "SELECT id FROM orders WHERE id < 500"
    warehouse.script(paged, result_format="arrow", page_size=_pages(backend, 100))
    columnar = "SELECT customer, count(*) AS n FROM orders GROUP BY customer"
    # The kernel asks for Arrow only.
    warehouse.script(columnar, result_format="arrow" if backend == "kernel" else "columnar")
    one = "SELECT 1 AS one"
    warehouse.script(one, result_format="arrow")  # SEA asks for links unless told otherwise
    _run(warehouse, [cloudfetch, paged, columnar, one])

    served_pages = sum(s.pages for s in warehouse.served.values())
    assert served_pages > files  # inline pages were served too: they must not count
    assert _cloudfetch_downloads(warehouse) == files
    if backend == "kernel":
        assert _total(telemetry, CHUNKS) == 0
        return
    assert _total(telemetry, CHUNKS) == FILES
    iterated = [
        (s.attributes or {}).get("databricks.result.chunks.iterated", 0)
        for s in telemetry.spans_by_role("RESULT")
    ]
    assert sum(iterated) == FILES  # the metric agrees with the spans


def test_inline_results_alone_record_no_chunk(
    warehouse: Any, telemetry: Telemetry, backend: str
) -> None:
    paged = "SELECT id FROM orders WHERE id < 300"
    warehouse.script(paged, result_format="arrow", page_size=_pages(backend, 50))
    one = "SELECT 1 AS one"
    warehouse.script(one, result_format="arrow")
    _run(warehouse, [paged, one])

    assert sum(s.pages for s in warehouse.served.values()) > 1
    assert _cloudfetch_downloads(warehouse) == 0
    assert _total(telemetry, CHUNKS) == 0
    if backend != "kernel":  # the results did arrive (the kernel's bytes are its own)
        assert _total(telemetry, "databricks.client.result.bytes") > 0
