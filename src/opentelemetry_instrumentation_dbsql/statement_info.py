"""What the user's request and response hooks are told about a statement, and the filter of
statements the user leaves out of spans and metrics."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.trace import Span


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """A read-only description of one statement, passed to ``request_hook`` and
    ``response_hook``.

    ``parameters`` are the bound values only when ``capture_parameters`` is on; ``statement_id``
    is known in the response hook (the server assigns it); ``error_type`` is the qualified class
    name of the exception a failed statement raised.
    """

    method: str
    """The driver method: ``execute``, ``executemany``, ``execute_async``, ``tables``, ..."""
    operation_name: str | None
    summary: str | None
    statement_id: str | None = None
    parameters: Mapping[str, object] | Sequence[object] | None = None
    error_type: str | None = None


StatementHook = Callable[[Span, StatementInfo], None]
"""``hook(span, info)``: add the application's own attributes to a statement span."""


@dataclass(frozen=True, slots=True)
class StatementFilter:
    """Statements left out of spans and metrics: exact texts, or patterns that match the whole
    text (surrounding whitespace ignored in both)."""

    exact: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, items: Iterable[str | re.Pattern[str]]) -> StatementFilter:
        """Strings are exact texts, compiled patterns are patterns."""
        exact: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for item in items:
            if isinstance(item, re.Pattern):
                patterns.append(item)
            elif isinstance(item, str):
                exact.add(item.strip())
            else:
                raise TypeError(item)
        return cls(frozenset(exact), tuple(patterns))

    def excludes(self, sql: object) -> bool:
        """Whether ``sql`` is left out."""
        if not isinstance(sql, str):
            return False
        text = sql.strip()
        if text in self.exact:
            return True
        return any(pattern.fullmatch(text) for pattern in self.patterns)
