"""Readable views of what the instrumentation recorded: span trees, metrics, Databricks payloads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import ReadableSpan

_SHOWN = {
    "db.response.returned_rows": "rows",
    "databricks.result.format": "format",
    "databricks.status_polls.count": "polls",
    "databricks.chunk.rows": "rows",
    "databricks.chunk.wire_bytes": "bytes",
    "databricks.rows.modified": "modified",
    "db.operation.batch.size": "batch",
    "databricks.result.close_reason": "closed by",
    "error.type": "error",
    "db.response.status_code": "sqlstate",
}


def _ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


def _describe(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    details = [f"{label}={attributes[key]}" for key, label in _SHOWN.items() if key in attributes]
    suffix = f"  [{', '.join(details)}]" if details else ""
    return f"{span.name} ({_ms(span):.1f} ms){suffix}"


def span_trees(spans: Sequence[ReadableSpan], roots: Iterable[str]) -> list[str]:
    """One tree per root span name (the demo's workload steps), children indented."""
    children: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    wanted = set(roots)
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        lines.append("  " * depth + ("- " if depth else "") + _describe(span))
        for child in sorted(
            children.get(span.context.span_id, []), key=lambda s: s.start_time or 0
        ):
            walk(child, depth + 1)

    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if span.parent is None and span.name in wanted:
            walk(span, 0)
    return lines


def metrics_summary(data: MetricsData | None) -> list[str]:
    """One line per metric: data points, and count/sum or value."""
    if data is None:
        return ["(no metrics)"]
    lines: list[str] = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points: list[Any] = list(metric.data.data_points)
                if not points:
                    continue
                if hasattr(points[0], "count"):
                    count = sum(p.count for p in points)
                    total = sum(p.sum for p in points)
                    text = f"count={count} sum={total:.4g}"
                else:
                    text = f"value={sum(p.value for p in points)}"
                lines.append(
                    f"{metric.name:<42} {metric.unit or '':<13} {len(points)} series  {text}"
                )
    return lines


def payload_summary(events: Sequence[dict[str, Any]], payload_count: int) -> list[str]:
    """What reached the warehouse's telemetry endpoint, in Databricks' format."""
    kinds = Counter(
        (e.get("sql_operation") or {}).get("operation_detail", {}).get("operation_type", "?")
        for e in events
    )
    apps = Counter(
        (e.get("system_configuration") or {}).get("client_app_name", "(none)") for e in events
    )
    lines = [
        f"{payload_count} POST(s) to /telemetry-ext, {len(events)} event(s): "
        + ", ".join(f"{kind} x{n}" for kind, n in kinds.items()),
        "client_app_name: " + ", ".join(f"{app} x{n}" for app, n in apps.items()),
    ]
    richest = max(
        events,
        key=lambda e: len((e.get("sql_operation") or {}).get("chunk_details") or {}),
        default=None,
    )
    if richest is not None and (richest.get("sql_operation") or {}).get("chunk_details"):
        operation = richest["sql_operation"]
        lines.append(f"e.g. statement {richest.get('sql_statement_id')}:")
        for key in ("execution_result", "is_compressed", "retry_count"):
            if key in operation:
                lines.append(f"  {key}: {operation[key]}")
        for key in ("chunk_details", "result_latency", "operation_detail"):
            if key in operation:
                lines.append(f"  {key}: {operation[key]}")
    return lines
