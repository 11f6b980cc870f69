"""Debug logging of the instrumentation's own failures, once per kind."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger("opentelemetry_instrumentation_dbsql")
_seen: set[str] = set()
_counts: dict[str, int] = {}
_lock = threading.Lock()


def failure_counts() -> dict[str, int]:
    """How often each kind of internal failure occurred (for tests and diagnostics)."""
    with _lock:
        return dict(_counts)


def log_failure_once(kind: str, exc: BaseException | None = None) -> None:
    """Log an internal failure at debug level the first time this kind occurs; never raises."""
    try:
        with _lock:
            _counts[kind] = _counts.get(kind, 0) + 1
            if kind in _seen:
                return
            _seen.add(kind)
        _logger.debug("instrumentation failure (%s); later ones are not logged", kind, exc_info=exc)
    except Exception:
        pass


def log_hook_failure_once(name: str, exc: BaseException) -> None:
    """Log once, as a warning, that the user's ``name`` hook raised; never raises."""
    try:
        with _lock:
            key = "user-hook:" + name
            if key in _seen:
                return
            _seen.add(key)
        _logger.warning(
            "The %s given to DbsqlInstrumentor raised; the statement is unaffected and later "
            "failures are not logged",
            name,
            exc_info=exc,
        )
    except Exception:
        pass


def log_missing_hook_once(target: str) -> None:
    """Log once that a driver hook point is absent in the installed connector release."""
    try:
        with _lock:
            key = "missing:" + target
            if key in _seen:
                return
            _seen.add(key)
        _logger.info("databricks-sql-connector has no %s; that detail is not recorded", target)
    except Exception:
        pass
