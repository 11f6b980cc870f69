"""Wrappers of the kernel backend's Python layer (``use_kernel=True``): the modified rows of a
statement, and the ids the connector makes up for metadata calls.

The Rust kernel polls, pages, downloads CloudFetch files and retries inside native code: none
of that is visible from Python, and none of it is recorded. Status polls of an async
statement (``KernelDatabricksClient.get_query_state``) and result-set closes use the wrappers
in ``internals``; failures carry their SQLSTATE as an attribute of the exception, which the
error classification reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry_instrumentation_dbsql.log_once import log_failure_once
from opentelemetry_instrumentation_dbsql.statement import current_statement

Wrapped = Callable[..., Any]

# ``execute_command(operation, session_id, max_rows, max_bytes, lz4_compression, cursor, ...)``
_CURSOR_POSITION = 5


def execute_command(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """``KernelDatabricksClient.execute_command``: the kernel puts the statement's modified
    rows in ``cursor.rowcount`` (and none in its result set); read them after it returns."""
    result = wrapped(*args, **kwargs)
    tracker = current_statement.get()
    if tracker is not None:
        try:
            cursor = kwargs.get(
                "cursor", args[_CURSOR_POSITION] if len(args) > _CURSOR_POSITION else None
            )
            modified = getattr(cursor, "rowcount", None)
            if type(modified) is int and modified >= 0:
                tracker.reported_modified_rows = modified
        except Exception as exc:
            log_failure_once("kernel-execute", exc)
    return result


def synthetic_command_id(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: Any
) -> Any:
    """``KernelDatabricksClient._synthetic_command_id``: a metadata call's id is made up by the
    connector (the kernel does not expose the server's): it is not the statement id."""
    result = wrapped(*args, **kwargs)
    tracker = current_statement.get()
    if tracker is not None:
        tracker.local_statement_id = True
    return result
