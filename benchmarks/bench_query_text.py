"""Cold analysis versus cache hits of ``query_text.analyze``.

Run: ``.venv/bin/python benchmarks/bench_query_text.py``. "cold" calls the uncached analysis
(the cost of a cache miss), "cached" calls ``analyze`` on text already in the cache. Each figure
is the best of several repeats, in microseconds per call.
"""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable

from opentelemetry_instrumentation_dbsql import query_text

QUERIES: dict[str, str] = {
    "select_1": "SELECT 1",
    "point_lookup": "SELECT * FROM main.sales.orders WHERE order_id = 123456",
    "join_200_chars": (
        "SELECT o.id, o.amount, c.name FROM main.sales.orders o JOIN main.sales.customers c "
        "ON o.customer_id = c.id WHERE o.created_at > TIMESTAMP '2024-01-01' "
        "AND o.status IN ('a', 'b') LIMIT 50"
    ),
    "merge": (
        "MERGE INTO main.sales.orders AS t USING (SELECT * FROM main.staging.orders "
        "WHERE load_date = DATE '2024-06-01') AS s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    ),
    "cte_1k_chars": (
        "WITH recent AS (SELECT customer_id, sum(amount) AS total FROM main.sales.orders "
        "WHERE created_at > current_date() - INTERVAL 30 DAYS GROUP BY customer_id) "
        "SELECT c.name, r.total, "
        + ", ".join(f"coalesce(c.attr_{i}, 'n/a') AS attr_{i}" for i in range(20))
        + " FROM recent r JOIN main.crm.customers c ON c.id = r.customer_id "
        "WHERE r.total > 1000.50 ORDER BY r.total DESC LIMIT 100"
    ),
    "insert_20k_chars": "INSERT INTO main.sales.t VALUES "
    + ", ".join(f"({i}, 'name {i}', {i}.25, TRUE)" for i in range(700)),
}


def best_us(call: Callable[[], object], number: int) -> float:
    """Best per-call time over several repeats, in microseconds."""
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6


def main() -> None:
    """Print one row per query: length, cold and cached cost, and their ratio."""
    uncached = query_text._analyze
    print(f"{'query':<18} {'chars':>6} {'cold us':>10} {'cached us':>10} {'ratio':>8}")
    for name, sql in QUERIES.items():
        number = max(20, 200_000 // (len(sql) + 100))
        cold = best_us(functools.partial(uncached, sql, True, 2048), number)
        query_text.analyze(sql)
        cached = best_us(functools.partial(query_text.analyze, sql), 200_000)
        print(f"{name:<18} {len(sql):>6} {cold:>10.2f} {cached:>10.3f} {cold / cached:>8.0f}")
    info = query_text.cache_info()
    print(f"cache: hits={info.hits} misses={info.misses} size={info.currsize}/{info.maxsize}")


if __name__ == "__main__":
    main()
