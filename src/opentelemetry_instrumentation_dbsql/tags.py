"""Statement tags: user key-value pairs attached to every statement run inside a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

_current_tags: ContextVar[Mapping[str, str] | None] = ContextVar(
    "opentelemetry_instrumentation_dbsql_tags", default=None
)


@contextlib.contextmanager
def statement_tags(**tags: object) -> Iterator[None]:
    """Attach tags to every statement executed inside the block.

    Each tag becomes the span attribute ``databricks.tag.<key>``; with trace-context
    propagation on, the tags also go into the statement's Databricks ``query_tags``. Nested
    blocks merge, inner values winning.
    """
    outer = _current_tags.get()
    merged = dict(outer or {})
    merged.update({str(k): str(v) for k, v in tags.items()})
    token = _current_tags.set(merged)
    try:
        yield
    finally:
        _current_tags.reset(token)


def current_tags() -> Mapping[str, str] | None:
    """The tags in force, or None."""
    return _current_tags.get()
