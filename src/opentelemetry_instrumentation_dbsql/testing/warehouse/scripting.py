"""Per-statement scripts: how the warehouse should behave for a given SQL text."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from opentelemetry_instrumentation_dbsql.testing.warehouse.results import FORMATS

ERROR_STYLES = ("operation", "status")


@dataclass
class StatementScript:
    """Behaviour for statements whose text matches ``sql``.

    ``running_polls``: how many GetOperationStatus answers report RUNNING (each after
    ``poll_delay`` seconds) before the statement finishes. ``completion_delay``: the statement
    stays RUNNING until that many seconds after ExecuteStatement. ``error`` (with ``sqlstate``,
    sent in the status fields and, unless ``sqlstate_in_message`` is false, at the end of the
    message as Databricks servers write it) makes it fail instead: ``error_style="operation"``
    reports ERROR_STATE in the operation status (the driver raises ``ServerOperationError``),
    ``"status"`` an ERROR_STATUS TStatus (``DatabaseError``).
    ``result_format``/``lz4``/``page_size``/``cloudfetch_files`` override how rows are served;
    ``link_ttl`` how long CloudFetch links stay valid.

    Over the Statement Execution API the same script applies: polls are GetStatement calls
    (answered ``RUNNING``), ``error_style="status"`` answers the call with HTTP 400, and
    ``result_format`` picks JSON_ARRAY rows inline (``columnar``), an Arrow attachment
    (``arrow``) or external links (``cloudfetch``); ``page_size`` is the rows per inline chunk,
    or the rows of links handed out per response.
    """

    sql: str
    regex: bool = False
    running_polls: int = 0
    poll_delay: float = 0.0
    result_format: str | None = None
    lz4: bool | None = None
    page_size: int | None = None
    cloudfetch_files: int | None = None
    completion_delay: float = 0.0
    error: str | None = None
    sqlstate: str | None = None
    sqlstate_in_message: bool = True
    error_style: str = "operation"
    times: int | None = None
    link_ttl: float | None = None
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.result_format is not None and self.result_format not in FORMATS:
            raise ValueError(
                f"result_format must be one of {', '.join(FORMATS)} (or None), "
                f"not {self.result_format!r}"
            )
        if self.error_style not in ERROR_STYLES:
            raise ValueError(
                f"error_style must be one of {', '.join(ERROR_STYLES)}, not {self.error_style!r}"
            )
        if self.running_polls < 0 or self.poll_delay < 0 or self.completion_delay < 0:
            raise ValueError("running_polls, poll_delay and completion_delay must be >= 0")
        if self.page_size is not None and self.page_size <= 0:
            raise ValueError("page_size must be positive")
        if self.times is not None and self.times <= 0:
            raise ValueError("times must be positive or None")
        if self.regex:
            self._pattern = re.compile(self.sql, re.DOTALL)

    def matches(self, sql: str) -> bool:
        """Whether this script applies to ``sql`` (exact text, or full regex match)."""
        if self._pattern is not None:
            return self._pattern.fullmatch(sql) is not None
        return sql == self.sql

    @property
    def runs(self) -> bool:
        """Whether the statement is left RUNNING after ExecuteStatement."""
        return self.running_polls > 0 or self.completion_delay > 0


class ScriptHandle:
    """What :meth:`LocalWarehouse.script` returns: the script and how often it was used."""

    def __init__(self, book: ScriptBook, script: StatementScript) -> None:
        self._book = book
        self.script = script
        self._lock = threading.Lock()
        self._statement_ids: list[str] = []

    def _used(self, statement_id: str) -> None:
        with self._lock:
            self._statement_ids.append(statement_id)

    @property
    def hits(self) -> int:
        """How many executions this script has governed."""
        with self._lock:
            return len(self._statement_ids)

    @property
    def statement_ids(self) -> list[str]:
        """The statement ids of those executions, in order."""
        with self._lock:
            return list(self._statement_ids)

    @property
    def active(self) -> bool:
        """Whether the script still applies to new executions."""
        return self._book.contains(self)

    def remove(self) -> None:
        """Stop applying this script."""
        self._book.remove(self)


class ScriptBook:
    """All scripts of a warehouse; the most recently added matching script wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: list[tuple[ScriptHandle, list[int | None]]] = []

    def add(self, script: StatementScript) -> ScriptHandle:
        """Register a script."""
        handle = ScriptHandle(self, script)
        with self._lock:
            self._handles.append((handle, [script.times]))
        return handle

    def take(self, sql: str, statement_id: str) -> tuple[StatementScript, ScriptHandle] | None:
        """The script for one execution of ``sql``, using up one of its ``times``."""
        with self._lock:
            for index in range(len(self._handles) - 1, -1, -1):
                handle, remaining = self._handles[index]
                if not handle.script.matches(sql):
                    continue
                if remaining[0] is not None:
                    remaining[0] -= 1
                    if remaining[0] <= 0:
                        del self._handles[index]
                break
            else:
                return None
        handle._used(statement_id)
        return handle.script, handle

    def contains(self, handle: ScriptHandle) -> bool:
        """Whether ``handle`` is still registered."""
        with self._lock:
            return any(h is handle for h, _ in self._handles)

    def remove(self, handle: ScriptHandle) -> None:
        """Unregister one script."""
        with self._lock:
            self._handles = [(h, r) for h, r in self._handles if h is not handle]

    def clear(self) -> None:
        """Unregister every script."""
        with self._lock:
            self._handles.clear()
