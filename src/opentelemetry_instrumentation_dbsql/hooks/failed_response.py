"""What the Thrift backend drops when it raises for a failed response: the response's SQLSTATE."""

from __future__ import annotations

from opentelemetry_instrumentation_dbsql.log_once import log_failure_once

_MAX_FRAMES = 64


def sqlstate_of_failed_response(exc: BaseException) -> str | None:
    """The ``TStatus.sqlState`` of the response the Thrift backend raised ``exc`` for.

    The driver's ``_check_response_for_error(response)`` raises with the message only; the
    response is still a local of that frame in the exception's traceback. Read there, on the
    failure path only, rather than through a wrapper of the check, which runs five times per
    successful statement (see the figure in README.rst, Performance).
    """
    try:
        tb = exc.__traceback__
        frames = 0
        while tb is not None and frames < _MAX_FRAMES:
            frame = tb.tb_frame
            if frame.f_code.co_name == "_check_response_for_error":
                status = getattr(frame.f_locals.get("response"), "status", None)
                sqlstate = getattr(status, "sqlState", None)
                return sqlstate if isinstance(sqlstate, str) else None
            tb = tb.tb_next
            frames += 1
    except Exception as inner:
        log_failure_once("protocol-sqlstate", inner)
    return None
